"""What every trainer shares: the run folder and its step loop, checkpoint files, the weight EMA."""

from claim.training.checkpoint import read_checkpoint, save_checkpoint
from claim.training.ema import ema_horizon, update_ema
from claim.training.optim import fused_adamw
from claim.training.run import Cadence, RunFolder, default_checkpoint_every, run_steps, step_generator

__all__ = ["Cadence", "RunFolder", "default_checkpoint_every", "run_steps", "step_generator", "read_checkpoint",
           "save_checkpoint", "ema_horizon", "update_ema", "fused_adamw"]
