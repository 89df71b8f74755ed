"""Reading the record of a user's loop: call times, the step each pair of calls implies, and the known mistakes'
own behaviour evaluated on those records (used by :mod:`flowlab.testing.sampler`).

Vocabulary: ``t`` is the convention's time (the timestep the loop passed divided by ``time_scale``), ``u`` the
noise level ``(t - t_data) / (t_noise - t_data)`` (1 = noise, 0 = data) so statements hold in both conventions.
A *pair* is two consecutive evaluations (or the last evaluation and the loop's output): ``dx`` the state change,
``v`` the velocity returned at the first one, and ``dt = <dx, v> / <v, v>``, the time step an Euler update
``x' = x + dt v`` would have taken. The pair is *Euler-consistent* when ``dx - dt v`` is round-off only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..conventions import Convention
from ._exact import Call, rel_rms

__all__ = ["Evaluation", "Pair", "evaluations", "pairs", "half_rounded", "shift_estimate"]


@dataclass
class Evaluation:
    """Consecutive calls at the same state and time with different conditioning (CFG branches called one by
    one) count as one evaluation; a repeated call with the same conditioning is a call of its own."""

    x: Tensor  # (B, dim) float64, the first B rows the loop passed
    t: float  # convention time (first row)
    v: Tensor  # (B, dim) velocity returned (first call of the group)
    n_calls: int
    time_dtype: torch.dtype | None


@dataclass
class Pair:
    t: float  # time of the first evaluation
    t_next: float | None  # time of the next evaluation (None: the pair ends at the loop's output)
    dt: float
    resid: float  # |dx - dt v| / |dx|
    moved: bool
    consistent: bool


def evaluations(calls: list[Call], rows: int) -> list[Evaluation]:
    out: list[Evaluation] = []
    extras: list[int | None] = []
    for c in calls:
        x, v = c.x[:rows], c.v[:rows]
        t = float(c.t[0])
        if out and out[-1].t == t and c.extra is not None and c.extra != extras[-1] \
                and x.shape == out[-1].x.shape and torch.equal(x, out[-1].x):
            out[-1].n_calls += 1
            continue
        out.append(Evaluation(x, t, v, 1, c.time_dtype))
        extras.append(c.extra)
    return out


def pairs(evs: list[Evaluation], final: Tensor, eps: float) -> list[Pair]:
    """One pair per evaluation: to the next evaluation's state, the last one to ``final`` (float64 ``(B, dim)``).
    ``eps``: the loop's dtype resolution; it sets how much of ``dx - dt v`` is round-off."""
    res: list[Pair] = []
    for k, e in enumerate(evs):
        nxt = evs[k + 1].x if k + 1 < len(evs) else final
        if nxt.shape != e.x.shape:
            continue
        dx = nxt - e.x
        vv = float((e.v * e.v).sum())
        dt = float((dx * e.v).sum()) / vv if vv > 0 else 0.0
        ndx = float(dx.norm())
        scale = float(e.x.norm()) + float(nxt.norm())
        moved = ndx > 4 * eps * scale / math.sqrt(max(dx.numel(), 1)) + 1e-300
        resid = float((dx - dt * e.v).norm()) / ndx if ndx > 0 else 0.0
        noise = 8 * eps * scale / ndx if ndx > 0 else math.inf  # round-off of dx relative to |dx|
        res.append(Pair(e.t, evs[k + 1].t if k + 1 < len(evs) else None, dt, resid, moved,
                        moved and resid < 1e-3 + noise))
    # a pair that moved by round-off only (a dt = 0 step whose update re-rounds the state) moved nothing
    sizes = sorted(abs(p.dt) for p in res if p.moved)
    if sizes:
        typical = sizes[len(sizes) // 2]
        for p in res:
            if p.moved and abs(p.dt) < 1e-4 * typical:
                p.moved = False
    return res


def _round(q: Tensor, dtype: torch.dtype) -> Tensor:
    return q.to(dtype).to(torch.float64)


def half_rounded(times: list[float], time_scale: float) -> str | None:
    """The half-precision format (``"float16"`` / ``"bfloat16"``) in which all ``times`` (convention units) are
    exact values on the loop's scale, on a 0-1 scale or on a 0-1000 scale; None when no format fits."""
    t = torch.tensor(times, dtype=torch.float64)
    nz = t[t.abs() > 0]
    if nz.numel() < 3:
        return None
    for dtype in (torch.float16, torch.bfloat16):
        for scale in dict.fromkeys((time_scale, 1.0, 1000.0)):
            q = nz * scale
            if bool(((q - _round(q, dtype)).abs() <= 1e-6 * q.abs()).all()):
                return str(dtype).replace("torch.", "")
    return None


def shift_estimate(us: list[float]) -> float | None:
    """The SD3 shift ``s`` of the grid of noise levels ``us`` (calls, any order): the median over the middle half
    of ``odds(u_j) / odds(1 - j / n)`` for the distinct interior levels sorted from noise to data (``n`` of them,
    the noise endpoint included). The shift multiplies the odds ``u / (1 - u)``, so a shift applied twice shows
    as ``s^2``. None with fewer than 4 distinct levels."""
    levels = sorted({round(u, 12) for u in us if u > 1e-6}, reverse=True)
    n = len(levels)
    if n < 4:
        return None
    logs = []
    for j in range(n // 4, (3 * n) // 4 + 1):
        u, base = levels[j], 1 - j / n
        if 0 < u < 1 and 0 < base < 1:
            logs.append(math.log(u / (1 - u)) - math.log(base / (1 - base)))
    if not logs:
        return None
    logs.sort()
    return math.exp(logs[len(logs) // 2])


def noise_as_data_steps(evs: list[Evaluation], conv: Convention, final: Tensor, t_end: float,
                        tol: float) -> tuple[int, int]:
    """How many steps match an update that takes the NOISE prediction for the data (#124), of how many tried.

    Two forms are evaluated on each recorded step ``x -> x'`` (``t -> t'``): the roles swapped,
    ``x' = a(t') pred_noise + b(t') pred_data``, and ``x' = a(t') d + b(t') (x - a(t) d) / b(t)`` with
    ``d = pred_noise`` taken as the data and the noise made consistent with it.
    """
    hits = tried = 0
    for k, e in enumerate(evs):
        nxt = evs[k + 1].x if k + 1 < len(evs) else final
        t_next = evs[k + 1].t if k + 1 < len(evs) else t_end
        if nxt.shape != e.x.shape:
            continue
        tt = torch.tensor([e.t, t_next], dtype=torch.float64)
        a, b, _, _ = conv.coefficients(tt)
        if abs(float(b[0])) < 1e-6:
            continue
        d_wrong = conv._pred_noise(e.x, e.v, e.t)
        d_true = conv._pred_data(e.x, e.v, e.t)
        swapped = float(a[1]) * d_wrong + float(b[1]) * d_true
        consistent = float(a[1]) * d_wrong + float(b[1]) * (e.x - float(a[0]) * d_wrong) / float(b[0])
        tried += 1
        if min(rel_rms(nxt, swapped), rel_rms(nxt, consistent)) <= tol:
            hits += 1
    return hits, tried
