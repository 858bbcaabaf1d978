from . import main

main(prog_name="hsa-memory")
