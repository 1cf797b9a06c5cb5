"""Evaluation: EMIDEC metrics per patient (slices stacked) and over prediction folders."""

from claim.evaluation.metrics import METRIC_KEYS, dice, dice_scores, evaluate_folders, patient_metrics

__all__ = ["METRIC_KEYS", "dice", "dice_scores", "patient_metrics", "evaluate_folders"]
