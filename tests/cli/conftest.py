import json

import pytest
from click.testing import CliRunner

from hsa_memory.cli import main
from hsa_memory.cli.state import load_named_model

ENV = {"HSA_MEMORY_MODEL": "tiny", "HSA_MEMORY_DEVICE": "cpu", "HSA_MEMORY_DIR": None, "HSA_MEMORY": None}

CHAT = [
    {"role": "user", "content": "My sister Anna moved to Lisbon in May and works there as a marine biologist."},
    {"role": "assistant", "content": "Lisbon is lovely; a marine biologist there has the whole Atlantic to study."},
    {"role": "user", "content": "Our dog Rex is a three year old beagle who loves long walks by the river."},
    {"role": "assistant", "content": "Rex sounds like great company on your walks along the river."},
    {"role": "user", "content": "I am allergic to peanuts, so never suggest a recipe that contains them."},
    {"role": "assistant", "content": "Noted: no peanuts in any recipe I suggest, ever."},
]


def write_jsonl(path, messages):
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


@pytest.fixture(scope="session", autouse=True)
def tiny_model():
    """Load the seeded tiny preset once; every in-process command then reuses it."""
    return load_named_model("tiny", "cpu")


def invoke(memory, *args, input=None):
    prefix = ["--memory", str(memory)] if memory is not None else []
    return CliRunner().invoke(main, prefix + [str(a) for a in args], input=input, env=ENV)


@pytest.fixture
def cli(tmp_path):
    """``cli("stats", "--json")`` runs the command in-process against ``tmp_path/memory``."""
    return lambda *args, input=None: invoke(tmp_path / "memory", *args, input=input)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A memory of about ten chunks made by ``ingest``, shared by a test module that only reads it."""
    folder = tmp_path_factory.mktemp("filled")
    log = write_jsonl(folder / "chat.jsonl", [{**m, "content": f"{m['content']} (day {day})",
                                               "metadata": {"session": f"s{day % 2}"}}
                                              for day in range(5) for m in CHAT])
    result = invoke(folder / "memory", "ingest", log)
    assert result.exit_code == 0, result.output
    return folder / "memory"
