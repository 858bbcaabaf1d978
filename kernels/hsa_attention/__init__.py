"""HSA sparse chunk attention: reference (PyTorch) and Triton implementations."""
from .reference import hsa_attention_reference

__all__ = ["hsa_attention_reference"]
