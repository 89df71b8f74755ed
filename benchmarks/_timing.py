"""Timing helpers shared by the benchmarks: median of several runs after warm-up, device-side clocks.

On CUDA each run is bracketed by CUDA events recorded on the current stream (no host clock, no
sync inside the timed region); on CPU by ``time.perf_counter``.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Timing:
    """Wall times of the timed runs, in milliseconds; ``median`` is what the tables print."""

    runs_ms: list[float] = field(default_factory=list)
    result: object = field(default=None, repr=False)

    @property
    def median(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def spread(self) -> float:
        """(max - min) / median over the runs: how far apart two timings of the same thing are."""
        return (max(self.runs_ms) - min(self.runs_ms)) / self.median if self.runs_ms else float("nan")


def time_fn(fn: Callable[[], object], device: torch.device, *, warmup: int = 1, reps: int = 5) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``reps`` times timed; returns the per-run times and
    (as ``.result``) what the last timed run returned."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out = Timing()
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out.result = fn()
            end.record()
            end.synchronize()
            out.runs_ms.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            out.result = fn()
            out.runs_ms.append((time.perf_counter() - t0) * 1e3)
    return out


def card_name(device: torch.device) -> str:
    """``torch.cuda.get_device_name()`` on CUDA, else ``cpu (N threads)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
