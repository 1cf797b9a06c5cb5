"""Regression: the ``tiny`` preset learns the rare scar class (label 3) on the phantom, not only myocardium.

With the preset's former learning rate (AdamW 1e-3) the tiny DynUNet learned cavity and myocardium but left the
scar (~0.3% of the pixels) at a near-uniform softmax and predicted 0 scar pixels after 800 steps, even on its own
training slices.

Even at 1e-2 the scar is learnt after a seed- and CPU-dependent number of steps: on a 2-core AVX2 CPU, 150 steps
left 0 scar pixels for 3 of 4 seeds and 300 steps for 2 of 4; 500 steps learnt it for all 4 (scar Dice
0.95-0.99). The test trains 500 so that it checks the recipe, not the luck of one seed on one instruction set.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from claim.evaluation.metrics import dice
from claim.labels import Label
from claim.phantom import make_phantom_cohort
from claim.segmentation.config import segmenter_preset
from claim.segmentation.data import training_slices
from claim.segmentation.predict import locate_heart, predict_label_maps
from claim.segmentation.train import SegmenterTrainer
from tests.conftest import SMALL


@pytest.mark.slow  # real training: 500 steps, about a minute on 2 cores
def test_tiny_preset_learns_scar_on_its_training_patients():
    config = segmenter_preset("tiny", steps=500)
    cases = make_phantom_cohort(3, seed=0, config=replace(SMALL, pathological_fraction=1.0))
    patients = [c.patient for c in cases]
    assert all((p.label_maps == Label.INFARCT).any() for p in patients)
    trainer = SegmenterTrainer(config, training_slices(patients, config), [], seed=0)
    for step in range(config.steps):
        trainer.step(step)
    pred = np.concatenate([predict_label_maps(trainer.network, config, p.images) for p in patients])
    gt = np.concatenate([p.label_maps for p in patients])
    scar_dice = dice(pred == Label.INFARCT, gt == Label.INFARCT)
    assert (pred == Label.INFARCT).sum() > 0.5 * (gt == Label.INFARCT).sum(), "scar is (almost) never predicted"
    assert scar_dice > 0.5
    # The localiser learned where the heart is: it follows a patient moved off-centre.
    for shift in ((12, -9), (-10, 14)):
        moved = np.roll(patients[0].images, shift, axis=(1, 2))
        heart = np.roll(patients[0].label_maps > 0, shift, axis=(1, 2)).any(axis=0)
        centre, found = locate_heart(trainer.network, config, moved)
        assert found and np.hypot(*(np.asarray(centre) - ndimage.center_of_mass(heart))) < 3.0
