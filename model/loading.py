"""Build a ready model: config → architecture → base weights → the project's trained modules."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from .checkpoint import load_checkpoint, read_checkpoint
from .config import DEFAULT_PRESET, HSAConfig, get_preset
from .modeling import HSAForCausalLM
from .tokenizer import ASSETS, load_tokenizer
from .weights import config_for_base, file_sha256, load_base_weights, read_base, resolve_base_path

log = logging.getLogger(__name__)


def bundled_checkpoint(name: str) -> Path | None:
    """The trained HSA modules shipped in the package for a preset, if any."""
    path = ASSETS / f"{name}.safetensors"
    return path if path.is_file() else None


@dataclass
class LoadedModel:
    model: HSAForCausalLM
    tokenizer: Tokenizer
    model_id: str
    # sha256 over config, base file and checkpoint: a memory encoded by other weights must be re-encoded
    weight_hash: str
    trained: bool


def load_model(source: str | HSAConfig | Path = DEFAULT_PRESET, checkpoint: str | Path | None = "bundled",
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    """A preset name, a config, or a path to a Llama-family base (GGUF file or HF folder).

    ``checkpoint="bundled"`` loads the package's trained modules when they exist for this model
    (otherwise the HSA modules stay zero-initialised: the model then equals its base); a path loads
    that checkpoint; None loads none.
    """
    if isinstance(source, HSAConfig):
        config = source.validate()
    elif isinstance(source, Path) or (isinstance(source, str) and ("/" in source or source.endswith(".gguf"))):
        base = {"kind": "gguf" if str(source).endswith(".gguf") else "hf", "path": str(Path(source).expanduser())}
        meta, tensors = read_base(resolve_base_path(base))
        config = config_for_base(meta, base)
    else:
        config = get_preset(source)
    if checkpoint == "bundled":
        checkpoint = bundled_checkpoint(config.name)
        if checkpoint is None and config.base is not None:
            log.warning("no trained HSA weights are bundled for %s: memory layers are untrained "
                        "(the model equals its base; retrieval is random)", config.name)
    if checkpoint is not None:
        # the checkpoint decides runtime choices it was trained with (window, top-K); the base stays ours
        trained_config, _, _ = read_checkpoint(Path(checkpoint))
        config = HSAConfig.from_dict({**trained_config.to_dict(), "base": config.base, "name": config.name})
    model = HSAForCausalLM(config)
    digest = hashlib.sha256(config.to_json().encode())
    tokenizer_path = None
    if config.base is not None:
        base_path = resolve_base_path(config.base)
        meta, tensors = read_base(base_path)
        load_base_weights(model, tensors)
        digest.update(file_sha256(base_path).encode() if base_path.is_file() else str(base_path).encode())
        tokenizer_path = base_path if config.base.get("path") else None
    trained = False
    if checkpoint is not None:
        load_checkpoint(model, Path(checkpoint))
        digest.update(file_sha256(Path(checkpoint)).encode())
        trained = True
    model.to(device=device, dtype=dtype).eval()
    tokenizer = load_tokenizer(tokenizer_path)
    return LoadedModel(model, tokenizer, config.name, digest.hexdigest(), trained)
