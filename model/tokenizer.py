"""Tokenizer and ChatML: the base model's byte-level BPE, without ``transformers``.

``assets/tokenizer.json`` was made once from the SmolLM2 GGUF by ``tokenizer_from_gguf`` (Apache-2.0);
other GGUF bases get theirs built the same way, Hugging Face folders bring their own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

ASSETS = Path(__file__).parent / "assets"
DEFAULT_TOKENIZER = ASSETS / "tokenizer.json"
ROLES = ("system", "user", "assistant", "tool")
DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def tokenizer_from_gguf(path: Path) -> Tokenizer:
    """Rebuild a GGUF's "gpt2"-model BPE (SmolLM2's "smollm" pre-tokenizer: single digits + GPT-2 regex)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    vocab = {token: i for i, token in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], ignore_merges=False)
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    # token type 3 = control tokens (<|im_start|>, <|im_end|>, <|endoftext|>, …)
    tokenizer.add_special_tokens([tokens[i] for i, kind in enumerate(types) if kind == 3])
    return tokenizer


def load_tokenizer(path: Path | None = None) -> Tokenizer:
    path = Path(path) if path is not None else DEFAULT_TOKENIZER
    if path.suffix == ".gguf":
        return tokenizer_from_gguf(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        from .weights import WeightsError

        raise WeightsError(f"tokenizer file {path} is missing; a Hugging Face base folder needs its tokenizer.json")
    return Tokenizer.from_file(str(path))


def render_turn(role: str, content: str) -> str:
    """One message as a ChatML turn: how events enter the stream and how training renders them."""
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def render_chatml(messages: Iterable[Mapping[str, str]], add_generation_prompt: bool = False,
                  system_prompt: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """SmolLM2's chat template: a default system turn first unless the messages bring one."""
    messages = list(messages)
    parts = []
    if system_prompt is not None and (not messages or messages[0]["role"] != "system"):
        parts.append(f"<|im_start|>system\n{system_prompt}<|im_end|>\n")
    for message in messages:
        parts.append(render_turn(message["role"], message["content"]))
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)
