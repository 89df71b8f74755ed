"""Notebooks 02, 03 and 06: trajectories in both conventions, the loss, sliced W2 against model calls, guidance."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ...conventions import REVERSED
from ...errors import FlowlabError
from ._style import DATA_COLOR, NOISE_COLOR, WRONG_COLOR, CONVENTION_STYLE, _WIDTH, _np


# ---- 02 / 03: trajectories, loss, sliced W2 ------------------------------------------------------------

def trajectories_2d(trajectories: Mapping[str, Tensor], unflipped: Tensor | None = None, data: Tensor | None = None,
                    *, n_lines: int = 60) -> Figure:
    """Both conventions' trajectories overlaid on one panel, and the unflipped (wrong) run next to it.

    ``trajectories``: ``{"conventional": xs, "reversed": xs}``, each ``(S + 1, B, 2)`` states (e.g.
    ``Trajectory.xs``) from the same noise. ``unflipped``: ``(S + 1, B, 2)`` states of the reversed
    sampler driven by the conventional velocity without ``flip``. ``data``: ``(M, 2)`` data points
    drawn faintly behind. Both panels share their axes, which cover every drawn point.
    """
    for name, xs in trajectories.items():
        if xs.ndim != 3 or xs.shape[-1] != 2:
            raise FlowlabError(f"trajectories_2d: {name} states must be (S + 1, B, 2), got {tuple(xs.shape)}")
    panels = 2 if unflipped is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(_WIDTH if panels == 2 else 5.2, 5.8), sharex=True, sharey=True,
                             squeeze=False)
    axes = axes[0]
    everything = [xs[:, :n_lines].reshape(-1, 2) for xs in trajectories.values()]
    if unflipped is not None:
        everything.append(unflipped[:, :n_lines].reshape(-1, 2))
    if data is not None:
        everything.append(data)
    pts = _np(torch.cat([p.to(torch.float64) for p in everything]))
    half = 1.08 * float(np.abs(pts).max())  # a square frame around the origin that holds every point

    def draw_data(ax: plt.Axes) -> None:
        if data is not None:
            ax.scatter(*_np(data[:3000]).T, s=2, color=DATA_COLOR, alpha=0.25, lw=0, label="data", zorder=0)

    ax = axes[0]
    draw_data(ax)
    for name, xs in trajectories.items():
        style = CONVENTION_STYLE.get(name, dict(color="0.3", lw=1.0, alpha=0.8, ls="-"))
        arr = _np(xs[:, :n_lines])
        for j in range(arr.shape[1]):
            ax.plot(arr[:, j, 0], arr[:, j, 1], label=name if j == 0 else None, **style)
    first = _np(next(iter(trajectories.values()))[0, :n_lines])
    last = _np(next(iter(trajectories.values()))[-1, :n_lines])
    ax.scatter(*first.T, s=10, color=NOISE_COLOR, zorder=3, label="start (noise)")
    ax.scatter(*last.T, s=10, color="black", zorder=3, label="end (sample)")
    ax.set_title("both conventions, same noise: the same paths", fontsize=10.5)
    if unflipped is not None:
        ax2 = axes[1]
        draw_data(ax2)
        arr = _np(unflipped[:, :n_lines])
        for j in range(arr.shape[1]):
            ax2.plot(arr[:, j, 0], arr[:, j, 1], color=WRONG_COLOR, lw=0.9, alpha=0.8,
                     label="conventional $v$, reversed sampler" if j == 0 else None)
        ax2.scatter(*arr[0].T, s=10, color=NOISE_COLOR, zorder=3, label="start (noise)")
        ax2.scatter(*arr[-1].T, s=10, color="black", zorder=3, label="end")
        ax2.set_title(r"without flip(): $v_{\mathrm{conv}}(x, t)$ used as $v_{\mathrm{rev}}$", fontsize=10.5)
    # a few far paths would shrink the rest to a dot: then the axes turn logarithmic beyond +-3
    # (the same scale on both axes and panels, so nothing is clipped and the middle keeps its shape)
    far = half > 4.5
    for a in axes:
        if far:
            _symlog(a, "x", 3.0, half, linscale=3.0)
            _symlog(a, "y", 3.0, half, linscale=3.0)
        a.set_xlim(-half, half)
        a.set_ylim(-half, half)
        a.set_aspect("equal")
        a.set_xlabel("$x_1$" + (" (linear in ±3, log beyond)" if far else ""))
        a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8.5, markerscale=2, frameon=False)
    axes[0].set_ylabel("$x_2$" + (" (linear in ±3, log beyond)" if far else ""))
    fig.tight_layout()
    return fig


def loss_curve(losses: Mapping[str, Tensor], *, window: int = 50) -> Figure:
    """Training loss per Adam step for each convention: raw (faint) and a ``window``-step moving average."""
    fig, ax = plt.subplots(figsize=(_WIDTH * 0.7, 3.6))
    for name, loss in losses.items():
        arr = _np(loss.reshape(-1))
        if arr.size == 0:
            raise FlowlabError(f"loss_curve: no losses for {name!r}")
        style = CONVENTION_STYLE.get(name, dict(color="0.3"))
        steps = np.arange(1, arr.size + 1)
        ax.plot(steps, arr, color=style["color"], alpha=0.2, lw=0.6)
        w = max(1, min(window, arr.size))
        smooth = np.convolve(arr, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, color=style["color"], lw=1.8, ls=style.get("ls", "-"),
                label=f"{name} ({w}-step mean)")
    ax.set_ylim(0, None)
    ax.set_xlabel("Adam step")
    ax.set_ylabel(r"$\|v_\theta(x_t, t) - \mathrm{target}\|^2$ (batch mean)")
    ax.set_title("flow-matching loss: falls, then levels off above 0 (the marginal velocity)", fontsize=10.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class SW2Row:
    """One point of :func:`sw2_vs_calls`: model calls, SW2 with hunyuan_compat and hunyuan_corrected."""

    calls: int
    compat: float
    corrected: float


def sw2_table(model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, reference: Tensor,
              calls: Sequence[int] = (2, 3, 4, 6, 8, 12, 16)) -> list[SW2Row]:
    """Sample ``model`` (reversed) from ``x0`` with both Hunyuan schedules per call count; SW2 to ``reference``."""
    from ...metrics import sliced_wasserstein
    from ...sampling import sample
    from ...schedules import hunyuan_compat, hunyuan_corrected

    rows = []
    for n in calls:
        sw = [sliced_wasserstein(sample(model, x0, sched(n, dtype=x0.dtype), REVERSED), reference)
              for sched in (hunyuan_compat, hunyuan_corrected)]
        rows.append(SW2Row(int(n), sw[0], sw[1]))
    return rows


def sw2_vs_calls(rows: Sequence[SW2Row], seed_noise: float | None = None) -> Figure:
    """Sliced W2 to the data against the number of model calls: Hunyuan3D-2's schedule vs the corrected one."""
    if not rows:
        raise FlowlabError("sw2_vs_calls: no rows to plot")
    calls = [r.calls for r in rows]
    fig, ax = plt.subplots(figsize=(_WIDTH * 0.7, 3.8))
    ax.plot(calls, [r.compat for r in rows], marker="o", color=WRONG_COLOR, lw=1.6,
            label="hunyuan_compat: linspace(0, 1, N) + [1]  (N - 1 steps)")
    ax.plot(calls, [r.corrected for r in rows], marker="s", color="tab:green", lw=1.6,
            label="hunyuan_corrected: linspace(0, 1, N + 1)  (N steps)")
    if seed_noise is not None:
        ax.axhline(seed_noise, color="0.4", ls=":", lw=1.2, label=f"seed noise (two data sets): {seed_noise:.2f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(calls)
    ax.set_xticklabels([str(c) for c in calls])
    ax.set_xlabel("model calls $N$")
    ax.set_ylabel("sliced $W_2$ to the data")
    ax.set_title("same number of calls, one of them wasted: the cost fades with $N$", fontsize=10.5)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8.5)
    fig.tight_layout()
    return fig


# ---- 06: guidance ---------------------------------------------------------------------------------------

def guidance_trajectories(ts: Tensor, runs: Mapping[str, Tensor], *, boundary: float = 1.0,
                          n_lines: int = 80, linthresh: float = 4.0) -> Figure:
    """Guided trajectories over time, one panel per run, on shared symlog axes that show every sample.

    ``ts``: ``(S + 1,)`` reversed times of the states; ``runs``: ``{label: xs}`` with ``xs (S + 1, B, 2)``.
    Top row: the constrained coordinate ``x_1`` against ``t`` for ``n_lines`` samples, with the region
    ``x_1 >= boundary`` shaded. Bottom row: all final samples. The axes are linear in
    ``[-linthresh, linthresh]`` and logarithmic outside, so nothing is clipped: the far samples of a wrong
    run are drawn where they are.
    """
    if not runs:
        raise FlowlabError("guidance_trajectories: no runs to plot")
    n = len(runs)
    t = _np(ts)
    every = _np(torch.cat([xs.reshape(-1, 2).to(torch.float64) for xs in runs.values()]))
    big = float(np.abs(every).max()) * 1.3
    fig, axes = plt.subplots(2, n, figsize=(_WIDTH, 7.6), squeeze=False, gridspec_kw=dict(height_ratios=[1, 1.15]))
    for col, (label, xs) in enumerate(runs.items()):
        arr = _np(xs)
        top, bottom = axes[0, col], axes[1, col]
        top.axhspan(boundary, big, color=DATA_COLOR, alpha=0.08, lw=0)
        for j in range(min(n_lines, arr.shape[1])):
            inside = arr[-1, j, 0] >= boundary - 0.05
            top.plot(t, arr[:, j, 0], lw=0.7, alpha=0.7, color="tab:green" if inside else WRONG_COLOR)
        top.axhline(boundary, color="black", lw=0.9)
        _symlog(top, "y", linthresh, big)
        top.set_ylim(-big, big)
        top.set_xlim(0, 1)
        top.set_xlabel("$t$ (reversed time, 0 = noise, 1 = data)")
        top.set_title(label, fontsize=10.5)
        fin = arr[-1]
        inside = fin[:, 0] >= boundary - 0.05
        bottom.axvspan(boundary, big, color=DATA_COLOR, alpha=0.08, lw=0)
        bottom.scatter(fin[inside, 0], fin[inside, 1], s=3, color="tab:green", lw=0, label=f"inside: {inside.mean():.0%}")
        bottom.scatter(fin[~inside, 0], fin[~inside, 1], s=3, color=WRONG_COLOR, lw=0, label=f"outside: {(~inside).mean():.0%}")
        bottom.axvline(boundary, color="black", lw=0.9)
        for a in ("x", "y"):
            _symlog(bottom, a, linthresh, big)
        bottom.set_xlim(-big, big)
        bottom.set_ylim(-big, big)
        bottom.set_aspect("equal")
        bottom.set_xlabel("$x_1$ (symlog: linear in ±%g)" % linthresh)
        bottom.set_title(f"final samples; median $|x|$ = {np.median(np.linalg.norm(fin, axis=1)):.1f}", fontsize=10)
        bottom.legend(loc="lower left", fontsize=8.5, markerscale=3, framealpha=0.85)
    axes[0, 0].set_ylabel("$x_1$ (symlog)")
    axes[1, 0].set_ylabel("$x_2$ (symlog)")
    fig.suptitle(f"region $x_1 \\geq {boundary:g}$ (shaded, right of the black line); "
                 "same axes in every panel, nothing clipped", fontsize=11)
    fig.tight_layout()
    return fig


def _symlog(ax: plt.Axes, axis: str, linthresh: float, big: float, *, linscale: float = 2.0) -> None:
    """Symmetric log scale, linear (and wide) in ``[-linthresh, linthresh]``, with plain-number ticks."""
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=linthresh, linscale=linscale)
    ticks = [0.0, 2.0]
    decade = 10.0
    while decade < big:
        ticks.append(decade)
        decade *= 10
    if len(ticks) == 2 and big > 1.5 * linthresh:  # no decade in range: mark the far end instead
        ticks.append(float(math.floor(big / 1.08)))
    ticks = sorted({-t for t in ticks if t} | set(ticks))
    getattr(ax, f"set_{axis}ticks")(ticks, [f"{t:g}" for t in ticks])
    getattr(ax, f"set_{axis}ticks")([], minor=True)
