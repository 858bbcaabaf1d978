"""BM25 and MiniLM retrievers on tiny corpora: the right chunk first, state written without pickles."""
import json

import numpy as np

from compare_retrievers import BM25Retriever, DenseRetriever, MiniLMEncoder, bm25_tokens

TEXTS = [
    "We talked about the weather and the train to Leeds.",
    "My neighbour's parrot is called Zanzibar and it sings.",
    "The quarterly budget review moved to Thursday afternoon.",
    "I baked bread with rye flour this weekend.",
]


def test_bm25_tokens():
    assert bm25_tokens("Zanzibar's parrot, R-18592!") == ["zanzibar", "s", "parrot", "r", "18592"]


def test_bm25_finds_the_chunk_holding_a_unique_word(tmp_path):
    retriever = BM25Retriever(TEXTS)
    assert retriever.search("What is the parrot called? zanzibar", 2)[0] == 1
    assert retriever.search("when is the budget review", 4)[0] == 2
    assert sorted(retriever.search("anything", 10)) == [0, 1, 2, 3]
    written = retriever.save(tmp_path)
    data = json.loads((tmp_path / "bm25.json").read_text())
    assert data["texts"] == TEXTS and written == (tmp_path / "bm25.json").stat().st_size


def test_dense_minilm_ranks_by_meaning(tmp_path):
    encoder = MiniLMEncoder("cpu")
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    retriever = DenseRetriever(TEXTS, encoder)
    # no shared word with chunk 3 beyond meaning: baking / flour ~ "loaf", "kitchen"
    assert retriever.search("Did I make a loaf in the kitchen?", 1) == [3]
    assert retriever.search("pet bird", 1) == [1]
    retriever.save(tmp_path)
    assert np.array_equal(np.load(tmp_path / "embeddings.npy", allow_pickle=False), retriever.embeddings)
