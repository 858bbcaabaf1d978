"""Scenarios: ask prints the answer then its citations, or one JSON object; --stream prints the text
as it comes, or JSON events ending with the whole answer; search lists ranked chunks (at most k),
as text or JSON. The tiny random model makes the wording meaningless: only shapes are checked."""
import json

from .conftest import invoke


def test_ask_prints_the_answer_and_its_citations(filled):
    result = invoke(filled, "ask", "Where does Anna live?", "--max-tokens", 4)
    assert result.exit_code == 0, result.output
    answer, _, citations = result.stdout.partition("\nCitations:\n")
    assert citations.startswith("[1] chunk ")


def test_ask_json(filled):
    result = invoke(filled, "--json", "ask", "Where does Anna live?", "--max-tokens", 4, "--citations", 2)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {"text", "citations", "timings", "tokens"}
    assert 1 <= len(answer["citations"]) <= 2 and 1 <= answer["tokens"] <= 4
    assert set(answer["citations"][0]) == {"chunk_id", "text", "weight", "roles", "time"}


def test_ask_stream_json_ends_with_the_answer(filled):
    result = invoke(filled, "ask", "Where does Anna live?", "--max-tokens", 4, "--stream", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(e["type"] == "delta" for e in events[:-1]) and events[-1]["type"] == "answer"
    assert "".join(e["text"] for e in events[:-1]).strip() == events[-1]["text"]


def test_ask_copy_bias_option(filled):
    """--copy-bias 0 (the model alone) answers; a negative strength is a usage error naming the option."""
    assert invoke(filled, "ask", "Where does Anna live?", "--max-tokens", 4, "--copy-bias", 0).exit_code == 0
    result = invoke(filled, "ask", "Where does Anna live?", "--copy-bias", -1)
    assert result.exit_code == 2 and "--copy-bias" in result.output


def test_ask_stream_text(filled):
    result = invoke(filled, "ask", "Where does Anna live?", "--max-tokens", 4, "--stream", "--citations", 0)
    assert result.exit_code == 0 and "Citations:" not in result.stdout


def test_search_lists_at_most_k_chunks(filled):
    hits = json.loads(invoke(filled, "search", "Rex the beagle", "-k", 3, "--json").stdout)
    assert 1 <= len(hits) <= 3
    assert set(hits[0]) == {"chunk_id", "text", "score", "roles", "time"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    text = invoke(filled, "search", "Rex the beagle", "-k", 1)
    assert text.exit_code == 0 and text.stdout.startswith(f"[1] chunk {hits[0]['chunk_id']}  score ")
