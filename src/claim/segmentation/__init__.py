"""Scar segmenter (MONAI DynUNet 2D, nnU-Net style) trained on real and synthetic slices with HF Accelerate."""

from claim.segmentation.checkpoint import load_segmenter
from claim.segmentation.config import SegmenterConfig, segmenter_preset
from claim.segmentation.data import SliceSet, centre_crop, paste_centre, slices_from_patients
from claim.segmentation.loss import dice_ce_loss
from claim.segmentation.net import build_segmenter, normalise_images
from claim.segmentation.predict import predict_label_maps, segment_folder
from claim.segmentation.train import SegmenterResult, SegmenterTrainer, train_segmenter

__all__ = [
    "SegmenterConfig",
    "segmenter_preset",
    "build_segmenter",
    "normalise_images",
    "dice_ce_loss",
    "SliceSet",
    "centre_crop",
    "paste_centre",
    "slices_from_patients",
    "SegmenterTrainer",
    "SegmenterResult",
    "train_segmenter",
    "load_segmenter",
    "predict_label_maps",
    "segment_folder",
]
