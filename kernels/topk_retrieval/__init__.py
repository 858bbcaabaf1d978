"""Landmark scoring with a streaming top-K: reference (PyTorch) and Triton implementations."""
from .reference import gumbel_noise, hash32, landmark_topk_reference

__all__ = ["gumbel_noise", "hash32", "landmark_topk_reference"]
