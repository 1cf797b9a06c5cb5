"""Training: exact resume, checkpoint contents, and clear errors for bad checkpoints."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from claim.data.layouts import read_dataset
from claim.errors import ClaimError
from claim.generator.checkpoint import load_generator
from claim.generator.config import GeneratorConfig, Mode, preset_config
from claim.generator.data import build_training_set
from claim.generator.denoiser import build_denoiser
from claim.generator.schedule import NoiseSchedule
from claim.generator.train import train_generator, training_loss
from tests.generator.conftest import TINY


@pytest.mark.parametrize(("mode", "prediction"), [(Mode.CLAIM, "eps"), (Mode.CLAIM, "x0"), (Mode.LEFUSION, "eps")])
def test_resume_reproduces_an_uninterrupted_run(phantom_dir, tmp_path, mode, prediction):
    config = TINY.with_mode(mode).replace(prediction=prediction)
    full = train_generator(phantom_dir, tmp_path / "full", config.replace(steps=4), seed=5, progress=False)
    part = train_generator(phantom_dir, tmp_path / "part", config.replace(steps=2), seed=5, progress=False)
    rest = train_generator(phantom_dir, tmp_path / "part", config.replace(steps=4), seed=5, resume=True, progress=False)
    assert part.step == 2 and rest.step == 4
    assert len(full.losses) == 4 and len(rest.losses) == 2
    torch.testing.assert_close(torch.tensor(part.losses + rest.losses), torch.tensor(full.losses), rtol=1e-5, atol=1e-6)
    a = torch.load(full.checkpoint, weights_only=False)
    b = torch.load(rest.checkpoint, weights_only=False)
    for key in ("model", "ema"):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=1e-5, atol=1e-6)
    log = [json.loads(line) for line in (tmp_path / "part" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]


def test_checkpoint_is_self_describing(tiny_checkpoint):
    payload = torch.load(tiny_checkpoint, weights_only=False)
    for key in ("config", "mode", "version", "step", "ema", "model", "optimizer", "rng", "hist_centres", "crop_size"):
        assert key in payload
    loaded = load_generator(tiny_checkpoint)
    assert loaded.config == TINY.replace(steps=3) and loaded.step == 3
    assert loaded.hist_centres.shape == (2, 16)
    assert not loaded.model.training


def test_bad_checkpoints_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    for path in (garbage, foreign, tmp_path / "missing.pt"):
        with pytest.raises(ClaimError, match=path.name):
            load_generator(path)


def test_resume_guards(phantom_dir, tiny_checkpoint):
    run = tiny_checkpoint.parent
    with pytest.raises(ClaimError, match="earlier claim output"):
        train_generator(phantom_dir, run, TINY.replace(steps=4), progress=False)
    with pytest.raises(ClaimError, match=r"different config.*lr.*config\.json with -c"):
        train_generator(phantom_dir, run, replace(TINY, lr=1.0).replace(steps=4), resume=True, progress=False)


def test_presets():
    tiny, standard = preset_config("tiny"), preset_config("standard", mode="lefusion")
    assert tiny.crop_size == 48 and standard.crop_size == 96
    assert standard.default_sampler == "repaint:5x5" and standard.in_channels == 1 and tiny.in_channels == 4
    with pytest.raises(ValueError):
        preset_config("huge")
    # claim presets predict x0 unless told otherwise; lefusion stays the faithful eps baseline.
    assert tiny.prediction == "x0" and preset_config("standard").prediction == "x0"
    assert standard.prediction == "eps"
    assert preset_config("standard", prediction="eps").prediction == "eps"
    with pytest.raises(ValueError, match="lefusion"):
        preset_config("tiny", mode="lefusion", prediction="x0")


def test_prediction_is_validated_saved_and_defaults_to_eps_for_old_checkpoints(tiny_checkpoint, tmp_path):
    config = replace(TINY, prediction="x0")
    assert config.to_dict()["prediction"] == "x0"
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    # One source for what a mode implies: the dataclass default and every preset agree.
    assert GeneratorConfig().prediction == preset_config("standard").prediction == "x0"
    lefusion = GeneratorConfig(mode=Mode.LEFUSION)
    assert (lefusion.prediction, lefusion.default_sampler, lefusion.boundary_px) == ("eps", "repaint:5x5", 0)
    assert GeneratorConfig().with_mode(Mode.LEFUSION) == lefusion
    with pytest.raises(ValueError, match="boundary_px"):
        GeneratorConfig(mode=Mode.LEFUSION, boundary_px=2)
    with pytest.raises(ValueError, match="prediction"):
        replace(TINY, prediction="v")
    with pytest.raises(ValueError, match="lefusion"):
        replace(TINY, mode=Mode.LEFUSION, prediction="x0")
    # A checkpoint written before the key existed loads as eps.
    payload = torch.load(tiny_checkpoint, weights_only=False)
    del payload["config"]["prediction"]
    del payload["content_sha256"]  # written before checkpoints carried a hash
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert load_generator(old).config.prediction == "eps"


def test_x0_training_lowers_the_loss(phantom_dir):
    """A few Adam steps on one fixed batch lower the lesion-weighted x0 loss (same t and noise every step)."""
    config = replace(TINY, prediction="x0", cond_drop_prob=0.0)
    data = build_training_set(read_dataset(phantom_dir), config)
    torch.manual_seed(0)
    model = build_denoiser(config)
    schedule = NoiseSchedule(config.timesteps)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels, hists = data.images[:4], data.label_maps[:4], data.hists[:4]
    losses = []
    for _ in range(25):
        loss = training_loss(model, schedule, config, images, labels, hists, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def _channel_generator_trains_paints_and_old_configs_load(phantom_dir, tmp_path, config, key: str) -> None:
    """A generator with the context channel ``key`` on trains, reloads with it, inpaints a patient; a config written
    before the key existed loads without it."""
    from claim.generator.inpaint import inpaint_patient

    result = train_generator(phantom_dir, tmp_path / "run", config, seed=0, progress=False)
    loaded = load_generator(result.checkpoint)
    assert getattr(loaded.config, key) and loaded.config == config
    source = next(p for p in read_dataset(phantom_dir) if p.has_infarct)
    images, info = inpaint_patient(loaded, source, source.label_maps, sampler="ddim:2", hist=loaded.hist_centres[0],
                                   guidance=1.0, torch_generator=torch.Generator().manual_seed(0))
    assert images.shape == source.images.shape and info["slices"]
    old = {k: v for k, v in TINY.to_dict().items() if k != key}
    assert GeneratorConfig.from_dict(old).in_channels == 4


def test_mvo_channel_tells_the_network_where_the_dark_core_lies(phantom_dir, tmp_path):
    from claim.generator.context import anatomy_channels, build_context
    from claim.labels import Label

    labels = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    labels[..., 2:6, 2:6] = Label.INFARCT
    labels[..., 3:5, 3:5] = Label.MVO
    assert anatomy_channels(labels).shape == (1, 1, 8, 8)
    both = anatomy_channels(labels, mvo=True)
    assert torch.equal(both[:, 1], labels[:, 0] == Label.MVO) and torch.equal(both[:, :1], anatomy_channels(labels))
    known = torch.zeros(1, 1, 8, 8)
    assert build_context(known, labels > 0, labels, mvo=True).shape[1] == 4

    config = replace(TINY, mvo_channel=True, steps=2)
    assert config.in_channels == TINY.in_channels + 1 == 5
    assert replace(TINY, mode=Mode.LEFUSION, prediction="eps", boundary_px=0, mvo_channel=True).in_channels == 1
    _channel_generator_trains_paints_and_old_configs_load(phantom_dir, tmp_path, config, "mvo_channel")


def test_lesion_channel_shows_where_the_scar_ends_inside_the_blended_region(phantom_dir, tmp_path):
    from claim.generator.context import anatomy_channels, config_anatomy, inpaint_region
    from claim.labels import Label

    labels = torch.full((1, 1, 12, 12), Label.MYOCARDIUM, dtype=torch.long)
    labels[..., 4:8, 5:7] = Label.INFARCT
    labels[..., 5, 5] = Label.MVO
    config = replace(TINY, lesion_channel=True, mvo_channel=True, steps=2)
    anatomy = config_anatomy(labels, config)
    # Order: myocardium, MVO, lesion; the lesion is scar + MVO exactly, not the region dilated by the band.
    assert anatomy.shape == (1, 3, 12, 12)
    assert torch.equal(anatomy, anatomy_channels(labels, mvo=True, lesion=True))
    lesion = (labels == Label.INFARCT) | (labels == Label.MVO)
    assert torch.equal(anatomy[:, 2:], lesion) and torch.equal(anatomy[:, 1:2], labels == Label.MVO)
    region = inpaint_region(config, labels)
    band = region & ~lesion
    # The band is what the region channel alone cannot tell from scar: as many pixels as the lesion has here.
    assert config.boundary_px == 2 and int(band.sum()) >= int(lesion.sum())
    assert torch.equal(config_anatomy(labels, TINY), anatomy_channels(labels))

    assert config.in_channels == TINY.in_channels + 2 == 6
    assert replace(TINY, mode=Mode.LEFUSION, prediction="eps", boundary_px=0, lesion_channel=True).in_channels == 1
    # The x_t-only baseline derived from a preset with the channel does not record it.
    assert preset_config("standard").lesion_channel and not preset_config("standard", mode="lefusion").lesion_channel
    assert not preset_config("standard").with_mode(Mode.LEFUSION).lesion_channel
    _channel_generator_trains_paints_and_old_configs_load(phantom_dir, tmp_path, config, "lesion_channel")


@pytest.mark.parametrize(("preset", "flag", "expected"), [
    ("standard", None, True),
    ("standard", "--no-lesion-channel", False),
    ("tiny", None, False),
    ("tiny", "--lesion-channel", True),
])
def test_train_generator_lesion_channel_follows_preset_and_flag(phantom_dir, tmp_path, preset, flag, expected):
    from claim.cli import main

    out = tmp_path / "run"
    args = ["train-generator", "--data", str(phantom_dir), "--out", str(out), "--preset", preset, "--steps", "1"]
    assert main(args + ([flag] if flag else [])) == 0
    assert json.loads((out / "config.json").read_text())["config"]["lesion_channel"] is expected
    loaded = load_generator(out / "generator.pt")
    assert loaded.config.lesion_channel is expected
    assert loaded.config.in_channels == 4 + int(expected)
