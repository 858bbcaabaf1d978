"""The project's trained modules as safetensors, loaded on top of the frozen base.

A checkpoint holds only what the base does not (chunk encoder, HSA layers, sink logits, LoRA
deltas) plus the ``HSAConfig`` as JSON metadata; loading checks every name and shape.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from .config import ConfigError, HSAConfig
from .weights import base_name_map

FORMAT = "hsa-memory-checkpoint/1"
# fields a user may change at inference without retraining; every other field must match
RUNTIME_FIELDS = ("name", "base", "hsa_topk", "sliding_window", "hsa_skip_window", "moe_bias_update_rate",
                  "initializer_range")


class CheckpointError(RuntimeError):
    """A checkpoint is corrupted or does not fit the model; the message names the file or tensor."""


def project_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names of parameters/buffers the base model does not provide (what training produces)."""
    base_names = set(base_name_map(model.config).values()) | {"lm_head.weight"}
    state = model.state_dict()
    return [name for name in state if name not in base_names]


def save_checkpoint(model: torch.nn.Module, path: Path, dtype: torch.dtype | None = None,
                    extra_metadata: dict[str, str] | None = None) -> Path:
    """Write the project's tensors atomically to ``path`` (a .safetensors file)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = model.state_dict()
    tensors = {}
    for name in project_parameter_names(model):
        tensor = state[name].detach().cpu()
        tensors[name] = (tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor).contiguous()
    metadata = {"format": FORMAT, "config": model.config.to_json(), **(extra_metadata or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def read_checkpoint(path: Path) -> tuple[HSAConfig, dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged headers/data
        raise CheckpointError(f"checkpoint {path} is corrupted or not a safetensors file: {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    try:
        config = HSAConfig.from_json(metadata["config"])
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path} carries no valid config: {exc}") from exc
    return config, tensors, metadata


def load_checkpoint(model: torch.nn.Module, path: Path) -> dict[str, str]:
    """Load a checkpoint's tensors into ``model``; every expected tensor must be present with its shape."""
    config, tensors, metadata = read_checkpoint(path)
    # every field, defaults included (to_dict leaves out later fields at their default)
    ours = dataclasses.asdict(model.config)
    theirs = dataclasses.asdict(config)
    differing = sorted(k for k in ours if k not in RUNTIME_FIELDS and ours[k] != theirs.get(k))
    if differing:
        details = ", ".join(f"{k}: model {ours[k]!r} vs checkpoint {theirs.get(k)!r}" for k in differing[:4])
        raise CheckpointError(f"checkpoint {path} was trained for a different config ({details})")
    expected = project_parameter_names(model)
    state = model.state_dict()
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in state]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name in expected:
        if tuple(tensors[name].shape) != tuple(state[name].shape):
            raise CheckpointError(f"checkpoint {path}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                                  f"the model needs {tuple(state[name].shape)}")
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            raise CheckpointError(f"checkpoint {path}: tensor {name} holds NaN or infinite values")
    with torch.no_grad():
        for name in expected:
            state[name].copy_(tensors[name])
    return metadata
