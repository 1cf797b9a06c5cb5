"""Scar segmenter (2D cascade of MONAI DynUNets, nnU-Net style) trained on real and synthetic slices with HF
Accelerate: a localiser finds the heart, the segmenter works on the LV-centred ROI, predictions are pasted back
and cleaned anatomically."""

from claim.segmentation.checkpoint import load_segmenter
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import SliceSet, slices_from_patients, training_slices
from claim.segmentation.loss import dice_ce_loss, supervised_loss
from claim.segmentation.net import CascadeSegmenter, build_segmenter, normalise_images
from claim.segmentation.postprocess import anatomical_postprocess
from claim.segmentation.predict import (
    locate_heart,
    predict_ensemble,
    predict_label_maps,
    predict_patient,
    predict_probabilities,
    segment_folder,
)
from claim.segmentation.train import SegmenterResult, SegmenterTrainer, train_segmenter

__all__ = [
    "SegmenterConfig",
    "segmenter_preset",
    "CascadeSegmenter",
    "build_segmenter",
    "normalise_images",
    "dice_ce_loss",
    "supervised_loss",
    "anatomical_postprocess",
    "SliceSet",
    "slices_from_patients",
    "training_slices",
    "SegmenterTrainer",
    "SegmenterResult",
    "train_segmenter",
    "load_segmenter",
    "locate_heart",
    "predict_label_maps",
    "predict_patient",
    "predict_probabilities",
    "predict_ensemble",
    "segment_folder",
]
