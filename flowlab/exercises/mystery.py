"""A scheduler whose convention is not written down: the object of exercise 11.

:class:`MysteryScheduler` behaves like a diffusers scheduler (``set_timesteps``, ``timesteps``,
``sigmas``, ``step(model_output, timestep, sample)``) and documents nothing about its time
variable on purpose: students read its convention off ``flowlab inspect
flowlab.exercises.MysteryScheduler`` (or :func:`flowlab.inspector.inspect`). Lecturers: the answer
is in the test of exercise 11, and in the solved notebook EX_04.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import FlowlabError

__all__ = ["MysteryScheduler", "MysteryStepOutput"]


@dataclass
class MysteryStepOutput:
    """What :meth:`MysteryScheduler.step` returns (``prev_sample``, like diffusers)."""

    prev_sample: Tensor


class MysteryScheduler:
    """A first-order sampler for some flow-matching model. Which one? Inspect it.

    Usage, as in a diffusers loop::

        sched = MysteryScheduler()
        sched.set_timesteps(10)
        for timestep in sched.timesteps:
            out = model(x, timestep)
            x = sched.step(out, timestep, x).prev_sample
    """

    order = 1

    def __init__(self, shift: float = 2.0, num_train_timesteps: int = 1000) -> None:
        if not shift > 0:
            raise FlowlabError(f"shift must be > 0, got {shift!r}")
        self.shift = float(shift)
        self.num_train_timesteps = int(num_train_timesteps)
        self.timesteps: Tensor | None = None
        self.sigmas: Tensor | None = None
        self._i = 0

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Prepare ``num_inference_steps`` model calls."""
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise FlowlabError(f"num_inference_steps must be a positive integer, got {n!r}")
        w = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        u = 1 - w
        u = self.shift * u / (1 + (self.shift - 1) * u)
        grid = torch.cat([1 - u, torch.ones(1, dtype=torch.float64)]).to(torch.float32)
        self.sigmas = grid
        self.timesteps = grid[:-1] * self.num_train_timesteps
        self._i = 0

    def step(self, model_output: Tensor, timestep: Tensor | float, sample: Tensor) -> MysteryStepOutput:
        """One update of ``sample`` with the model's output at ``timestep``."""
        if self.sigmas is None:
            raise FlowlabError("call set_timesteps() before step()")
        if self._i >= len(self.sigmas) - 1:
            raise FlowlabError("step() called more often than set_timesteps() prepared for")
        here, there = self.sigmas[self._i], self.sigmas[self._i + 1]
        self._i += 1
        return MysteryStepOutput(prev_sample=sample + (there - here).to(sample.dtype) * model_output)
