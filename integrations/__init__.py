"""hsa_memory.integrations"""
