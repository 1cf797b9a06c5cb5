"""The consistency term: its gradient reaches G and never S; S does learn from synthetic batches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from claim.data.layouts import read_dataset
from claim.generator.checkpoint import LoadedGenerator
from claim.generator.data import build_training_set
from claim.generator.denoiser import build_denoiser
from claim.generator.histogram import kmeans_centres, scar_histogram
from claim.generator.schedule import NoiseSchedule
from claim.joint.canvas import build_canvases, sample_canvas_crops, sample_real_scar_crops
from claim.joint.consistency import (
    FeatureMoments,
    bounded_consistency,
    feature_loss,
    generator_feedback,
    histogram_loss,
    histogram_quantiles,
    masked_dice_ce,
    painted_start,
    quantile_histogram_loss,
    scar_border,
    segmenter_view,
    soft_histogram,
    to_segmenter_frame,
)
from claim.joint.synthetic import ReplayBuffer, paint_synthetic_slices
from claim.labels import Label
from claim.segmentation.data import training_slices
from claim.segmentation.net import build_segmenter
from claim.segmentation.train import SegmenterTrainer
from tests.joint.conftest import TINY_G, TINY_S


def _parts(joint_dir):
    patients = read_dataset(joint_dir)
    canvases = build_canvases(patients)
    crops = build_training_set([p for p in patients if p.has_infarct], TINY_G)
    centres = kmeans_centres(crops.hists.numpy(), TINY_G.n_clusters, seed=0)
    torch.manual_seed(0)
    return patients, canvases, centres, build_denoiser(TINY_G), build_segmenter(TINY_S)


def test_canvases_are_the_normal_patients_and_crops_carry_scar(joint_dir):
    patients, canvases, centres, _, _ = _parts(joint_dir)
    assert sorted(c.patient.patient_id for c in canvases) == ["Phantom_N001", "Phantom_N003"]
    batch = sample_canvas_crops(canvases, 3, TINY_G, centres, np.random.default_rng(0))
    assert batch.known.shape == (3, 1, 32, 32) and batch.label_maps.shape == (3, 1, 32, 32)
    assert all((batch.label_maps[i] == Label.INFARCT).any() for i in range(3))
    assert batch.extents == (40, 40, 40)  # 32 px at 2.5 mm = 40 source px at 2 mm


def test_consistency_batch_draws_its_conditions_by_the_joint_rule(joint_dir):
    _patients, canvases, centres, _, _ = _parts(joint_dir)
    # Every centre fitted on scans far darker than the canvases: matched keeps the centre, mapped moves it up.
    context = np.tile([10.0, -0.9, -0.8, 0.05, 0.05], (len(centres), 1))
    batches = {rule: sample_canvas_crops(canvases, 3, TINY_G, centres, np.random.default_rng(4), context, rule=rule)
               for rule in ("matched", "mapped")}
    assert torch.equal(batches["matched"].known, batches["mapped"].known)  # the same crops and masks

    def mean(hists: torch.Tensor) -> torch.Tensor:
        mids = torch.linspace(-1, 1, hists.shape[1] + 1)[:-1] + 1 / hists.shape[1]
        return (hists * mids).sum(1) / hists.sum(1)

    assert bool((mean(batches["mapped"].hists) > mean(batches["matched"].hists) + 0.2).all())


def test_frame_resizes_to_source_pixels_and_pads_to_the_stride():
    images = torch.rand(2, 1, 32, 32, requires_grad=True)
    labels = torch.zeros(2, 1, 32, 32, dtype=torch.long)
    out, lab = to_segmenter_frame(images * 2 - 1, labels, 16, extents=(40, 32))
    assert out.shape == (2, 1, 48, 48) and lab.shape == (2, 48, 48)
    assert float(out[1, 0, 0, 0].detach()) == -1.0  # padding is the darkest value
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_consistency_gradient_reaches_generator_not_segmenter(joint_dir, prediction):
    _, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    config = replace(TINY_G, prediction=prediction)
    before = {k: v.clone() for k, v in segmenter.state_dict().items()}
    batch = sample_canvas_crops(canvases, 2, config, centres, np.random.default_rng(1))
    loss = generator_feedback(denoiser, NoiseSchedule(config.timesteps), config, segmenter, batch.known,
                              batch.label_maps, batch.hists, torch.Generator().manual_seed(0),
                              t_max=10, multiple=4, extents=batch.extents).consistency
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad**2).sum() for p in denoiser.parameters() if p.grad is not None))
    assert float(grad_norm) > 0
    assert all(p.grad is None or not p.grad.any() for p in segmenter.parameters())
    assert all(p.requires_grad for p in segmenter.parameters())  # frozen only for the term
    for key, value in segmenter.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_synthetic_slices_match_the_segmenter_frame_and_change_its_weights(joint_dir):
    patients, canvases, centres, denoiser, _ = _parts(joint_dir)
    sampler = LoadedGenerator(denoiser.eval(), TINY_G, NoiseSchedule(TINY_G.timesteps), centres, 0, joint_dir)
    images, labels = paint_synthetic_slices(sampler, canvases, 1, TINY_S.crop_size, np.random.default_rng(2),
                                            sampler_steps=2)
    assert images.shape[1:] == (1, 64, 64) and labels.shape == (images.shape[0], 64, 64)
    assert (labels == Label.INFARCT).flatten(1).any(1).all()
    buffer = ReplayBuffer(3)
    buffer.add(images, labels)
    buffer.add(images, labels)
    assert len(buffer) == min(3, 2 * len(images))
    extra_images, extra_labels = buffer.sample(2, torch.Generator().manual_seed(0))

    real = training_slices(patients, TINY_S)
    plain = SegmenterTrainer(TINY_S, real, [], seed=0)
    mixed = SegmenterTrainer(TINY_S, real, [], seed=0)
    plain.step(0)
    mixed.step(0, extra_images, extra_labels)
    changed = [not torch.equal(a, b) for a, b in zip(plain.model.parameters(), mixed.model.parameters(), strict=True)]
    assert any(changed)


def test_synthetic_slices_are_cut_and_jittered_like_real_ones_under_roi_jitter(joint_dir):
    """With ``roi_jitter`` the buffer holds S's wider training windows and each draw cuts a jittered ROI from the
    same generator as the real batch, so synthetic slices cannot be told from real ones by where the heart sits."""
    patients, canvases, centres, denoiser, _ = _parts(joint_dir)
    jittered = TINY_S.replace(roi_jitter=4)
    sampler = LoadedGenerator(denoiser.eval(), TINY_G, NoiseSchedule(TINY_G.timesteps), centres, 0, joint_dir)
    images, labels = paint_synthetic_slices(sampler, canvases, 1, jittered.training_window,
                                            np.random.default_rng(2), sampler_steps=2)
    assert images.shape[1:] == (1, 72, 72) and labels.shape[1:] == (72, 72)
    buffer = ReplayBuffer(8)
    buffer.add(images, labels)
    draws = [buffer.sample(6, torch.Generator().manual_seed(seed), jittered.crop_size) for seed in range(4)]
    assert all(rois.shape[1:] == (1, 64, 64) and roi_labels.shape[1:] == (64, 64) for rois, roi_labels in draws)
    # Each ROI is a window of a buffered slice; the offsets vary between draws, and the same seed repeats them.
    index = torch.randint(0, len(buffer), (6,), generator=torch.Generator().manual_seed(0))
    offsets = set()
    for k, i in enumerate(index.tolist()):
        window, roi = images[i, 0], draws[0][0][k, 0]
        found = [(r, c) for r in range(9) for c in range(9) if torch.equal(window[r:r + 64, c:c + 64], roi)]
        assert found
        offsets.update(found)
    assert len(offsets) > 1
    again = buffer.sample(6, torch.Generator().manual_seed(0), jittered.crop_size)
    assert torch.equal(again[0], draws[0][0]) and torch.equal(again[1], draws[0][1])
    # Without jitter nothing more is drawn: the buffer's slices come back as they are.
    plain_images, plain_labels = paint_synthetic_slices(sampler, canvases, 1, TINY_S.training_window,
                                                        np.random.default_rng(2), sampler_steps=2)
    plain = ReplayBuffer(8)
    plain.add(plain_images, plain_labels)
    index = torch.randint(0, len(plain), (3,), generator=torch.Generator().manual_seed(1))
    out, _ = plain.sample(3, torch.Generator().manual_seed(1), TINY_S.crop_size)
    assert torch.equal(out, plain_images[index])


def test_soft_histogram_matches_the_condition_histogram_and_has_a_gradient():
    rng = np.random.default_rng(0)
    bins = 16
    centres = -1.0 + (np.arange(bins) + 0.5) * 2.0 / bins
    image = rng.choice(centres, size=(24, 24))  # values on bin centres: soft and hard binning agree exactly
    scar = rng.random((24, 24)) < 0.3
    values = torch.tensor(image[None], requires_grad=True)
    soft = soft_histogram(values, torch.tensor(scar[None]), bins)
    assert np.allclose(soft[0].detach().numpy(), scar_histogram(image, scar, bins), atol=1e-6)
    assert float(soft.detach().sum()) == pytest.approx(1.0)
    jittered = torch.tensor(image[None] + 0.01, requires_grad=True)  # off the centres, where the kernels slope
    soft_histogram(jittered, torch.tensor(scar[None]), bins)[0, 3].backward()
    assert jittered.grad[0][scar].abs().sum() > 0 and not jittered.grad[0][~scar].any()  # only scar pixels count


def test_histogram_guard_pulls_a_too_bright_scar_towards_its_condition():
    labels = torch.zeros(1, 1, 16, 16, dtype=torch.long)
    labels[..., 4:12, 4:12] = Label.INFARCT
    target = torch.zeros(1, 16)
    target[0, 9:12] = 1.0 / 3  # asked for: mid-bright scar, about 0.1..0.5
    x0 = torch.full((1, 1, 16, 16), 0.9, requires_grad=True)  # painted: near-white
    before = histogram_loss(x0, labels, target).detach()
    assert float(before) == pytest.approx(0.9 - 0.3125, abs=1e-6)  # W1: painted 0.9 against asked mean 0.3125
    optimiser = torch.optim.SGD([x0], lr=4.0)  # the loss is a mean over 64 scar pixels: a per-pixel step ~0.06
    for _ in range(60):
        optimiser.zero_grad()
        histogram_loss(x0, labels, target).backward()
        optimiser.step()
    after = histogram_loss(x0, labels, target).detach()
    assert float(after) < 0.5 * float(before)
    painted, scar = x0.detach()[0, 0], labels[0, 0] == Label.INFARCT
    assert float(painted[scar].mean()) < 0.6  # darker, towards what was asked
    assert torch.equal(painted[~scar], torch.full_like(painted[~scar], 0.9))  # outside the scar: untouched


def test_quantile_guard_is_the_exact_distance_and_pulls_near_white_scar_down():
    from scipy.stats import wasserstein_distance

    target = torch.zeros(1, 16)
    target[0, 9:12] = torch.tensor([0.2, 0.5, 0.3])  # asked for: mid-bright scar, 0.125..0.5
    dense = histogram_quantiles(target[0], (torch.arange(100_000) + 0.5) / 100_000).numpy()
    assert dense.min() >= 0.125 - 1e-6 and dense.max() <= 0.5 + 1e-6
    assert np.mean((dense >= 0.25) & (dense < 0.375)) == pytest.approx(0.5, abs=1e-3)  # each bin keeps its mass
    labels = torch.zeros(1, 1, 16, 16, dtype=torch.long)
    labels[..., 4:12, 4:12] = Label.INFARCT
    scar = labels[0, 0] == Label.INFARCT
    values = np.random.default_rng(0).uniform(-1, 1, (1, 1, 16, 16)).astype(np.float32)
    loss = quantile_histogram_loss(torch.tensor(values), labels, target)
    assert float(loss) == pytest.approx(wasserstein_distance(values[0, 0][scar.numpy()], dense), abs=2e-3)
    # Near-white (above the top bin centre) and out-of-range painted scar: the soft guard has no gradient there,
    # the quantile guard pulls every scar pixel down and leaves the rest alone.
    for level in (0.97, 1.3):
        soft = torch.full((1, 1, 16, 16), level, requires_grad=True)
        histogram_loss(soft, labels, target).backward()
        assert soft.grad is None or not soft.grad.any()
        x0 = torch.full((1, 1, 16, 16), level, requires_grad=True)
        before = quantile_histogram_loss(x0, labels, target)
        assert float(before.detach()) == pytest.approx(level - 0.325, abs=1e-3)  # asked mean 0.325
        before.backward()
        assert bool((x0.grad[0, 0][scar] > 0).all()) and not x0.grad[0, 0][~scar].any()
    assert float(quantile_histogram_loss(torch.zeros(1, 1, 16, 16), torch.zeros_like(labels), target)) == 0.0


def test_quantile_guard_reaches_the_generator_through_the_unclamped_estimate(joint_dir):
    _patients, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    config = replace(TINY_G, prediction="x0")
    batch = sample_canvas_crops(canvases, 2, config, centres, np.random.default_rng(1))
    args = (denoiser, NoiseSchedule(config.timesteps), config, segmenter, batch.known, batch.label_maps,
            batch.hists, torch.Generator().manual_seed(0))
    # An x0 net whose output lies far beyond white: clamped, the soft guard cannot see how far.
    denoiser.register_forward_hook(lambda _module, _inputs, output: output + 5.0)
    soft = generator_feedback(*args, t_max=10, multiple=4, extents=batch.extents)
    quantile = generator_feedback(*args[:-1], torch.Generator().manual_seed(0), t_max=10, multiple=4,
                                  extents=batch.extents, histogram_distance="quantile")
    assert torch.equal(soft.consistency, quantile.consistency)  # the same estimate feeds S either way
    # Beyond the data range: only raw values show it.
    assert float(quantile.histogram.detach()) > 2.0 >= float(soft.histogram.detach())
    quantile.histogram.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.parameters())
    with pytest.raises(ValueError, match="histogram_distance"):
        generator_feedback(*args, t_max=10, multiple=4, histogram_distance="emd")


def test_painted_start_is_gs_own_painting_and_the_feedback_reads_it(joint_dir):
    from claim.generator.context import inpaint_region

    _patients, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    batch = sample_canvas_crops(canvases, 2, TINY_G, centres, np.random.default_rng(1))
    schedule = NoiseSchedule(TINY_G.timesteps)
    denoiser.train()
    start = painted_start(denoiser, schedule, TINY_G, batch.known, batch.label_maps, batch.hists, 3,
                          torch.Generator().manual_seed(0))
    again = painted_start(denoiser, schedule, TINY_G, batch.known, batch.label_maps, batch.hists, 3,
                          torch.Generator().manual_seed(0))
    assert denoiser.training and not start.requires_grad and torch.equal(start, again)  # seeded, no gradient
    region = inpaint_region(TINY_G, batch.label_maps)
    assert torch.equal(start[~region], batch.known[~region])  # the canvas outside the region
    assert float((start - batch.known)[region].abs().mean()) > 0.05  # painted inside it
    args = (denoiser, schedule, TINY_G, segmenter, batch.known, batch.label_maps, batch.hists)
    canvas = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4, extents=batch.extents)
    same = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4, extents=batch.extents,
                              start=batch.known)
    painted = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4,
                                 extents=batch.extents, start=start)
    assert torch.equal(canvas.consistency, same.consistency)  # None means the canvas
    assert not torch.equal(canvas.histogram, painted.histogram)
    painted.consistency.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.parameters())
    assert all(p.grad is None or not p.grad.any() for p in segmenter.parameters())  # S's copy stays frozen


def test_border_ring_is_left_out_of_the_consistency_loss(joint_dir):
    from claim.segmentation.loss import dice_ce_loss

    labels = torch.zeros(1, 10, 10, dtype=torch.long)
    labels[0, 4:6, 2:8] = Label.INFARCT  # a scar 2 px thick
    labels[0, 5, 4] = Label.MVO
    ring = scar_border(labels, 1)
    assert int(ring.sum()) == 4 * 8 - 2 * 6  # the 8 x 4 box around the 2 x 6 scar, less the scar
    assert not (ring & ((labels == Label.INFARCT) | (labels == Label.MVO))).any()  # the scar itself always counts
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 10, 10, requires_grad=True)
    assert float(masked_dice_ce(logits, labels, torch.ones_like(ring)).detach()) == pytest.approx(
        float(dice_ce_loss(logits, labels).detach()), abs=1e-6)
    masked_dice_ce(logits, labels, ~ring).backward()
    assert not logits.grad[0][:, ring[0]].any() and logits.grad[0][:, ~ring[0]].abs().sum() > 0
    # Through the frozen segmenter: the feedback with the ring left out differs, and its gradient still reaches G.
    _patients, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    batch = sample_canvas_crops(canvases, 2, TINY_G, centres, np.random.default_rng(1))
    args = (denoiser, NoiseSchedule(TINY_G.timesteps), TINY_G, segmenter, batch.known, batch.label_maps,
            batch.hists)
    whole = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4, extents=batch.extents)
    inner = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4, extents=batch.extents,
                               ignore_border_px=2)
    assert not torch.equal(whole.consistency, inner.consistency)
    inner.consistency.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.parameters())
    assert all(p.grad is None or not p.grad.any() for p in segmenter.parameters())


def test_feedback_terms_come_from_one_estimate_and_real_crops_share_its_frame(joint_dir):
    patients, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    batch = sample_canvas_crops(canvases, 2, TINY_G, centres, np.random.default_rng(1))
    args = (denoiser, NoiseSchedule(TINY_G.timesteps), TINY_G, segmenter, batch.known, batch.label_maps,
            batch.hists)
    feedback = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4,
                                  extents=batch.extents)
    again = generator_feedback(*args, torch.Generator().manual_seed(0), t_max=10, multiple=4, extents=batch.extents)
    assert torch.equal(feedback.consistency, again.consistency) and torch.equal(feedback.histogram, again.histogram)
    assert 0.0 < float(feedback.histogram.detach()) <= 2.0
    feedback.histogram.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.parameters())
    real = sample_real_scar_crops([p for p in patients if p.has_infarct], 3, TINY_G, np.random.default_rng(0))
    assert real.known.shape == (3, 1, 32, 32) and real.extents == (40, 40, 40)
    assert all((real.label_maps[i] == Label.INFARCT).any() for i in range(3))


def test_feature_term_gradient_reaches_generator_not_segmenter(joint_dir):
    patients, canvases, centres, denoiser, segmenter = _parts(joint_dir)
    before = {k: v.clone() for k, v in segmenter.state_dict().items()}
    batch = sample_canvas_crops(canvases, 2, TINY_G, centres, np.random.default_rng(1))
    feedback = generator_feedback(denoiser, NoiseSchedule(TINY_G.timesteps), TINY_G, segmenter, batch.known,
                                  batch.label_maps, batch.hists, torch.Generator().manual_seed(0),
                                  t_max=10, multiple=4, extents=batch.extents)
    real = sample_real_scar_crops([p for p in patients if p.has_infarct], 2, TINY_G, np.random.default_rng(0))
    with torch.no_grad():
        target = segmenter_view(segmenter, real.known, real.label_maps, 4, real.extents).scar_features
    channels = TINY_S.filters[0]  # the finest decoder level, read at the output head
    assert feedback.scar_features.mean.shape == (channels,) and target.sd.shape == (channels,)
    loss = feature_loss(feedback.scar_features, target)
    assert loss.ndim == 0 and float(loss.detach()) > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.parameters())
    assert all(p.grad is None or not p.grad.any() for p in segmenter.parameters())
    assert all(p.requires_grad for p in segmenter.parameters())
    for key, value in segmenter.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_feature_loss_is_zero_on_real_scar_penalises_uniform_scar_and_stays_bounded(joint_dir):
    patients, _, _, _, segmenter = _parts(joint_dir)
    real = sample_real_scar_crops([p for p in patients if p.has_infarct], 3, TINY_G, np.random.default_rng(0))
    view = segmenter_view(segmenter, real.known, real.label_maps, 4, real.extents)
    assert float(feature_loss(view.scar_features, view.scar_features)) == 0.0
    no_scar = torch.zeros_like(real.label_maps)
    assert segmenter_view(segmenter, real.known, no_scar, 4, real.extents).scar_features is None
    assert feature_loss(None, view.scar_features) is None

    target = FeatureMoments(torch.zeros(4), torch.ones(4))
    losses = [float(feature_loss(FeatureMoments(torch.zeros(4), torch.full((4,), sd)), target))
              for sd in (1.0, 0.5, 0.1)]
    assert losses[0] == 0.0 and 0.0 < losses[1] < losses[2]  # more uniform than real: a larger loss
    brighter = float(feature_loss(FeatureMoments(torch.full((4,), 2.0), torch.ones(4)), target))
    assert brighter == pytest.approx(4.0, rel=1e-4)  # two pooled SDs off in every channel
    # A real batch with a near-constant channel: the floored scale keeps one step from dominating the run.
    flat_channel = FeatureMoments(torch.zeros(4), torch.tensor([1.0, 1.0, 1.0, 1e-4]))
    assert float(feature_loss(FeatureMoments(torch.zeros(4), torch.ones(4)), flat_channel)) < 3.0


def test_consistency_term_gives_a_lesion_channel_generator_its_lesion(joint_dir):
    _, canvases, centres, _, segmenter = _parts(joint_dir)
    config = replace(TINY_G, lesion_channel=True)
    torch.manual_seed(0)
    denoiser = build_denoiser(config)
    seen = []
    denoiser.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach()))
    batch = sample_canvas_crops(canvases, 2, config, centres, np.random.default_rng(1))
    generator_feedback(denoiser, NoiseSchedule(config.timesteps), config, segmenter, batch.known, batch.label_maps,
                       batch.hists, torch.Generator().manual_seed(0), t_max=10, multiple=4, extents=batch.extents)
    # The denoiser's input: x_t, blanked image, region, myocardium, lesion; the last is the scar itself, narrower
    # than the region the band widens, as in training and sampling.
    (given,) = seen
    lesion = (batch.label_maps == Label.INFARCT) | (batch.label_maps == Label.MVO)
    assert given.shape[1] == config.in_channels == 5
    assert torch.equal(given[:, -1:].bool(), lesion) and lesion.any()
    assert int(given[:, 2:3].bool().sum()) > int(lesion.sum())


def test_consistency_bounds_reward_and_penalise_as_documented():
    real = torch.tensor(0.8, requires_grad=True)
    for synthetic_value, expected in ((1.0, {"none": 1.0, "real": 0.2, "match": 0.2}),
                                      (0.5, {"none": 0.5, "real": 0.0, "match": 0.3})):
        for bound, value in expected.items():
            synthetic = torch.tensor(synthetic_value, requires_grad=True)
            term = bounded_consistency(synthetic, real, bound)
            assert float(term.detach()) == pytest.approx(value)
            term.backward()
            # Gradient descent on the term: harder-than-real scar is pushed easier under every bound; easier-than-real
            # scar is pushed easier by none, left alone by real, pushed harder (towards real) by match.
            slope = {"none": 1.0, "real": 1.0 if synthetic_value > 0.8 else 0.0,
                     "match": 1.0 if synthetic_value > 0.8 else -1.0}[bound]
            assert float(synthetic.grad) == pytest.approx(slope)
    assert real.grad is None  # the real-scar loss is a target
    with pytest.raises(ValueError, match="consistency bound"):
        bounded_consistency(synthetic, real, "hinge")
