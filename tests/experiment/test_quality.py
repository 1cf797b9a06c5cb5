"""Quality control of a synthetic set (claim.stages.quality): painted slices the judge finds and no brighter than
real scar are kept; too-bright and unfound ones go back to their canvas; every decision is recorded."""

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


@pytest.fixture
def painted(tmp_path):
    """A canvas (a phantom with its scar removed), the same slices painted with real-like scar (``_a``) and with
    scar far brighter than blood (``_b``), written as a synthetic folder."""
    real = make_phantom(np.random.default_rng(3), SMALL, patient_id="Case_N900", pathological=True).patient
    scar = np.stack([infarct_mask(m) for m in real.label_maps])
    blood = np.median(real.images[real.label_maps == Label.CAVITY])
    muscle = np.median(real.images[real.label_maps == Label.MYOCARDIUM])
    canvas = replace(real, images=np.where(scar, muscle, real.images).astype(np.float32),
                     label_maps=np.where(scar, np.uint8(Label.MYOCARDIUM), real.label_maps).astype(np.uint8))
    a = replace(real, patient_id="Case_N900_a")
    b = replace(real, patient_id="Case_N900_b",
                images=np.where(scar, muscle + 3.0 * (blood - muscle), real.images).astype(np.float32))
    folder = tmp_path / "synthetic"
    for patient in (a, b):
        write_patient(patient, folder)
    return folder, {"Case_N900": canvas}, real, scar


def _by_id(folder):
    return {p.patient_id: p for p in read_dataset(folder, progress=False)}


@pytest.mark.slow
def test_too_bright_scar_goes_back_to_its_canvas(smoke_study, painted, tmp_path):
    _, out, _ = smoke_study
    folder, canvases, real, scar = painted
    measurable = [s for s in range(real.n_slices) if scar[s].sum() >= 10
                  and contrast_units(real.images[s], real.label_maps[s]) is not None]
    assert len(measurable) >= 2
    limit = real_contrast_limit([real], 100.0)  # the brightest real slice passes
    assert 0.3 < limit < 2.0
    judge = out / "runs" / "real_only" / "segmenter.pt"  # a real segmenter checkpoint
    record = filter_synthetic(folder, canvases, judge, tmp_path / "qc", min_judge_dice=0.0, max_contrast=limit)
    kept = {(r["patient"], r["slice"]) for r in record["slices"] if r["kept"]}
    assert kept >= {("Case_N900_a", s) for s in measurable}
    assert not [pid for pid, _ in kept if pid != "Case_N900_a"]  # every too-bright slice un-painted
    assert record["scar_slices"] == 2 * int(scar.reshape(len(scar), -1).any(axis=1).sum())
    assert {tuple(r["failed"]) for r in record["slices"] if r["patient"] == "Case_N900_b"} <= {
        ("contrast",), ("judge", "contrast"), ("contrast unmeasurable",), ("judge", "contrast unmeasurable")}
    assert any("contrast" in r["failed"] for r in record["slices"])
    written = _by_id(tmp_path / "qc")
    assert set(written) == {"Case_N900_a"}  # a patient without a passing slice is left out
    painted_slices = sorted(s for _, s in kept)
    np.testing.assert_allclose(written["Case_N900_a"].images[painted_slices], real.images[painted_slices],
                               atol=1e-3)
    assert (tmp_path / "qc" / QUALITY_FILE).exists()
    with pytest.raises(ClaimError):  # never over its input
        filter_synthetic(folder, canvases, judge, folder, min_judge_dice=0.0, max_contrast=None)
    with pytest.raises(ClaimError, match="no canvas"):
        filter_synthetic(folder, {}, judge, tmp_path / "qc_x", min_judge_dice=0.0, max_contrast=None)


def test_scar_the_judge_misses_is_unpainted_slice_by_slice(painted, tmp_path):
    folder, canvases, real, scar = painted
    canvas = canvases["Case_N900"]

    def even_slices(images: np.ndarray) -> np.ndarray:  # finds the scar on even slices, nothing on odd ones
        found = np.zeros(images.shape, np.uint8)
        found[::2] = real.label_maps[::2]
        return found

    record = filter_synthetic(folder, canvases, even_slices, tmp_path / "qc", min_judge_dice=0.5, max_contrast=None)
    with_scar = [s for s in range(real.n_slices) if scar[s].any()]
    assert {(r["patient"], r["slice"]) for r in record["slices"] if r["kept"]} == {
        (pid, s) for pid in ("Case_N900_a", "Case_N900_b") for s in with_scar if s % 2 == 0}
    assert {r["judge_dice"] for r in record["slices"]} == {0.0, 1.0}
    written = _by_id(tmp_path / "qc")["Case_N900_a"]
    for s in with_scar:
        source = real if s % 2 == 0 else canvas
        np.testing.assert_array_equal(written.label_maps[s], source.label_maps[s])
        np.testing.assert_allclose(written.images[s], source.images[s], atol=1e-3)
    assert {tuple(r["failed"]) for r in record["slices"] if not r["kept"]} == {("judge",)}
    with pytest.raises(ClaimError):  # an earlier output is replaced only when asked
        filter_synthetic(folder, canvases, even_slices, tmp_path / "qc", min_judge_dice=0.5, max_contrast=None)
    again = filter_synthetic(folder, canvases, even_slices, tmp_path / "qc", min_judge_dice=1.01, max_contrast=None,
                             overwrite=True)
    assert again["kept_patients"] == 0 and not list((tmp_path / "qc").rglob("*.nii.gz"))
    nothing = filter_synthetic(folder, canvases, even_slices, tmp_path / "none", min_judge_dice=1.01,
                               max_contrast=None)
    assert nothing["kept_slices"] == 0 and nothing["kept_patients"] == 0
    assert not list((tmp_path / "none").rglob("*.nii.gz"))
