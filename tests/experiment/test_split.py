from __future__ import annotations

import json

import pytest

from claim.cli import main
from claim.data.layouts import read_dataset
from claim.errors import ClaimError, InputError
from claim.experiment.split import choose_split, split_dataset
from claim.phantom import write_phantom_cohort
from tests.conftest import SMALL


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    write_phantom_cohort(root, 8, seed=5, config=SMALL, progress=False)
    return root


def _digest(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_split_sides_are_disjoint_counted_and_complete(cohort_dir, tmp_path):
    before = _digest(cohort_dir)
    result = split_dataset(cohort_dir, tmp_path / "split", test_pathological=2, test_normal=1, seed=3)
    assert _digest(cohort_dir) == before  # inputs untouched
    train, test = read_dataset(result.train_dir), read_dataset(result.test_dir)
    train_ids, test_ids = {p.patient_id for p in train}, {p.patient_id for p in test}
    assert not train_ids & test_ids
    assert train_ids | test_ids == {p.patient_id for p in read_dataset(cohort_dir)}
    assert sum(p.has_infarct for p in test) == 2 and sum(not p.has_infarct for p in test) == 1
    record = json.loads((tmp_path / "split" / "split.json").read_text())
    assert record["seed"] == 3 and sorted(record["train"]) == sorted(train_ids) and set(record["test"]) == test_ids
    assert record["layout"] == "emidec"
    # Files are copies, byte for byte.
    original = _digest(cohort_dir)
    for path, data in _digest(result.test_dir).items():
        assert original[path] == data


def test_split_is_seeded():
    path_ids, normal_ids = [f"P{k}" for k in range(10)], [f"N{k}" for k in range(6)]
    a = choose_split(path_ids, normal_ids, 4, 2, seed=1)
    assert a == choose_split(path_ids, normal_ids, 4, 2, seed=1)
    assert a != choose_split(path_ids, normal_ids, 4, 2, seed=2)
    train, test = a
    assert len(test) == 6 and len(train) == 10 and not set(train) & set(test)
    with pytest.raises(ClaimError):
        choose_split(path_ids, normal_ids, 11, 0, seed=0)


def test_split_refuses_output_inside_input_and_cli(cohort_dir, tmp_path, capsys):
    with pytest.raises(InputError):
        split_dataset(cohort_dir, cohort_dir / "split", test_pathological=1, test_normal=1)
    out = tmp_path / "cli"
    assert main(["split", "--data", str(cohort_dir), "--out", str(out), "--test-pathological", "1",
                 "--test-normal", "1", "--seed", "0"]) == 0
    assert len(json.loads((out / "split.json").read_text())["test"]) == 2
    assert main(["split", "--data", str(cohort_dir), "--out", str(out), "--test-pathological", "1",
                 "--test-normal", "1"]) == 2  # the target exists already
    assert main(["split", "--data", str(cohort_dir), "--out", str(tmp_path / "x"), "--test-pathological", "9",
                 "--test-normal", "0"]) == 2
