"""hsa_memory.cli"""
