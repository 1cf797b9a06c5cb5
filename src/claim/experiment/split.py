"""Patient-level train/test split written as two folders in the input's layout (files copied, inputs untouched)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from claim.data.augmented import refuse_augmented
from claim.data.io import write_json
from claim.data.layouts import read_dataset
from claim.data.patient import Layout, Patient
from claim.data.write import check_output_location, copy_patient, write_nnunet_dataset_json
from claim.errors import ClaimError
from claim.output import staged_output

__all__ = ["SplitResult", "SPLIT_FILE", "choose_split", "split_dataset", "write_subsets"]

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class SplitResult:
    """Patient ids on each side and the two folders written."""

    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]
    train_dir: Path
    test_dir: Path
    seed: int


def choose_split(
    pathological_ids: list[str], normal_ids: list[str], test_pathological: int, test_normal: int, seed: int
) -> tuple[list[str], list[str]]:
    """Draw ``test_pathological`` + ``test_normal`` test patients (seeded); the rest is training. Sorted lists."""
    if not 0 <= test_pathological <= len(pathological_ids):
        raise ClaimError(f"--test-pathological {test_pathological} not in 0..{len(pathological_ids)} (pathological)")
    if not 0 <= test_normal <= len(normal_ids):
        raise ClaimError(f"--test-normal {test_normal} not in 0..{len(normal_ids)} (normal patients)")
    rng = np.random.default_rng(seed)
    path_sorted, normal_sorted = sorted(pathological_ids), sorted(normal_ids)
    test = [path_sorted[i] for i in rng.permutation(len(path_sorted))[:test_pathological]]
    test += [normal_sorted[i] for i in rng.permutation(len(normal_sorted))[:test_normal]]
    train = [p for p in path_sorted + normal_sorted if p not in set(test)]
    return sorted(train), sorted(test)


def write_subsets(patients: list[Patient], data_dir: Path, out_dir: Path, subsets: dict[str, list[str]]) -> None:
    """Copy each subset's patients (ids) from ``data_dir`` into ``out_dir/<subset>`` in the input's layout."""
    by_id = {p.patient_id: p for p in patients}
    for side, ids in subsets.items():
        (out_dir / side).mkdir(parents=True, exist_ok=True)
        for pid in ids:
            copy_patient(by_id[pid], data_dir, out_dir / side)
        if patients and patients[0].layout == Layout.NNUNET:
            write_nnunet_dataset_json(out_dir / side, len(ids), name=f"claim_{side}")


def split_dataset(
    data_dir: Path, out_dir: Path, *, test_pathological: int, test_normal: int, seed: int = 0, progress: bool = False,
    overwrite: bool = False,
) -> SplitResult:
    """Split ``data_dir`` by patient into ``OUT/train`` and ``OUT/test`` (same layout) plus ``OUT/split.json``.

    Pathological means the patient holds infarct labels. No patient appears on both sides; the choice depends
    only on the sorted patient ids and ``seed``. Refuses an output inside the input or holding other files.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_output_location(out_dir, data_dir)
    # Test patients must be unseen: no synthetic patient there, and no generator trained on them behind the train side.
    refuse_augmented(data_dir, "split the real data, then augment the train side")
    patients = read_dataset(data_dir, progress=progress)
    if len({p.patient_id for p in patients}) != len(patients):
        raise ClaimError(f"{data_dir}: duplicate patient ids")
    pathological = [p.patient_id for p in patients if p.has_infarct]
    normal = [p.patient_id for p in patients if not p.has_infarct]
    train_ids, test_ids = choose_split(pathological, normal, test_pathological, test_normal, seed)
    config = {"test_pathological": test_pathological, "test_normal": test_normal, "seed": seed}
    with staged_output(out_dir, "split", overwrite=overwrite, config=config, inputs=[data_dir]) as staging:
        write_subsets(patients, data_dir, staging, {"train": train_ids, "test": test_ids})
        write_json(
            staging / SPLIT_FILE,
            {
                "source": str(data_dir),
                "seed": seed,
                "layout": patients[0].layout.value,
                "train": train_ids,
                "test": test_ids,
                "train_pathological": [p for p in train_ids if p in set(pathological)],
                "test_pathological": [p for p in test_ids if p in set(pathological)],
            },
        )
    return SplitResult(tuple(train_ids), tuple(test_ids), out_dir / "train", out_dir / "test", seed)
