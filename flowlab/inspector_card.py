"""What the inspector reports: per-step coefficients and the convention card (text and JSON)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

__all__ = ["StepCoefficients", "Inspection"]


@dataclass(frozen=True)
class StepCoefficients:
    """``x' = a x + b out + c`` at step ``i``, called with ``timestep``; ``residual`` on random rows."""

    i: int
    timestep: float
    a: float
    b: float
    c: float
    residual: float


@dataclass(frozen=True)
class Inspection:
    """What the inspector found. ``affine`` False means nothing below ``steps`` was derived.

    Attributes:
        source: what was inspected.
        n_calls: model calls (steps) probed.
        steps: the per-step coefficients.
        affine: every step reproduced its random rows with the recovered coefficients.
        euler: every step is ``x + dt out`` (``a = 1``, ``c = 0``).
        times: the recovered time grid ``tau_0 .. tau_n`` (``None`` when it cannot be anchored).
        direction: ``"decreasing"`` (like sigma 1 -> 0) or ``"increasing"`` (like t 0 -> 1).
        noop_steps: steps with ``dt = 0``.
        effective_steps: steps that move the sample.
        shift: fitted SD3 shift of the noise-level grid (1.0 = none), ``None`` if no fit.
        model_time_scale: ``K`` with ``timestep = K tau`` when that holds for every step, else ``None``.
        convention: matching flowlab convention name, ``None`` if none matches.
        model_output: what the network must output (derived), e.g. ``"E - D"``.
        data_prediction: the data prediction formula (derived), e.g. ``"x - sigma*v"``.
        noise_prediction: the noise prediction formula (derived).
        findings: plain-language statements (traps found, reasons for refusing).
    """

    source: str
    n_calls: int
    steps: tuple[StepCoefficients, ...]
    affine: bool
    euler: bool
    times: tuple[float, ...] | None = None
    direction: str | None = None
    noop_steps: tuple[int, ...] = ()
    effective_steps: int | None = None
    shift: float | None = None
    model_time_scale: float | None = None
    convention: str | None = None
    model_output: str | None = None
    data_prediction: str | None = None
    noise_prediction: str | None = None
    findings: tuple[str, ...] = field(default_factory=tuple)
    driven: bool = False
    solver_order: int | None = None
    measured_order: float | None = None
    candidates: tuple[tuple[str, float], ...] = ()

    @property
    def derived(self) -> bool:
        """A card was derived (the step is affine, or the scheduler was driven with the exact model)."""
        return self.affine or (self.driven and self.model_output is not None)

    def as_dict(self) -> dict:
        """Plain JSON-ready dict (non-finite numbers become ``None``)."""
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        out = {k: clean(v) for k, v in asdict(self).items()}
        out["steps"] = [{k: clean(v) for k, v in asdict(s).items()} for s in self.steps]
        for key in ("times", "noop_steps", "findings"):
            if out[key] is not None:
                out[key] = list(out[key])
        out["candidates"] = [[name, clean(err)] for name, err in self.candidates]
        out["derived"] = self.derived
        return out

    def card(self) -> str:
        """The card as text (what ``flowlab inspect`` prints)."""
        lines = [f"scheduler: {self.source}", f"model calls: {self.n_calls}"]
        if not self.affine and not self.derived:
            lines.append("affine in (sample, model_output): NO")
            lines += [f"- {f}" for f in self.findings]
            return "\n".join(lines)
        if self.driven:
            lines.append("affine in (sample, model_output): no (multistep / higher order); driven with an exact model")
            if self.solver_order is not None:
                lines.append(f"solver order: {self.solver_order} (declared)" + (
                    f"; observed on the exact model: error ~ 1/n^{self.measured_order:.1f} from 8 to 16 steps"
                    if self.measured_order is not None else ""))
        else:
            lines.append("affine in (sample, model_output): yes (x' = a x + b out + c, checked on random inputs)")
            lines.append("update: Euler, x' = x + dt * out" if self.euler else
                         "update: affine but not Euler (a != 1 or c != 0)")
        if self.direction:
            lines.append(f"direction of time: {self.direction}")
        if self.times is not None:
            lines.append(f"times: {_fmt_list(self.times)}")
        if self.effective_steps is not None:
            lines.append(f"effective steps: {self.effective_steps} of {self.n_calls} calls"
                         + (f" (no-op steps: {list(self.noop_steps)})" if self.noop_steps else ""))
        if self.shift is not None:
            lines.append(f"shift: {self.shift:.4f}" + ("" if abs(self.shift - 1) > 1e-3 else " (none)"))
        if self.model_time_scale is not None:
            lines.append(f"model is called with timestep = {self.model_time_scale:g} * time")
        if self.convention:
            lines.append(f"convention: {self.convention}")
        if self.model_output:
            lines.append(f"model output expected: {self.model_output}")
        if self.data_prediction:
            lines.append(f"data prediction: {self.data_prediction}")
        if self.noise_prediction:
            lines.append(f"noise prediction: {self.noise_prediction}")
        lines += [f"- {f}" for f in self.findings]
        return "\n".join(lines)


def _fmt_list(vals: Sequence[float]) -> str:
    if len(vals) <= 8:
        return "[" + ", ".join(f"{v:.5g}" for v in vals) + "]"
    return ("[" + ", ".join(f"{v:.5g}" for v in vals[:3]) + ", ..., "
            + ", ".join(f"{v:.5g}" for v in vals[-3:]) + f"] ({len(vals)} points)")
