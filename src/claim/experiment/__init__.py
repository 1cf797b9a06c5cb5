"""The study: does SMILE + joint training beat real-only and LeFusion-style synthesis downstream?

``split`` makes a patient-level train/test split; ``transplant`` moves real scars between patients by AHA
coordinates (the LeFusion baseline's masks); ``config`` holds the presets; ``study`` runs the arms, resumable at
stage granularity; ``stats`` gives means, sds and paired bootstrap intervals.
"""

from claim.experiment.config import ARMS, EXPERIMENT_PRESETS, ExperimentConfig, experiment_preset

__all__ = ["ARMS", "EXPERIMENT_PRESETS", "ExperimentConfig", "experiment_preset"]
