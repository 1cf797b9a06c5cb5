"""Choosing the histogram condition for a canvas: per-centre scan levels, the matched draw, and its record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from claim.errors import InputError
from claim.generator.checkpoint import load_generator, read_generator_checkpoint
from claim.generator.condition import (
    canvas_levels,
    centre_context,
    choose_centre,
    crop_levels,
    draw_condition,
    level_table,
    map_histogram,
)
from claim.generator.histogram import histogram_wasserstein, scar_histogram
from claim.labels import Label
from claim.stages.generate import generate_scars
from claim.training.checkpoint import save_checkpoint
from tests.generator.conftest import make_masks_dir


def _crop(remote: float, blood: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((8, 8), dtype=np.uint8)
    labels[2:6, 2:6] = Label.MYOCARDIUM
    labels[3:5, 3:5] = Label.CAVITY
    labels[2, 2] = Label.INFARCT  # scar is neither remote nor blood
    image = np.where(labels == Label.MYOCARDIUM, remote, np.where(labels == Label.CAVITY, blood, 0.9))
    return image.astype(np.float32), labels


def test_levels_read_remote_myocardium_and_blood_pool_only():
    image, labels = _crop(-0.3, 0.2)
    np.testing.assert_allclose(crop_levels(image, labels), [-0.3, 0.2], atol=1e-6)
    assert crop_levels(image, np.where(labels == Label.CAVITY, 0, labels)) is None
    table = level_table(np.stack([image, image]), np.stack([labels, np.zeros_like(labels)]))
    assert np.isfinite(table[0]).all() and np.isnan(table[1]).all()
    np.testing.assert_allclose(canvas_levels([_crop(-0.2, 0.0), _crop(0.0, 0.4)]), [-0.1, 0.2], atol=1e-6)
    assert canvas_levels([]) is None


def test_centre_context_counts_nearest_slices_and_their_level_spread():
    centres = np.array([[1.0, 0.0], [0.0, 1.0]])
    hists = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    levels = np.array([[-0.4, -0.1], [-0.2, 0.1], [0.3, np.nan]])
    context = centre_context(hists, levels, centres)
    np.testing.assert_allclose(context[0], [2, -0.3, 0.0, 0.1, 0.1])
    # Centre 1's only member has no readable levels: it keeps its count and borrows the readable slices' levels.
    assert context[1, 0] == 1
    np.testing.assert_allclose(context[1, 1:3], [-0.3, 0.0])


def test_matched_draw_follows_the_canvas_level_and_falls_back_to_uniform():
    # Two centres fitted on dark and on bright scans; a bright canvas must get the bright one.
    context = np.array([[60, -0.4, -0.1, 0.1, 0.1], [20, 0.3, 0.5, 0.1, 0.1]])
    rng = np.random.default_rng(0)
    bright = [choose_centre(rng, 2, context, np.array([0.3, 0.5])) for _ in range(200)]
    dark = [choose_centre(rng, 2, context, np.array([-0.4, -0.1])) for _ in range(200)]
    assert {rule for _, rule in bright + dark} == {"matched"}
    assert all(k == 1 for k, _ in bright) and all(k == 0 for k, _ in dark)
    # Halfway between, both are drawn, the more frequent centre more often.
    middle = [choose_centre(rng, 2, context, np.array([-0.05, 0.2]))[0] for _ in range(400)]
    assert 0.5 < 1 - np.mean(middle) < 1.0
    # Without levels or context: the uniform draw generators were always sampled with (same rng use).
    k, rule = choose_centre(np.random.default_rng(5), 4, None, np.array([0.0, 0.0]))
    assert rule == "random" and k == int(np.random.default_rng(5).integers(4))
    assert choose_centre(np.random.default_rng(5), 2, context, None)[1] == "random"


def test_mapped_condition_keeps_the_scar_contrast_of_its_centre_on_another_scan():
    # Scar of a scan with remote -0.4 and blood 0.0, half at contrast 1.5, half at 2.0 (scar - remote over blood -
    # remote), histogrammed; the same scar on a scan with remote 0.1 and blood 0.3 lies at 0.4 and 0.5.
    rng = np.random.default_rng(0)
    contrast = np.concatenate([np.full(500, 1.5), np.full(500, 2.0)]) + rng.uniform(-0.05, 0.05, 1000)
    source = scar_histogram(-0.4 + contrast * 0.4, np.ones(1000, bool))
    target = scar_histogram(0.1 + contrast * 0.2, np.ones(1000, bool))
    mapped = map_histogram(source, np.array([-0.4, 0.0]), np.array([0.1, 0.3]))
    assert mapped.sum() == pytest.approx(1.0, abs=1e-6)
    # Within a quarter bin (0.031) of the target, where the centre as it was lies 0.156 off.
    assert histogram_wasserstein(mapped, target) < 0.04 < 0.15 < histogram_wasserstein(source, target)
    np.testing.assert_allclose(map_histogram(source, np.array([0.1, 0.5]), np.array([0.1, 0.5])), source, atol=1e-6)
    # A canvas whose blood pool is darker than its myocardium has no contrast scale: the map only shifts.
    shifted = map_histogram(source, np.array([-0.4, 0.0]), np.array([-0.2, -0.3]))
    mids = np.linspace(-1, 1, source.size + 1)[:-1] + 1 / source.size
    assert (shifted * mids).sum() - (source * mids).sum() == pytest.approx(0.2, abs=0.01)
    # Mass mapped beyond [-1, 1] stays in the edge bin.
    assert map_histogram(source, np.array([-0.4, 0.0]), np.array([0.5, 1.5]))[-1] == pytest.approx(1.0)
    # A bin stretched across 1 keeps its even spread: the part beyond 1 joins the edge bin, not the bins inside.
    one = np.zeros(16, np.float32)
    one[9] = 1.0  # [0.125, 0.25) -> [0.625, 1.25) under scale 5 about 0
    np.testing.assert_allclose(map_histogram(one, np.array([0.0, 0.1]), np.array([0.0, 0.5]))[13:], [0.2, 0.2, 0.6],
                               atol=1e-6)


def test_draw_condition_maps_only_the_mapped_rule_and_draws_like_choose_centre():
    centres = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]], dtype=np.float32)
    context = np.array([[60, -0.4, -0.1, 0.1, 0.1], [20, 0.3, 0.5, 0.1, 0.1]])
    levels = np.array([-0.3, 0.0])
    for rule in ("matched", "mapped", "random"):
        hist, k, used = draw_condition(np.random.default_rng(3), centres, context, levels, rule)
        assert (k, used) == choose_centre(np.random.default_rng(3), 2, None if rule == "random" else context,
                                          None if rule == "random" else levels)[:1] + (rule,)
        expected = map_histogram(centres[k], context[k, 1:3], levels) if rule == "mapped" else centres[k]
        np.testing.assert_allclose(hist, expected)
    assert not np.allclose(draw_condition(np.random.default_rng(3), centres, context, levels, "mapped")[0],
                           centres[0])
    # Without the canvas's levels (or the checkpoint's context) both level rules fall back to the uniform draw.
    assert draw_condition(np.random.default_rng(3), centres, context, None, "mapped")[2] == "random"
    assert draw_condition(np.random.default_rng(3), centres, None, levels, "mapped")[2] == "random"
    with pytest.raises(ValueError, match="histogram rule"):
        draw_condition(np.random.default_rng(3), centres, context, levels, "nearest")


def test_checkpoints_carry_the_context_and_generate_records_the_rule(phantom_dir, tiny_checkpoint, tmp_path):
    payload = read_generator_checkpoint(tiny_checkpoint)
    gen = load_generator(tiny_checkpoint)
    assert gen.hist_context is not None and gen.hist_context.shape == (len(gen.hist_centres), 5)
    # Counts are the training slices nearest to each centre.
    assert gen.hist_context[:, 0].sum() == payload["n_train_slices"]
    masks_dir, _ = make_masks_dir(phantom_dir, tmp_path / "masks", n_masks=2)
    matched = generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / "matched", sampler="ddim:2")
    assert {e["hist_rule"] for e in matched.entries} == {"matched"}
    mapped = generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / "mapped", sampler="ddim:2",
                            hist_cluster="mapped")
    assert {e["hist_rule"] for e in mapped.entries} == {"mapped"}
    assert [e["hist_cluster"] for e in mapped.entries] == [e["hist_cluster"] for e in matched.entries]
    assert [e["hist_condition"] for e in mapped.entries] != [e["hist_condition"] for e in matched.entries]
    fixed = generate_scars(tiny_checkpoint, phantom_dir, masks_dir, tmp_path / "fixed", sampler="ddim:2",
                           hist_cluster=0)
    assert {(e["hist_rule"], e["hist_cluster"]) for e in fixed.entries} == {("fixed", 0)}
    # A checkpoint written before the context existed is drawn from uniformly, and says so.
    old = dict(payload)
    del old["hist_context"]
    save_checkpoint(tmp_path / "old.pt", old)
    result = generate_scars(tmp_path / "old.pt", phantom_dir, masks_dir, tmp_path / "old", sampler="ddim:2")
    assert {e["hist_rule"] for e in json.loads((tmp_path / "old" / "generation.json").read_text())} == {"random"}
    assert result.entries
    # A malformed context names the file.
    bad = dict(payload, hist_context=[[1.0, 2.0]])
    save_checkpoint(tmp_path / "bad.pt", bad)
    with pytest.raises(InputError, match="bad.pt.*context"):
        load_generator(tmp_path / "bad.pt")
    no_spread = np.array(payload["hist_context"])
    no_spread[0, 3] = 0.0  # a zero sd would make the posterior NaN
    save_checkpoint(tmp_path / "flat.pt", dict(payload, hist_context=no_spread.tolist()))
    with pytest.raises(InputError, match="flat.pt.*sds > 0"):
        load_generator(tmp_path / "flat.pt")
