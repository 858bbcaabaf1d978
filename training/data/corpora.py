"""Public-domain and permissive text from Debian packages, as clean paragraphs.

Four corpora (licences and uses in ``training/corpora.md``):

- ``austen``: six Jane Austen novels from ``r-cran-janeaustenr``, read from the package's R
  lazy-load database with :mod:`.rdata` (no R). *Persuasion* is held out for the fluency eval.
- ``kjv``: the King James Bible from ``bible-kjv`` (its ``bible`` program dumps the text).
- ``fortunes``: quotations and short dialogues from ``fortunes``, a conservative subset of files.
- ``wordnet``: WordNet 3.0 glosses with their example sentences, from ``wordnet-base``.

GPL corpora (``dict-gcide``, ``linux-doc``) are deliberately absent.

Parsed text is cached as JSON under ``~/.cache/hsa-memory/corpora/`` (``$HSA_MEMORY_CORPORA``
overrides the folder). A cache is used even when its Debian package is gone, so a cache built
here can be carried to a machine without a package registry.

>>> ensure_corpora()                      # doctest: +SKIP
>>> train = load_corpus("austen", split="train")  # doctest: +SKIP
>>> heldout = load_corpus("austen", split="heldout")  # Persuasion  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import rdata
from .fallback import FALLBACK_PARAGRAPHS

__all__ = [
    "CORPORA",
    "AUSTEN_BOOKS",
    "HELDOUT_BOOK",
    "Corpus",
    "CorpusUnavailable",
    "Gloss",
    "cache_dir",
    "ensure_corpora",
    "load_corpus",
    "austen_books",
    "wordnet_glosses",
    "fallback_paragraphs",
    "available_corpora",
    "parse_austen_lines",
]

logger = logging.getLogger(__name__)

# bump when parsing changes, so stale caches are rebuilt
CACHE_FORMAT = 1

# publication order; Persuasion (published with Northanger Abbey, 1817) is the held-out book
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
HELDOUT_BOOK = "persuasion"
AUSTEN_TITLES = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
AUSTEN_DB = "usr/lib/R/site-library/janeaustenr/data/Rdata"

# fortune files kept: quotations, jokes, short dialogues. Left out: ASCII art, quotes from
# copyrighted fiction, TV and comics (pratchett, startrek, zippy), song lyrics (songs-poems),
# ethnic and men-women jokes, and the untranslated file.
FORTUNE_FILES = (
    "computers", "cookie", "definitions", "drugs", "education", "food", "fortunes", "goedel",
    "humorists", "kids", "law", "linux", "linuxcookie", "literature", "love", "magic", "medicine",
    "miscellaneous", "news", "people", "perl", "pets", "platitudes", "politics", "riddles",
    "science", "sports", "tao", "wisdom", "work",
)
FORTUNE_DIR = "usr/share/games/fortunes"
_FORTUNE_LINE_START = re.compile(r"^(--|[A-Z][\w.' ]{0,24}:\s)")
_FORTUNE_BLOCKLIST = re.compile(r"\b(fuck\w*|shit\w*|cunt\w*|nigg\w*|rape\w*|whore\w*|fag\w*)\b", re.I)

WORDNET_DIR = "usr/share/wordnet"
WORDNET_POS = (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r"))
_POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}

KJV_BINARY = "usr/bin/bible"
KJV_DATA = "usr/lib/bible.data"
# verses are grouped into paragraphs of about this many words, never across chapters
KJV_PARAGRAPH_WORDS = 90


class CorpusUnavailable(RuntimeError):
    """A corpus is neither cached nor installed: run ``ensure_corpora()`` where apt works, or carry the cache."""


@dataclass(frozen=True)
class Corpus:
    name: str
    packages: tuple[str, ...]
    licence: str
    description: str


CORPORA: dict[str, Corpus] = {
    "austen": Corpus(
        "austen", ("r-cran-janeaustenr",), "texts public domain; package MIT",
        "six Jane Austen novels (Persuasion held out)",
    ),
    "kjv": Corpus(
        "kjv", ("bible-kjv", "bible-kjv-text"), "public domain", "King James Bible, verses grouped into paragraphs",
    ),
    "fortunes": Corpus(
        "fortunes", ("fortunes", "fortunes-min"), "BSD (collection); quotations of mixed origin",
        "quotations, jokes, short dialogues",
    ),
    "wordnet": Corpus(
        "wordnet", ("wordnet-base",), "WordNet 3.0 licence (permissive, BSD-like)",
        "dictionary glosses with example sentences",
    ),
}


@dataclass(frozen=True)
class Gloss:
    """One WordNet synset: its lemmas, part of speech, definition and example sentences."""

    lemmas: tuple[str, ...]
    pos: str
    definition: str
    examples: tuple[str, ...]

    def to_paragraph(self) -> str:
        text = f"{', '.join(self.lemmas)} ({self.pos}): {self.definition}."
        if self.examples:
            text += " For example: " + "; ".join(f'"{e}"' for e in self.examples) + "."
        return text


def cache_dir() -> Path:
    """Where parsed corpora (and packages extracted without root) are kept."""
    override = os.environ.get("HSA_MEMORY_CORPORA")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hsa-memory" / "corpora"


def _roots() -> list[Path]:
    # packages installed system-wide, or extracted into the cache without root
    return [Path("/"), cache_dir() / "debs"]


def _find(relative: str) -> Path | None:
    for root in _roots():
        path = root / relative
        if path.exists():
            return path
    return None


def _source_files(name: str) -> list[Path] | None:
    if name == "austen":
        stem = _find(AUSTEN_DB + ".rdb")
        index = _find(AUSTEN_DB + ".rdx")
        return [index, stem] if stem and index else None
    if name == "kjv":
        binary, data = _find(KJV_BINARY), _find(KJV_DATA)
        return [binary, data] if binary and data else None
    if name == "fortunes":
        folder = _find(FORTUNE_DIR)
        if folder is None:
            return None
        files = [folder / f for f in FORTUNE_FILES if (folder / f).is_file()]
        return files or None
    if name == "wordnet":
        files = [_find(f"{WORDNET_DIR}/data.{pos}") for pos, _ in WORDNET_POS]
        return files if all(files) else None
    raise ValueError(f"unknown corpus {name!r}; choose from {sorted(CORPORA)}")


def _signature(files: list[Path]) -> list[list[Any]]:
    return [[str(p), p.stat().st_size] for p in files]


# parsing --------------------------------------------------------------------------------------

_AUSTEN_HEADING = re.compile(r"^(chapter|volume)\b[\s\dIVXLC.]*$", re.I)
_AUSTEN_END = {"FINIS", "THE END", "Finis", "A NOTE ON THE TEXT"}


def parse_austen_lines(lines: Iterable[str | None]) -> list[str]:
    """Turn a novel's text lines (as janeaustenr stores them) into clean paragraphs.

    Front matter before the first chapter heading, chapter/volume headings, lines without a
    lower-case letter (titles, "* * *") and everything after "FINIS"/"THE END" are dropped;
    ``_italics_`` markers are removed and whitespace is collapsed.
    """
    paragraphs: list[str] = []
    current: list[str] = []
    started = False
    for line in list(lines) + [""]:
        line = (line or "").strip()
        if line:
            current.append(line)
            continue
        if not current:
            continue
        text = " ".join(current)
        current = []
        if _AUSTEN_HEADING.match(text):
            started = True
            continue
        if text in _AUSTEN_END:
            break
        if not started or not re.search(r"[a-z]", text):
            continue
        text = re.sub(r"_+", "", text)
        paragraphs.append(re.sub(r"\s+", " ", text).strip())
    return paragraphs


def _build_austen(files: list[Path]) -> dict[str, Any]:
    stem = files[0].with_suffix("")
    novels = rdata.read_lazyload_db(stem, names=list(AUSTEN_BOOKS))
    return {"books": {book: parse_austen_lines(novels[book]) for book in AUSTEN_BOOKS}}


_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def parse_kjv_verses(lines: Iterable[str], paragraph_words: int = KJV_PARAGRAPH_WORDS) -> list[str]:
    """Group ``bible -f`` output (one ``Ge1:1 text`` verse a line) into paragraphs within chapters."""
    paragraphs: list[str] = []
    current: list[str] = []
    words = 0
    chapter = None
    for line in lines:
        match = _VERSE.match(line.rstrip("\n"))
        if match is None:
            continue
        book, chap, _, text = match.groups()
        if (book, chap) != chapter or words >= paragraph_words:
            if current:
                paragraphs.append(" ".join(current))
            current, words, chapter = [], 0, (book, chap)
        text = re.sub(r"\s+", " ", text).strip()
        current.append(text)
        words += len(text.split())
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _build_kjv(files: list[Path]) -> dict[str, Any]:
    binary, data = files
    try:
        result = subprocess.run(
            [str(binary), "-p", str(data.parent), "-f", "gen1:1-rev22:21"],
            capture_output=True, text=True, check=True, timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise CorpusUnavailable(f"running {binary} failed ({error}); reinstall bible-kjv") from error
    return {"paragraphs": parse_kjv_verses(result.stdout.splitlines())}


def parse_fortunes(text: str) -> list[str]:
    """Split a fortune file on ``%`` lines; keep prose-like entries, whitespace tidied."""
    entries = []
    for block in re.split(r"^%\s*$", text, flags=re.M):
        lines = [re.sub(r"[ \t]+", " ", line).strip() for line in block.strip("\n").splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            continue
        # hard-wrapped lines are rejoined; attributions and speaker turns keep their own line
        entry = lines[0]
        for line in lines[1:]:
            entry += ("\n" if _FORTUNE_LINE_START.match(line) else " ") + line
        letters = sum(c.isalpha() for c in entry)
        if letters < 0.6 * len(entry.replace(" ", "").replace("\n", "")) or "\b" in entry:
            continue
        if _FORTUNE_BLOCKLIST.search(entry):
            continue
        entries.append(entry)
    return entries


def _build_fortunes(files: list[Path]) -> dict[str, Any]:
    paragraphs: list[str] = []
    for path in sorted(files, key=lambda p: p.name):
        paragraphs += parse_fortunes(path.read_bytes().decode("utf-8", errors="replace"))
    return {"paragraphs": paragraphs}


def parse_wordnet_data(lines: Iterable[str]) -> list[Gloss]:
    """Parse a WordNet ``data.<pos>`` file: one synset a line, gloss after ``|``."""
    glosses = []
    for line in lines:
        if line.startswith("  ") or "|" not in line:
            continue
        head, gloss = line.split("|", 1)
        fields = head.split()
        pos = _POS_NAMES[fields[2]]
        count = int(fields[3], 16)
        lemmas = tuple(re.sub(r"\(\w+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count))
        parts = [p.strip() for p in gloss.strip().split(";")]
        definition = "; ".join(p for p in parts if p and not p.startswith('"'))
        examples = tuple(p.strip('"').strip() for p in parts if p.startswith('"'))
        if definition:
            glosses.append(Gloss(lemmas, pos, definition, examples))
    return glosses


def _build_wordnet(files: list[Path]) -> dict[str, Any]:
    glosses = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            glosses += parse_wordnet_data(f)
    return {"glosses": [[list(g.lemmas), g.pos, g.definition, list(g.examples)] for g in glosses]}


_BUILDERS: dict[str, Callable[[list[Path]], dict[str, Any]]] = {
    "austen": _build_austen,
    "kjv": _build_kjv,
    "fortunes": _build_fortunes,
    "wordnet": _build_wordnet,
}


# cache ----------------------------------------------------------------------------------------

def _cache_path(name: str) -> Path:
    return cache_dir() / f"{name}.json"


def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False)
            os.fchmod(f.fileno(), 0o644)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_cache(name: str) -> dict[str, Any] | None:
    path = _cache_path(name)
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable corpus cache %s (%s)", path, error)
        return None
    if payload.get("format") != CACHE_FORMAT or payload.get("corpus") != name:
        return None
    return payload


_MEMO: dict[str, dict[str, Any]] = {}


def _load_payload(name: str, *, install: bool) -> dict[str, Any]:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose from {sorted(CORPORA)}")
    memo_key = f"{cache_dir()}:{name}"
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    files = _source_files(name)
    cached = _read_cache(name)
    # a cache stands when its source is gone (carried elsewhere) or unchanged
    if cached is not None and (files is None or cached.get("source") == _signature(files)):
        _MEMO[memo_key] = cached["data"]
        return cached["data"]
    if files is None:
        if not install:
            raise CorpusUnavailable(
                f"corpus {name!r} is not cached in {cache_dir()} and Debian package(s) "
                f"{', '.join(CORPORA[name].packages)} are not installed; run "
                f"hsa_memory.training.data.corpora.ensure_corpora([{name!r}]) on a machine with apt"
            )
        _install(CORPORA[name].packages)
        files = _source_files(name)
        if files is None:
            raise CorpusUnavailable(
                f"installed {', '.join(CORPORA[name].packages)} but the files of corpus {name!r} "
                f"are still missing under {[str(r) for r in _roots()]}"
            )
    logger.info("parsing corpus %s from %s", name, files[0])
    data = _BUILDERS[name](files)
    _write_atomic(_cache_path(name), {
        "format": CACHE_FORMAT, "corpus": name, "source": _signature(files), "data": data,
    })
    _MEMO[memo_key] = data
    return data


# installing -----------------------------------------------------------------------------------

def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(command, capture_output=True, text=True, env=env, **kwargs)


def _install(packages: tuple[str, ...], method: str = "auto") -> None:
    if shutil.which("apt-get") is None:
        raise CorpusUnavailable(
            f"apt-get not found: cannot install {' '.join(packages)}; build the corpus cache "
            f"({cache_dir()}) on a Debian machine and copy it here"
        )
    if method == "auto":
        method = "apt" if os.geteuid() == 0 else "extract"
    if method == "apt":
        command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
        logger.info("installing %s", " ".join(packages))
        result = _run(command)
        if result.returncode != 0:
            # a fresh machine may have no package lists yet
            _run(["apt-get", "update"])
            result = _run(command)
        if result.returncode != 0:
            raise CorpusUnavailable(
                f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
            )
        return
    if method != "extract":
        raise ValueError(f"unknown install method {method!r}; use 'auto', 'apt' or 'extract'")
    # without root: download the .deb files and unpack them into the cache
    if shutil.which("dpkg-deb") is None:
        raise CorpusUnavailable("dpkg-deb not found: cannot unpack downloaded packages; install as root instead")
    target = cache_dir() / "debs"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        logger.info("downloading %s", " ".join(packages))
        result = _run(["apt-get", "download", *packages], cwd=tmp)
        if result.returncode != 0:
            raise CorpusUnavailable(
                f"`apt-get download {' '.join(packages)}` failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-500:]}; as root, run `apt-get update` first"
            )
        for deb in sorted(Path(tmp).glob("*.deb")):
            result = _run(["dpkg-deb", "-x", str(deb), str(target)])
            if result.returncode != 0:
                raise CorpusUnavailable(f"`dpkg-deb -x {deb.name}` failed: {result.stderr.strip()[-500:]}")


def ensure_corpora(names: Iterable[str] | None = None, *, install: bool = True) -> dict[str, int]:
    """Make the corpora loadable: install missing Debian packages, parse them, fill the cache.

    As root the packages are installed with ``apt-get install --no-install-recommends``;
    otherwise they are downloaded and unpacked into the cache folder. Returns the number of
    paragraphs of each corpus. Raises :class:`CorpusUnavailable` naming what failed.
    """
    counts = {}
    for name in names or CORPORA:
        _load_payload(name, install=install)
        counts[name] = len(load_corpus(name))
    return counts


def available_corpora() -> list[str]:
    """Corpora that load without installing anything (cached or their package present)."""
    return [name for name in CORPORA if _read_cache(name) is not None or _source_files(name) is not None]


# public loaders -------------------------------------------------------------------------------

def austen_books(*, install: bool = False) -> dict[str, list[str]]:
    """The six novels as paragraphs, keyed by janeaustenr's names, in publication order."""
    books = _load_payload("austen", install=install)["books"]
    return {book: list(books[book]) for book in AUSTEN_BOOKS}


def wordnet_glosses(*, install: bool = False) -> list[Gloss]:
    """Every WordNet synset with a definition, nouns, verbs, adjectives then adverbs, file order."""
    rows = _load_payload("wordnet", install=install)["glosses"]
    return [Gloss(tuple(lemmas), pos, definition, tuple(examples)) for lemmas, pos, definition, examples in rows]


def load_corpus(name: str, *, split: str = "all", install: bool = False) -> list[str]:
    """Paragraphs of one corpus in a stable order.

    ``split``: ``"all"``, ``"train"`` or ``"heldout"``. Only ``austen`` has a held-out part
    (*Persuasion*); the other corpora are all ``"train"`` and their ``"heldout"`` is empty.
    """
    if split not in ("all", "train", "heldout"):
        raise ValueError(f"unknown split {split!r}; use 'all', 'train' or 'heldout'")
    data = _load_payload(name, install=install)
    if name == "austen":
        books = [b for b in AUSTEN_BOOKS if split == "all" or (b == HELDOUT_BOOK) == (split == "heldout")]
        return [p for b in books for p in data["books"][b]]
    if split == "heldout":
        return []
    if name == "wordnet":
        return [g.to_paragraph() for g in wordnet_glosses()]
    return list(data["paragraphs"])


def fallback_paragraphs() -> list[str]:
    """The committed filler (plain sentences written for this project): works without apt."""
    return list(FALLBACK_PARAGRAPHS)
