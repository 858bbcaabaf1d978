"""bench/ is a folder of scripts, not a package: its compare_* helpers import each other by bare name."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
# appended, not put first: bench/kernels.py must not shadow Hugging Face's installed ``kernels`` package, which
# transformers imports while loading a model (the base-parity test failed when run in one process with these)
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))
