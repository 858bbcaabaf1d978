"""An agent that keeps its conversations in an hsa-memory and asks it about earlier sessions.

    python examples/agent_loop.py [--memory DIR] [--model hsa-smollm2-135m]

Session 1 and session 2 are appended as they happen (with times and a session id); later the agent
asks questions whose answers lie in the earlier sessions and prints each answer with its citations.
"""
from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timedelta, timezone

from hsa_memory import Memory

SESSIONS = {
    "s1": [
        ("user", "Hi, I'm Maya. I just adopted a grey cat called Pixel."),
        ("assistant", "Congratulations, Maya! Pixel is a great name for a cat."),
        ("user", "I work as a nurse at St. Mary's hospital, mostly night shifts."),
        ("assistant", "Night shifts are tough; remember to rest well."),
        ("user", "My brother Leo lives in Montreal and visits every December."),
        ("assistant", "Montreal in December must be snowy!"),
    ],
    "s2": [
        ("user", "I've started learning the cello. My teacher is Mrs. Okafor."),
        ("assistant", "The cello is a beautiful instrument. Enjoy your lessons with Mrs. Okafor."),
        ("user", "I'm vegetarian, so please only suggest vegetarian recipes."),
        ("assistant", "Understood, vegetarian recipes only."),
        ("user", "My favourite book is The Left Hand of Darkness by Ursula K. Le Guin."),
        ("assistant", "A classic of science fiction."),
    ],
}
QUESTIONS = ["What is the name of my cat?", "Where does my brother live?", "Who is my cello teacher?",
             "What kind of recipes should you suggest?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", help="memory folder (default: a temporary one)")
    parser.add_argument("--model", default="hsa-smollm2-135m")
    args = parser.parse_args()
    folder = args.memory or tempfile.mkdtemp(prefix="hsa-agent-")
    start = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    with Memory(folder, model=args.model) as memory:
        for day, (session, turns) in enumerate(SESSIONS.items()):
            memory.extend({"role": role, "content": text, "time": start + timedelta(days=day * 7, minutes=i),
                           "metadata": {"session": session}} for i, (role, text) in enumerate(turns))
        print(f"memory {folder}: {memory.stats()['tokens']} tokens in {memory.stats()['chunks']} chunks")
        for question in QUESTIONS:
            answer = memory.ask(question, max_new_tokens=40)
            print(f"\nQ: {question}\nA: {answer.text}")
            for citation in answer.citations[:2]:
                print(f"   cites chunk {citation.chunk_id} ({citation.weight:.0%}): "
                      f"{' '.join(citation.text.split())[:80]}…")


if __name__ == "__main__":
    main()
