"""hsa-memory: lifelong memory for AI agents on a Hierarchical Sparse Attention language model."""
__version__ = "0.1.0"
