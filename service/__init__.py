"""hsa_memory.service"""
