"""R data reader, on files written by R 4.2 (fixtures/make_fixtures.R).

Scenarios: a lazy-load database with each of R's three blob compressions; .rds files in
serialisation versions 2 and 3, gzip/bzip2/xz/uncompressed; an .rda save file; NA, UTF-8 and
latin-1 strings, attributes (names, data.frame, factor); broken input names the file.
"""
import math
import struct
from pathlib import Path

import pytest

from hsa_memory.training.data import rdata

FIXTURES = Path(__file__).parent / "fixtures"
BOOKS = ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]


@pytest.mark.parametrize("level", [1, 2, 3])
def test_lazyload_db_each_compression(level):
    data = rdata.read_lazyload_db(FIXTURES / f"austen_compress{level}")
    assert sorted(data) == BOOKS
    assert all(v.kind == "character" and len(v) == 90 for v in data.values())
    assert data["persuasion"][0] == "Persuasion"
    assert data["emma"][:3] == ["EMMA", "", "By Jane Austen"]


def test_lazyload_db_reads_only_the_names_asked():
    data = rdata.read_lazyload_db(FIXTURES / "austen_compress1", names=["emma"])
    assert list(data) == ["emma"]


def test_lazyload_db_unknown_name_lists_what_exists():
    with pytest.raises(rdata.RDataError, match="persuasion"):
        rdata.read_lazyload_db(FIXTURES / "austen_compress1", names=["ulysses"])


@pytest.mark.parametrize("name", ["values_v3.rds", "values_v2_bzip2.rds", "values_xz.rds", "values_plain.rds"])
def test_rds_values(name):
    values = rdata.read_rds(FIXTURES / name).to_dict()
    assert values["chars"] == ["plain", None, "café", ""]
    assert values["latin"] == ["naïve"]
    assert values["ints"] == [1, None, -7]
    assert values["seq"] == [1, 2, 3, 4, 5]
    assert values["dbl"][0] == 1.5 and math.isnan(values["dbl"][1]) and values["dbl"][2] == -math.inf
    assert values["lgl"] == [True, None, False]
    assert values["named"].to_dict() == {"a": 1, "b": 2}
    assert values["nested"].to_dict()["z"] == [[1]]
    frame = values["frame"]
    assert frame.attributes["class"] == ["data.frame"]
    assert frame.to_dict()["s"] == ["a", "b", "c"]
    assert values["fac"] == [2, 1, 2] and values["fac"].attributes["levels"] == ["hi", "lo"]


def test_rda_save_file():
    objects = rdata.read_rda(FIXTURES / "sample.rda")
    assert sorted(objects) == ["persuasion_head", "values"]
    assert objects["persuasion_head"][0] == "Persuasion" and len(objects["persuasion_head"]) == 40


def test_unserialize_a_hand_built_string_vector():
    def ints(*xs):
        return b"".join(struct.pack(">i", x) for x in xs)

    body = b"X\n" + ints(2, 0x040201, 0x020300)
    body += ints(16, 2)  # STRSXP of length 2
    body += ints(9 | (8 << 12), 2) + b"hi"  # CHARSXP, UTF-8
    body += ints(9, -1)  # NA_STRING
    assert rdata.unserialize(body) == ["hi", None]


def test_non_xdr_input_is_refused_with_the_source_named(tmp_path):
    path = tmp_path / "ascii.rds"
    path.write_bytes(b"A\n2\n")
    with pytest.raises(rdata.RDataError, match="ascii.rds.*XDR"):
        rdata.read_rds(path)


def test_truncated_input_says_so():
    data = (FIXTURES / "values_plain.rds").read_bytes()[:200]
    with pytest.raises(rdata.RDataError, match="truncated"):
        rdata.unserialize(data, "cut.rds")


def test_missing_blob_file_names_both_files(tmp_path):
    (tmp_path / "db.rdx").write_bytes((FIXTURES / "austen_compress1.rdx").read_bytes())
    with pytest.raises(rdata.RDataError, match="db.rdb"):
        rdata.read_lazyload_db(tmp_path / "db")
