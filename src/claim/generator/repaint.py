"""RePaint jump schedule (Lugmayr et al. 2022) as a plain list of timesteps: testable without a model.

Re-derived from the description of LeFusion's ``get_schedule_jump`` (jump2/jump3 off, one sample): walking down
from T, at every jump point ``t = 0, L, 2L, ...`` with ``t < T - L`` the walk goes back up ``L`` steps, ``n - 1``
times per point. The list starts at ``T - 1`` and ends at ``-1``; consecutive entries differ by one. A pair with
``t_next < t_prev`` is one denoiser evaluation at ``t_prev``; a pair with ``t_next > t_prev`` re-noises one step.
NFE = ``T + (#jump points) (n - 1) L``: 1,480 for 5x5 and 598 for 2x2 at T = 300.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RePaintPlan", "jump_times"]


def jump_times(timesteps: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """The RePaint timestep walk for ``T = timesteps``, jump length ``L`` and ``n`` resamplings."""
    if timesteps < 1 or jump_length < 1 or jump_n_sample < 1:
        raise ValueError(f"timesteps {timesteps}, jump length {jump_length}, jump count {jump_n_sample} must be >= 1")
    jumps_left = {t: jump_n_sample - 1 for t in range(0, timesteps - jump_length, jump_length)}
    times: list[int] = []
    t = timesteps
    while t >= 1:
        t -= 1
        times.append(t)
        if jumps_left.get(t, 0) > 0:
            jumps_left[t] -= 1
            for _ in range(jump_length):
                t += 1
                times.append(t)
    times.append(-1)
    return times


@dataclass(frozen=True)
class RePaintPlan:
    """A precomputed RePaint walk.

    Attributes:
        timesteps: T of the schedule.
        jump_length / jump_n_sample: L and n.
        times: the walk, ``T-1 ... -1``.
    """

    timesteps: int
    jump_length: int
    jump_n_sample: int
    times: tuple[int, ...]

    @classmethod
    def build(cls, timesteps: int, jump_length: int = 5, jump_n_sample: int = 5) -> RePaintPlan:
        return cls(timesteps, jump_length, jump_n_sample, tuple(jump_times(timesteps, jump_length, jump_n_sample)))

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Consecutive ``(t_prev, t_next)`` pairs in order."""
        return list(zip(self.times[:-1], self.times[1:], strict=True))

    @property
    def nfe(self) -> int:
        """Denoiser evaluations per run (pairs that step down)."""
        return sum(1 for a, b in self.pairs if b < a)

    @property
    def n_undo(self) -> int:
        """Re-noising steps per run."""
        return sum(1 for a, b in self.pairs if b > a)
