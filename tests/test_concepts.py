"""ConceptTable: the one 0-based concept numbering, its files, its checks, and a store's table."""

import json

import numpy as np
import pandas as pd
import pytest

from eegvision.store.concepts import ConceptTable, normalize_concept
from eegvision.store.disk import open_store
from eegvision.store.writer import StoreWriter

NAMES = ("aircraft_carrier", "antelope", "backscratcher")


def test_files_round_trip(tmp_path):
    table = ConceptTable((2, 0, 1), NAMES, ("/gt/c.png", None, "/gt/b.png"), split="test")
    for name in ("t.json", "t.tsv", "t.csv"):
        back = ConceptTable.read(table.write(tmp_path / name), split="test")
        assert back == table, name
    assert json.loads((tmp_path / "t.json").read_text()) == {
        "split": "test", "concept_index": [2, 0, 1], "concept": list(NAMES), "image": ["/gt/c.png", None, "/gt/b.png"]}
    assert (tmp_path / "t.tsv").read_text().splitlines()[:2] == ["concept_index\tconcept\timage",
                                                                  "2\taircraft_carrier\t/gt/c.png"]
    plain = ConceptTable.from_names(NAMES)
    assert plain.index == (0, 1, 2) and plain.image == (None, None, None) and plain.to_json()["image"] is None
    assert ConceptTable.from_json(json.dumps(plain.to_json())) == plain
    assert plain.select([2, 0]) == ConceptTable((2, 0), ("backscratcher", "aircraft_carrier"))
    assert len(plain) == 3
    assert repr(plain) == "ConceptTable(split='', 3 concepts: 0 'aircraft_carrier', 1 'antelope', 2 'backscratcher')"


def test_bad_tables_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"repeated concept_index: 1 \('antelope' and 'bamboo'\)"):
        ConceptTable((0, 1, 1), ("aircraft_carrier", "antelope", "bamboo"))
    with pytest.raises(ValueError, match=r"count from 0; got negative indices \[-1\]"):
        ConceptTable((-1, 0), ("a", "b"))
    with pytest.raises(ValueError, match="got 2 indices, 3 names"):
        ConceptTable((0, 1), NAMES)
    (tmp_path / "t.tsv").write_text("index\tname\n0\ta\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) concept_index, concept; got columns \['index', 'name'\]"):
        ConceptTable.read(tmp_path / "t.tsv")
    (tmp_path / "t.csv").write_text("concept_index,concept\nfirst,a\n")
    with pytest.raises(ValueError, match="concept_index must hold whole numbers; got \\['first'\\]"):
        ConceptTable.read(tmp_path / "t.csv")
    with pytest.raises(ValueError, match="use .json, .tsv or .csv"):
        ConceptTable.from_names(NAMES).write(tmp_path / "t.txt")
    with pytest.raises(FileNotFoundError, match="not found"):
        ConceptTable.read(tmp_path / "none.tsv")


def test_differences_and_names():
    here = ConceptTable.from_names(["aircraft carrier", "antelope", "bamboo"])
    there = ConceptTable((0, 1, 3), ("aircraft_carrier", "backscratcher", "wok"))
    assert here.differences(there, "A", "B") == [
        "concept 1 is 'antelope' in A and 'backscratcher' in B",
        "1 concept(s) only in A: 2 'bamboo'",
        "1 concept(s) only in B: 3 'wok'",
    ]  # "aircraft carrier" and "aircraft_carrier" are one name
    assert here.differences(here.select([2, 1, 0])) == []  # row order does not matter
    with pytest.raises(ValueError, match="The concepts of A and B do not match: concept 1 is 'antelope' .* Fix it."):
        here.check_matches(there, "A", "B", "Fix it.")
    assert here.indices_of(["Bamboo", "aircraft-carrier"], where="m") == [2, 0]
    with pytest.raises(ValueError, match=r"m names 2 concept\(s\) that are not in the test concept table \(3 "
                                         r"concepts\): 'concept1'; 'concept2'"):
        here.with_split("test").indices_of(["concept2", "concept1", "bamboo"], where="m")
    with pytest.raises(ValueError, match="gives the name\\(s\\) 'x' to several concepts"):
        ConceptTable((0, 1), ("x", "X")).indices_of(["x"], where="m")
    assert normalize_concept(" Aircraft Carrier") == "aircraft_carrier"


def test_from_conditions_follows_the_conditions_when_each_is_a_concept():
    names = ["cat", "dog", "emu"]
    table = ConceptTable.from_conditions([2, 0, 1], names, ["/c2.jpg", "/c0.jpg", "/c1.jpg"], "test")
    assert table.index == (2, 0, 1) and table.name == ("emu", "cat", "dog") and table.image[0] == "/c2.jpg"
    several = ConceptTable.from_conditions([0, 0, 1, 1, 2, 2], names, [f"/{i}.jpg" for i in range(6)], "training")
    assert several.index == (0, 1, 2) and several.name == tuple(names) and several.image == (None,) * 3
    with pytest.raises(ValueError, match="refer to concepts 0..5 but the test split names 3 concepts"):
        ConceptTable.from_conditions([0, 5, 1, 1], names, split="test")


def test_store_concept_table(tmp_path):
    with StoreWriter(tmp_path / "s", dataset="toy", ch_names=["Cz"], sfreq=100.0, times=np.arange(3) / 100,
                     dtype="float32") as w:
        w.add("sub-01", "training", np.zeros((4, 2, 1, 3)),
              pd.DataFrame({"concept_index": [0, 0, 1, 1], "concept": ["cat", "cat", "dog", "dog"]}))
        w.add("sub-01", "test", np.zeros((3, 2, 1, 3)),
              pd.DataFrame({"concept_index": [1, 2, 0], "concept": ["gnu", "yak", "fox"],
                            "image_path": ["/t/gnu.jpg", "/t/yak.jpg", "/t/fox.jpg"]}))
    store = open_store(tmp_path / "s")
    test = store.concept_table("test")  # row i = test condition i
    assert (test.index, test.name, test.image, test.split) == (
        (1, 2, 0), ("gnu", "yak", "fox"), ("/t/gnu.jpg", "/t/yak.jpg", "/t/fox.jpg"), "test")
    training = store.concept_table("training")
    assert (training.index, training.name, training.image) == ((0, 1), ("cat", "dog"), (None, None))
    with pytest.raises(ValueError, match="Split 'val' is not in .* \\(available: test, training\\)"):
        store.concept_table("val")
