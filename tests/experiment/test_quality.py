"""Quality control of a synthetic set (claim.stages.quality): scar the judge finds and no brighter than real scar
is kept, slice by slice; too-bright scar and unfound scar are dropped; every decision is recorded."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from claim.data.layouts import read_dataset
from claim.data.write import write_patient
from claim.errors import ClaimError
from claim.evaluation.realism import contrast_units
from claim.labels import Label, infarct_mask
from claim.phantom import make_phantom
from claim.stages.quality import QUALITY_FILE, filter_synthetic, real_contrast_limit
from tests.conftest import SMALL

pytestmark = pytest.mark.slow


def _measurable(patient) -> list[int]:
    return [s for s in range(patient.n_slices) if infarct_mask(patient.label_maps[s]).sum() >= 10
            and contrast_units(patient.images[s], patient.label_maps[s]) is not None]


def test_quality_control_keeps_found_realistic_scar_slice_by_slice(smoke_study, tmp_path):
    _, out, _ = smoke_study
    judge = out / "runs" / "real_only" / "segmenter.pt"
    real = make_phantom(np.random.default_rng(3), SMALL, patient_id="Case_P900", pathological=True).patient
    scar_slices = _measurable(real)
    assert len(scar_slices) >= 2
    # The same patient with its scar painted far brighter than blood: contrast ~3 instead of real scar's ~1.
    blood = np.median(real.images[real.label_maps == Label.CAVITY])
    muscle = np.median(real.images[real.label_maps == Label.MYOCARDIUM])
    scar = np.stack([infarct_mask(m) for m in real.label_maps])
    bright = replace(real, patient_id="Case_P901", images=np.where(scar, muscle + 3.0 * (blood - muscle),
                                                                     real.images).astype(np.float32))
    synthetic = tmp_path / "synthetic"
    for patient in (real, bright):
        write_patient(patient, synthetic)
    limit = real_contrast_limit([real], 100.0)  # the brightest real slice passes
    assert 0.3 < limit < 2.0

    record = filter_synthetic(synthetic, judge, tmp_path / "qc", min_judge_dice=0.0, max_contrast=limit)
    kept = {(r["patient"], r["slice"]) for r in record["slices"] if r["kept"]}
    assert kept >= {("Case_P900", s) for s in scar_slices}
    assert not {pid for pid, _ in kept} - {"Case_P900"}  # every too-bright slice dropped
    assert all(0.0 <= r["judge_dice"] <= 1.0 for r in record["slices"])
    assert record["scar_slices"] == 2 * int(scar.reshape(len(scar), -1).any(axis=1).sum())
    written = {p.patient_id: p for p in read_dataset(tmp_path / "qc", progress=False)}
    assert set(written) == {"Case_P900"}
    rows = sorted(s for pid, s in kept)
    np.testing.assert_allclose(written["Case_P900"].images, real.images[rows], atol=1e-3)
    np.testing.assert_array_equal(written["Case_P900"].label_maps, real.label_maps[rows])
    assert (tmp_path / "qc" / QUALITY_FILE).exists()

    # A fidelity bar no slice can pass keeps nothing, and says so.
    none = filter_synthetic(synthetic, judge, tmp_path / "qc_none", min_judge_dice=1.01, max_contrast=None)
    assert none["kept_slices"] == 0 and none["kept_patients"] == 0
    assert not [p for p in (tmp_path / "qc_none").rglob("*.nii.gz")]

    # A judge that finds the scar on even slices only (and nothing on odd ones): fidelity 1 or 0 per slice.
    def even_slices(images: np.ndarray) -> np.ndarray:
        found = np.zeros(images.shape, np.uint8)
        found[::2] = real.label_maps[: len(images)][::2]
        return found

    half = filter_synthetic(synthetic, even_slices, tmp_path / "qc_half", min_judge_dice=0.5, max_contrast=None)
    kept = {(r["patient"], r["slice"]) for r in half["slices"] if r["kept"]}
    assert kept == {(pid, s) for pid in ("Case_P900", "Case_P901") for s in range(real.n_slices)
                    if s % 2 == 0 and scar[s].any()}
    assert {r["judge_dice"] for r in half["slices"]} <= {0.0, 1.0}
    with pytest.raises(ClaimError):
        filter_synthetic(synthetic, judge, synthetic, min_judge_dice=0.0, max_contrast=None)
