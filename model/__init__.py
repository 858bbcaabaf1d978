"""The HSA-UltraLong model: config, layers, base-weight loading, tokenizer, generation, checkpoints."""
from .config import PRESETS, ConfigError, HSAConfig, get_preset
from .memory import ExternalMemory, RetrievalTrace, TensorMemory
from .modeling import ChunkMemory, EncodedChunks, HSAForCausalLM, HSAModel, KVCache, StreamState

__all__ = [
    "PRESETS", "ConfigError", "HSAConfig", "get_preset", "ExternalMemory", "RetrievalTrace", "TensorMemory",
    "ChunkMemory", "EncodedChunks", "HSAForCausalLM", "HSAModel", "KVCache", "StreamState",
]
