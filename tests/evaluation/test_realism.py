"""Realism measures: the two-sample test finds nothing between halves of real data and everything in an obvious
fake; intensity distances and frequency Dice behave as distances and overlaps; ``claim realism`` end to end."""

from __future__ import annotations

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import ndimage

from claim.aha.config import AhaConfig, geometry_for
from claim.cli import main
from claim.data.write import write_patient
from claim.evaluation.c2st import C2stConfig, auc, classifier_two_sample_test, without_draws
from claim.evaluation.realism import (
    RealismConfig,
    scar_levels,
    scar_samples,
    segment_fractions,
    shape_statistics,
    soft_dice,
    wasserstein_table,
)
from claim.labels import Label, infarct_mask
from claim.phantom import make_phantom_cohort
from tests.conftest import SMALL

AHA = AhaConfig(bullseye=False)
FAST = C2stConfig(repeats=2, steps=120, bootstrap=300)


@pytest.fixture(scope="module")
def cohort():
    """Twelve phantom pathological patients (shared anatomy model, independent scars and noise)."""
    return [c.patient for c in make_phantom_cohort(24, seed=11, config=SMALL) if c.patient.has_infarct][:12]


def _bright_disk(patient):
    """The obvious fake: every scar pixel replaced by one uniform value far above the blood pool."""
    images = patient.images.copy()
    scar = infarct_mask(patient.label_maps)
    images[scar] = float(images.max()) * 1.5
    return patient.with_arrays(patient_id=patient.patient_id + "_disk", images=images)


def _samples(patients):
    return [s for p in patients for s in scar_samples(p.images, p.label_maps, geometry_for(p, AHA), p.patient_id)]


def test_auc_is_the_mann_whitney_probability():
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_c2st_near_half_on_real_halves_and_near_one_on_a_bright_disk(cohort):
    samples = _samples(cohort)
    assert len(samples) >= 30 and all(s.crop.shape == (32, 32) for s in samples)
    first = [s for s in samples if s.group in {p.patient_id for p in cohort[:6]}]
    second = [s for s in samples if s.group not in {p.patient_id for p in cohort[:6]}]
    halves = classifier_two_sample_test([s.crop for s in first], [s.group for s in first],
                                        [s.crop for s in second], [s.group for s in second], FAST, seed=0)
    assert 0.3 < halves["auc"] < 0.7 and halves["low"] < 0.5 < halves["high"]
    fake = _samples([_bright_disk(p) for p in cohort])
    told = classifier_two_sample_test([s.crop for s in samples], [s.group for s in samples],
                                      [s.crop for s in fake], [s.group for s in fake], FAST, seed=0)
    assert told["auc"] > 0.9 and told["low"] > 0.8
    assert told["groups_first"] == told["groups_second"] == len(cohort)


def test_c2st_is_seeded_and_needs_enough_groups(cohort):
    samples = _samples(cohort[:4])
    crops, groups = [s.crop for s in samples], [s.group for s in samples]
    config = C2stConfig(repeats=1, steps=20, bootstrap=50)
    first = without_draws(classifier_two_sample_test(crops, groups, crops, groups, config, seed=3))
    assert without_draws(classifier_two_sample_test(crops, groups, crops, groups, config, seed=3)) == first
    one = classifier_two_sample_test(crops, ["g"] * len(crops), crops, groups, config, seed=0)
    assert np.isnan(one["auc"])  # one group cannot be split into folds


def test_intensity_statistics_and_their_distances(cohort):
    real = _samples(cohort)
    scar_contrast = np.array([s.stats["scar_contrast"] for s in real])
    assert (scar_contrast > 0.3).mean() > 0.8  # phantom scar is enhanced, towards the blood pool
    table = wasserstein_table(real, real)
    assert all(entry["wasserstein"] == 0.0 for entry in table.values() if entry["n"])
    fake = _samples([_bright_disk(p) for p in cohort])
    far = wasserstein_table(real, fake)
    assert far["scar_contrast"]["wasserstein"] > 0.5
    assert far["scar_texture_sd"]["median"] < 0.05  # a uniform disk has no texture
    # Shifting every statistic by a constant moves the distance by exactly that constant.
    shifted = [type(s)(s.group, s.slice_index, s.crop, s.polar, {k: v + 0.25 for k, v in s.stats.items()})
               for s in real]
    assert wasserstein_table(real, shifted)["scar_contrast"]["wasserstein"] == pytest.approx(0.25)


def test_mvo_statistics_read_the_dark_core(pathological_case):
    patient = pathological_case.patient
    labels = patient.label_maps.copy()
    images = patient.images.copy()
    s = int(np.argmax(infarct_mask(labels).reshape(len(labels), -1).sum(axis=1)))
    scar = labels[s] == Label.INFARCT
    core = scar & (ndimage.distance_transform_edt(scar) >= 2)
    labels[s][core] = Label.MVO
    images[s][core] = images[s][labels[s] == Label.MYOCARDIUM].min()  # darker than any myocardium
    samples = scar_samples(images, labels, geometry_for(patient, AHA), "p")
    sample = next(x for x in samples if x.slice_index == s)
    assert sample.stats["mvo_to_scar_ratio"] < 0.8 and sample.stats["mvo_contrast"] < sample.stats["scar_contrast"]


def test_polar_maps_and_frequency_dice(cohort):
    patient = cohort[0]
    geometry = geometry_for(patient, AHA)
    sample = scar_samples(patient.images, patient.label_maps, geometry, "p")[0]
    assert sample.polar.shape == (8, 48) and 0 < sample.polar.max() <= 1
    fractions = segment_fractions(patient.label_maps, geometry)
    assert fractions.shape == (17,) and np.nanmax(fractions) > 0
    assert soft_dice(fractions, fractions) == pytest.approx(1.0)
    assert soft_dice(np.array([1.0, 0, 0]), np.array([0, 1.0, 0])) == 0.0


def test_realism_cli(cohort, tmp_path, capsys):
    for p in cohort:
        write_patient(p, tmp_path / "real")
    for p in cohort[:8]:
        write_patient(_bright_disk(p), tmp_path / "disk")
    out = tmp_path / "realism.json"
    args = ["realism", "--real", str(tmp_path / "real"), "--synthetic", str(tmp_path / "disk"), "--repeats", "1",
            "--steps", "40", "--out", str(out)]  # the classifier's full strength: the c2st tests above
    assert main(args + ["--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record == json.loads(out.read_text())
    disk = record["sources"]["disk"]
    assert disk["image_c2st"]["auc"] > 0.8  # 0.95 measured (0.90 at 80 steps: few patients, a noisy AUC)
    assert disk["intensity"]["scar_contrast"]["wasserstein"] > \
        record["real_vs_real"]["intensity_floor"]["scar_contrast"]["mean"]
    assert record["real"]["patients"] == len(cohort)
    assert main(args) == 2  # the record exists: never overwritten without --overwrite
    assert "exists already" in capsys.readouterr().err
    quick = [a if a != "40" else "5" for a in args]  # replacing is what is checked here, not the classifier
    assert main(quick + ["--overwrite"]) == 0
    assert "real vs real" in capsys.readouterr().out
    assert json.loads(out.read_text())["sources"]["disk"]["image_c2st"] != disk["image_c2st"]  # replaced


def test_realism_cli_counts_only_generated_patients(cohort, tmp_path, capsys):
    """Real patients merged into a synthetic folder (claim generate --include-real) are not synthetic."""
    mixed = tmp_path / "mixed"
    disks = [_bright_disk(p) for p in cohort[:4]]
    for p in disks + cohort[4:6]:
        write_patient(p, mixed)
    (mixed / "generation.json").write_text(json.dumps([{"mask_id": p.patient_id} for p in disks]))
    for p in cohort:
        write_patient(p, tmp_path / "real")
    args = ["realism", "--real", str(tmp_path / "real"), "--synthetic", str(mixed), "--repeats", "1", "--steps", "5",
            "--json"]
    gallery = tmp_path / "gallery.png"
    assert main(args + ["--gallery", str(gallery)]) == 0
    assert json.loads(capsys.readouterr().out)["sources"]["mixed"]["patients"] == 4
    picture = plt.imread(gallery)
    assert 1.5 * 185 < picture.shape[0] < 2.5 * 185  # two rows of 1.85 in at 100 dpi: real, the synthetic folder
    assert picture[..., :3].std() > 0.05  # crops drawn, not a blank canvas
    assert main(args + ["--gallery", str(gallery)]) == 2 and "exists already" in capsys.readouterr().err
    assert main(args + ["--gallery", str(tmp_path / "g.json"), "--out", str(tmp_path / "g.json")]) == 2
    assert "same file" in capsys.readouterr().err
    shutil.copytree(mixed, tmp_path / "real_named" / "real")  # would take the real row's place in the gallery
    assert main(args + ["--synthetic", str(tmp_path / "real_named" / "real")]) == 2
    assert "may not be named 'real'" in capsys.readouterr().err
    (mixed / "generation.json").write_text(json.dumps([{"mask_id": "nobody"}]))
    assert main(args) == 2 and "none of its patients" in capsys.readouterr().err


def test_shape_statistics_tell_flat_sectors_from_tapering_jagged_patchy_scar():
    depth_bins, angle_bins = 8, 48
    flat = np.zeros((depth_bins, angle_bins))
    flat[:6, 10:22] = 1.0  # a sector: the same transmural extent up to straight radial edges
    lens = np.zeros((depth_bins, angle_bins))
    for a in range(10, 22):  # extent rises from the ends to the middle of the arc
        lens[: 1 + int(round(5 * np.sin(np.pi * (a - 9.5) / 12))), a] = 1.0
    wrapped = np.roll(flat, 40, axis=1)  # the same sector across angle 0
    square = np.zeros((40, 40), bool)
    square[10:30, 10:30] = True
    jagged = square.copy()
    jagged[10:30:2, 8:10] = True  # teeth along two borders
    jagged[8:10, 10:30:2] = True
    patchy = np.zeros((40, 40), bool)
    patchy[5:12, 5:12] = patchy[20:26, 22:30] = patchy[33:36, 3:6] = True
    ring = np.ones((depth_bins, angle_bins))

    flat_stats, lens_stats = shape_statistics(square, flat), shape_statistics(square, lens)
    assert flat_stats["scar_lateral_taper"] == pytest.approx(1.0)
    assert lens_stats["scar_lateral_taper"] < 0.7
    assert shape_statistics(square, wrapped)["scar_lateral_taper"] == pytest.approx(1.0)
    assert np.isnan(shape_statistics(square, ring)["scar_lateral_taper"])  # a full ring has no ends
    assert flat_stats["scar_solidity"] == pytest.approx(1.0) and flat_stats["scar_components"] == 1
    assert flat_stats["scar_border_roughness"] == pytest.approx(1.0, abs=0.15)
    rough = shape_statistics(jagged, flat)
    assert rough["scar_border_roughness"] > flat_stats["scar_border_roughness"] + 0.08  # measured 1.14 vs 1.03
    assert rough["scar_solidity"] < 1.0
    pieces = shape_statistics(patchy, flat)
    assert pieces["scar_components"] == 3 and pieces["scar_solidity"] < 0.4


def test_scar_levels_measure_scar_with_its_mvo_and_the_mvo_alone():
    labels = np.full((20, 20), Label.MYOCARDIUM, dtype=np.uint8)
    unit = np.zeros((20, 20))
    labels[2:5, 2:6], unit[2:5, 2:6] = Label.INFARCT, 1.2  # 12 scar pixels around the core
    labels[6, 2:15], unit[6, 2:15] = Label.MVO, 0.3  # 13 MVO pixels
    # The scar's median counts its MVO: 25 pixels, 13 of them at 0.3 (label 3 alone would give 1.2).
    assert scar_levels(unit, labels) == {"scar_contrast": 0.3, "mvo_contrast": 0.3}
    # min_scar_px counts the scar with its MVO.
    assert "scar_contrast" in scar_levels(unit, labels, RealismConfig(min_scar_px=25))
    assert scar_levels(unit, labels, RealismConfig(min_scar_px=26)) == {"mvo_contrast": 0.3}
    # MVO is measured only beside at least 3 pixels of scar core.
    labels[2:5, 2:6] = Label.MYOCARDIUM
    labels[2, 2:4] = Label.INFARCT
    assert "mvo_contrast" not in scar_levels(unit, labels)
