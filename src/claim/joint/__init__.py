"""Joint training of the scar generator G and the segmenter S, with S's loss reaching G.

``config`` (JointConfig, presets), ``canvas`` (normal patients + SMILE samplers), ``consistency`` (the differentiable
feedback term), ``synthetic`` (replay buffer filled by G's fast sampler) and ``train`` (the loop, checkpoints, resume).
"""

from __future__ import annotations

from claim.joint.config import JOINT_PRESETS, JointConfig, joint_preset
from claim.joint.consistency import generator_feedback
from claim.joint.train import JointResult, train_joint

__all__ = ["JointConfig", "JOINT_PRESETS", "joint_preset", "JointResult", "train_joint", "generator_feedback"]
