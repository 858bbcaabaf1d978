"""Corpora: parsers on small inputs, the cache, splits, and the real Debian packages when present.

Scenarios: the Austen parser on R-written fixtures (always) and on the installed r-cran-janeaustenr
(skipped without it); KJV, fortune and WordNet parsers on inline samples; a fake package tree
builds the JSON cache, which then outlives its source; a missing corpus names the fix;
Persuasion is held out; no GPL corpus is listed.
"""
import json
import shutil
from pathlib import Path

import pytest

from hsa_memory.training.data import corpora, rdata

FIXTURES = Path(__file__).parent / "fixtures"
REAL_AUSTEN = Path("/") / corpora.AUSTEN_DB

WORDNET_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by
00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known or inferred to have its own distinct existence (living or nonliving)
04951373 07 n 02 glow 0 gleam 1 001 @ 04950126 n 0000 | an alert and refreshed state; "she was in the first glow of health"; "a gleam of hope"
"""
WORDNET_ADJ = "00530354 00 s 02 collected 0 poised(p) 0 000 | in full control of your faculties; \"the witness remained collected\"\n"
FORTUNES = """\
A bore is a man who talks so much about himself that you can't talk about
yourself.
%
A compliment is something like a kiss through a veil.
\t\t-- Victor Hugo
%
%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
"""


@pytest.fixture
def fake_debs(tmp_path, monkeypatch):
    """A cache dir and a package tree under tmp_path; the real system packages are out of sight."""
    monkeypatch.setenv("HSA_MEMORY_CORPORA", str(tmp_path / "cache"))
    root = tmp_path / "debs"
    monkeypatch.setattr(corpora, "_roots", lambda: [root])
    data = root / Path(corpora.AUSTEN_DB).parent
    data.mkdir(parents=True)
    for suffix in (".rdx", ".rdb"):
        shutil.copy(FIXTURES / f"austen_compress1{suffix}", data / f"Rdata{suffix}")
    fortunes = root / corpora.FORTUNE_DIR
    fortunes.mkdir(parents=True)
    (fortunes / "people").write_text(FORTUNES)
    (fortunes / "songs-poems").write_text("Some lyrics that stay out.\n%\n")
    wordnet = root / corpora.WORDNET_DIR
    wordnet.mkdir(parents=True)
    (wordnet / "data.noun").write_text(WORDNET_NOUN)
    (wordnet / "data.adj").write_text(WORDNET_ADJ)
    (wordnet / "data.verb").write_text("")
    (wordnet / "data.adv").write_text("")
    return root


def test_austen_parser_on_r_fixture():
    books = rdata.read_lazyload_db(FIXTURES / "austen_compress2")
    paragraphs = corpora.parse_austen_lines(books["prideprejudice"])
    assert paragraphs[0].startswith("It is a truth universally acknowledged, that a single man in possession of")
    assert not any(p.lower().startswith("chapter") or "_" in p for p in paragraphs)
    assert all("  " not in p and p == p.strip() for p in paragraphs)


def test_austen_parser_drops_front_matter_headings_and_end():
    lines = ["TITLE", "", "by Someone", "", "CHAPTER I", "", "First _line_ of", "text.", "", "* * *", "",
             "Chapter 2", "", "Second.", "", "FINIS", "", "Afterword."]
    assert corpora.parse_austen_lines(lines) == ["First line of text.", "Second."]


@pytest.mark.skipif(not REAL_AUSTEN.with_suffix(".rdb").exists(), reason="r-cran-janeaustenr is not installed")
def test_austen_parser_on_the_installed_package():
    books = rdata.read_lazyload_db(REAL_AUSTEN)
    assert sorted(books) == sorted(corpora.AUSTEN_BOOKS)
    parsed = {name: corpora.parse_austen_lines(lines) for name, lines in books.items()}
    assert all(len(p) > 900 for p in parsed.values()), {k: len(v) for k, v in parsed.items()}
    assert parsed["persuasion"][0].startswith("Sir Walter Elliot, of Kellynch Hall")
    assert parsed["persuasion"][-1].endswith("than in its national importance.")
    assert not any("_" in p or p.startswith(("CHAPTER", "Chapter")) for ps in parsed.values() for p in ps)


def test_kjv_verses_group_into_paragraphs_within_chapters():
    lines = [f"Ge1:{v} word word word." for v in range(1, 41)] + ["Ge2:1 Thus the heavens were finished."]
    paragraphs = corpora.parse_kjv_verses(lines, paragraph_words=30)
    assert paragraphs[-1] == "Thus the heavens were finished."
    assert all(not p.startswith("Ge") for p in paragraphs)
    assert " ".join(paragraphs[:-1]).count("word word word.") == 40


def test_fortunes_rejoin_wrapped_lines_and_keep_attributions():
    entries = corpora.parse_fortunes(FORTUNES)
    assert entries == [
        "A bore is a man who talks so much about himself that you can't talk about yourself.",
        "A compliment is something like a kiss through a veil.\n-- Victor Hugo",
    ]


def test_wordnet_glosses_split_definition_and_examples():
    glosses = corpora.parse_wordnet_data(WORDNET_NOUN.splitlines() + WORDNET_ADJ.splitlines())
    assert [g.lemmas for g in glosses] == [("entity",), ("glow", "gleam"), ("collected", "poised")]
    glow = glosses[1]
    assert glow.definition == "an alert and refreshed state"
    assert glow.examples == ("she was in the first glow of health", "a gleam of hope")
    assert glow.to_paragraph() == ('glow, gleam (noun): an alert and refreshed state. For example: '
                                   '"she was in the first glow of health"; "a gleam of hope".')
    assert glosses[2].pos == "adjective"


def test_cache_is_built_then_outlives_its_source(fake_debs):
    paragraphs = corpora.load_corpus("austen")
    cache = corpora.cache_dir() / "austen.json"
    assert json.loads(cache.read_text())["data"]["books"]["persuasion"] == corpora.austen_books()["persuasion"]
    shutil.rmtree(fake_debs / "usr/lib")
    corpora._MEMO.clear()
    assert corpora.load_corpus("austen") == paragraphs
    assert "austen" in corpora.available_corpora()


def test_changed_source_rebuilds_the_cache(fake_debs):
    corpora.load_corpus("fortunes")
    (fake_debs / corpora.FORTUNE_DIR / "people").write_text("Only this one now.\n%\n")
    corpora._MEMO.clear()
    assert corpora.load_corpus("fortunes") == ["Only this one now."]


def test_fortunes_leave_out_excluded_files(fake_debs):
    assert not any("lyrics" in p for p in corpora.load_corpus("fortunes"))


def test_wordnet_corpus_renders_glosses(fake_debs):
    assert corpora.load_corpus("wordnet")[0].startswith("entity (noun): that which is perceived")


def test_austen_splits_hold_out_persuasion(fake_debs):
    books = corpora.austen_books()
    train = corpora.load_corpus("austen", split="train")
    heldout = corpora.load_corpus("austen", split="heldout")
    assert heldout == books["persuasion"] and heldout
    assert not set(train) & set(heldout)
    assert len(train) + len(heldout) == len(corpora.load_corpus("austen"))
    assert corpora.load_corpus("fortunes", split="heldout") == []


def test_missing_corpus_names_the_packages_and_the_fix(fake_debs):
    with pytest.raises(corpora.CorpusUnavailable, match=r"bible-kjv.*ensure_corpora\(\['kjv'\]\)"):
        corpora.load_corpus("kjv")


def test_unknown_corpus_and_split_are_rejected():
    with pytest.raises(ValueError, match="dict-gcide"):
        corpora.load_corpus("dict-gcide")
    with pytest.raises(ValueError, match="heldout"):
        corpora.load_corpus("austen", split="test")


def test_no_gpl_corpus_is_listed():
    packages = {p for c in corpora.CORPORA.values() for p in c.packages}
    assert not packages & {"dict-gcide", "linux-doc", "linux-doc-6.1", "python3.11-doc"}


def test_fallback_text_is_a_few_kilobytes_of_clean_paragraphs():
    paragraphs = corpora.fallback_paragraphs()
    assert len(paragraphs) >= 30 and sum(map(len, paragraphs)) > 5000
    assert len(set(paragraphs)) == len(paragraphs)
    assert corpora.fallback_paragraphs() == paragraphs


@pytest.mark.skipif("austen" not in corpora.available_corpora(), reason="Austen corpus neither cached nor installed")
def test_real_austen_corpus_sizes():
    books = corpora.austen_books()
    assert list(books) == list(corpora.AUSTEN_BOOKS)
    assert sum(len(b) for b in books.values()) > 9000
    assert len(corpora.load_corpus("austen", split="heldout")) > 900


def test_install_without_apt_explains(fake_debs, monkeypatch):
    monkeypatch.setattr(corpora.shutil, "which", lambda name: None)
    with pytest.raises(corpora.CorpusUnavailable, match="apt-get not found.*copy it here"):
        corpora.load_corpus("kjv", install=True)
