"""Which patients a segmenter trains and validates on: the patient-level split, and ``claim augment``'s synthetic
patients kept out of validation.

A folder written by ``claim augment`` holds real and synthetic patients side by side; its ``augment.json`` says
which are which (``claim.data.augmented``). The synthetic ones train only, like ``--synthetic`` folders, so the
split (and with it the validation score and the checkpoint chosen by it) is over real patients alone, the same as
on the folder before it was augmented; and a synthetic patient painted on a validation patient is left out of
training, since it is that patient's image outside the scar.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from claim.data.augmented import synthetic_sources
from claim.data.layouts import read_dataset
from claim.data.patient import Patient
from claim.errors import ClaimError, InputError

__all__ = ["TrainingPatients", "read_patients", "split_patients", "training_patients"]

log = logging.getLogger(__name__)


def read_patients(dirs: Sequence[Path], what: str) -> list[Patient]:
    """Every patient of ``dirs``; an id in two folders is an error naming the second."""
    patients: dict[str, Patient] = {}
    for d in dirs:
        for p in read_dataset(Path(d)):
            if p.patient_id in patients:
                raise InputError(d, f"{what} patient {p.patient_id} appears in two folders")
            patients[p.patient_id] = p
    return list(patients.values())


def split_patients(patients: Sequence[Patient], val_fraction: float, seed: int) -> tuple[list[Patient], list[Patient]]:
    """Patient-level split, stratified by scar (patients with/without infarct are held out in proportion).

    ``val_fraction`` 0 holds no patient out.
    """
    if val_fraction == 0:
        return list(patients), []
    if len(patients) < 2:
        raise ClaimError(f"need at least 2 real patients to hold one out for validation, got {len(patients)}")
    rng = np.random.default_rng(seed)
    val_ids: set[str] = set()
    for group in ([p for p in patients if p.has_infarct], [p for p in patients if not p.has_infarct]):
        ids = sorted(p.patient_id for p in group)
        if ids:
            n = int(round(val_fraction * len(ids)))
            val_ids |= set(rng.permutation(ids)[:n].tolist())
    if not val_ids:
        val_ids = {sorted(p.patient_id for p in patients)[int(rng.integers(len(patients)))]}
    if len(val_ids) == len(patients):
        val_ids.discard(sorted(val_ids)[0])
    return ([p for p in patients if p.patient_id not in val_ids], [p for p in patients if p.patient_id in val_ids])


@dataclass(frozen=True)
class TrainingPatients:
    """Attributes:
    train / val: the real patients trained and validated on.
    synthetic: training-only patients: ``--synthetic`` folders' and the augmented folders' kept synthetic ones.
    augmented: ids of the augmented folders' synthetic patients in ``synthetic``.
    left_out: ids of the augmented folders' synthetic patients painted on a validation patient (not trained on).
    """

    train: list[Patient]
    val: list[Patient]
    synthetic: list[Patient]
    augmented: list[str]
    left_out: list[str]

    def record(self) -> dict:
        return {"augment_synthetic": self.augmented, "augment_synthetic_left_out": self.left_out}


def training_patients(real_dirs: Sequence[Path], synthetic_dirs: Sequence[Path], val_patients: Sequence[str] | None,
                      val_fraction: float, seed: int, *, announce: bool = True) -> TrainingPatients:
    """The split of ``real_dirs``' real patients (``val_patients``, else ``val_fraction`` by ``seed``) and the
    training-only synthetic patients; ``announce`` logs how many augmented patients train and are left out."""
    for d in synthetic_dirs:
        if synthetic_sources(Path(d)):
            raise InputError(Path(d), "a claim augment output holds real patients too: pass it as --data (its "
                                      "synthetic patients then train only), not as --synthetic")
    patients = read_patients(real_dirs, "real")
    sources: dict[str, str] = {}
    for d in real_dirs:
        sources |= synthetic_sources(Path(d))
    painted = [p for p in patients if p.patient_id in sources]
    real = [p for p in patients if p.patient_id not in sources]
    if val_patients:
        named_synthetic = sorted(set(val_patients) & set(sources))
        if named_synthetic:
            raise ClaimError(f"validation patients {named_synthetic} are synthetic (claim augment's augment.json); "
                             "validate on real patients")
        unknown = sorted(set(val_patients) - {p.patient_id for p in real})
        if unknown:
            raise ClaimError(f"validation patients {unknown} are not in {[str(d) for d in real_dirs]}")
        wanted = set(val_patients)
        train = [p for p in real if p.patient_id not in wanted]
        val = [p for p in real if p.patient_id in wanted]
    else:
        train, val = split_patients(real, val_fraction, seed)
    val_ids = {p.patient_id for p in val}
    kept = [p for p in painted if sources[p.patient_id] not in val_ids]
    left_out = sorted(p.patient_id for p in painted if sources[p.patient_id] in val_ids)
    if announce and painted:
        log.info("train-segmenter: %d synthetic patient(s) of claim augment train only, never validate%s", len(kept),
                 f"; {len(left_out)} left out, painted on validation patients" if left_out else "")
    synthetic = read_patients(synthetic_dirs, "synthetic")
    both = sorted({p.patient_id for p in patients} & {p.patient_id for p in synthetic})
    if both:
        raise ClaimError(f"patients {both[:3]} are in a --data folder and a --synthetic folder; give each once")
    return TrainingPatients(train, val, kept + synthetic, sorted(p.patient_id for p in kept), left_out)
