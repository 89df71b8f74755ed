"""The pictures the notebooks teach with, and the registry ``flowlab figures`` writes.

Each public plotting function takes data a notebook has already computed (with flowlab calls and
checked claims) and returns one :class:`matplotlib.figure.Figure`, so a notebook draws a figure with
one call. :data:`REGISTRY` maps each figure name to a builder that computes small default data itself
(exact Gaussian-mixture velocities, a tiny training run) for ``flowlab figures --out DIR``.

Conventions for every figure: the data is blue, the noise orange, the state ``x`` dark grey;
compared panels share their axes; every axis is labelled; titles use mathtext (``$\\sigma$``, ``$t$``).
Figures are 9-10 inches wide: about 900 px in a JupyterLab output or an HTML page at 100 dpi.

Notation (notebooks/NOTATION.md): D = data, E = noise, conventional time ``sigma`` runs 1 -> 0
(data at 0), reversed time ``t`` runs 0 -> 1 (data at 1), ``t = 1 - sigma``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .. import functional as F
from ..conventions import CONVENTIONAL, REVERSED, Convention
from ..errors import FlowlabError

__all__ = [
    "DATA_COLOR", "NOISE_COLOR", "STATE_COLOR", "CONVENTION_STYLE", "REGISTRY", "FigureSpec",
    "segment_jumps", "time_axes", "shift_schedules", "trajectories_2d", "loss_curve", "sw2_vs_calls",
    "guidance_trajectories", "predictions_over_t", "show_predictions_over_t", "widget_frontend", "sample_panels",
    "build", "sw2_table",
]

DATA_COLOR = "tab:blue"
NOISE_COLOR = "tab:orange"
STATE_COLOR = "0.25"
WRONG_COLOR = "tab:red"
#: line style per convention: the two runs are the same points, so the overlay must show both.
CONVENTION_STYLE = {
    "conventional": dict(color="tab:purple", lw=2.6, alpha=0.35, ls="-"),
    "reversed": dict(color="tab:green", lw=0.9, alpha=0.9, ls="--"),
}
_WIDTH = 9.6


def _sym(conv: Convention) -> str:
    return r"\sigma" if conv.symbol == "sigma" else "t"


def _np(x: Tensor) -> np.ndarray:
    return x.detach().to(torch.float64).cpu().numpy()


# ---- 01: the segment and the two Euler jumps ---------------------------------------------------------

def segment_jumps(time: float = 0.4) -> Figure:
    """Noise E, data D, the state on the straight path and both Euler jumps, per convention.

    ``time``: the reversed ``t`` in (0, 1) of the state drawn; the conventional panel shows the same
    point at ``sigma = 1 - t``. The points are computed with the conventions' own ``interpolate``,
    ``velocity_target`` and :func:`flowlab.functional.jump` (``x + (s' - s) v``).
    """
    if not (isinstance(time, (int, float)) and 0 < time < 1):
        raise FlowlabError(f"segment_jumps: time must be a number strictly between 0 and 1, got {time!r}")
    D = torch.tensor([[2.0, 1.2]], dtype=torch.float64)
    E = torch.tensor([[-1.6, -0.9]], dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(_WIDTH, 4.4), sharex=True, sharey=True)
    for ax, conv in zip(axes, (CONVENTIONAL, REVERSED)):
        s = torch.tensor([time if conv is REVERSED else 1 - time], dtype=torch.float64)
        x = conv.interpolate(D, E, s)
        v = conv.velocity_target(D, E, s)
        sym = _sym(conv)
        ax.plot(*_np(torch.cat([E, D])).T, color="0.7", lw=1.5, zorder=1)
        ax.scatter(*_np(D).T, s=90, color=DATA_COLOR, zorder=3)
        ax.scatter(*_np(E).T, s=90, color=NOISE_COLOR, zorder=3)
        ax.scatter(*_np(x).T, s=60, color=STATE_COLOR, zorder=4)
        ax.annotate(f"$x$ at ${sym} = {float(s):.1f}$", _np(x)[0], xytext=(-6, 10), textcoords="offset points",
                    fontsize=10, ha="right")
        for target in (0, 1):
            end = F.jump(x, v, s, torch.full_like(s, float(target)))
            is_data = bool(torch.allclose(end, D))
            color = DATA_COLOR if is_data else NOISE_COLOR
            rad = -0.45 if is_data else 0.45
            ax.annotate("", xy=_np(end)[0], xytext=_np(x)[0], zorder=2,
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6,
                                        connectionstyle=f"arc3,rad={rad}", shrinkA=6, shrinkB=8))
            formula = f"x + (1 - {sym})\\,v" if target == 1 else f"x - {sym}\\,v"
            what = "D (data)" if is_data else "E (noise)"
            text = f"{what} at ${sym} = {target}$\njump to $s' = {target}$: ${formula}$"
            if is_data:
                ax.annotate(text, _np(end)[0], xytext=(0, 16), textcoords="offset points", color=color,
                            fontsize=9.5, ha="center", va="bottom")
            else:
                ax.annotate(text, _np(end)[0], xytext=(0, -16), textcoords="offset points", color=color,
                            fontsize=9.5, ha="center", va="top")
        step = F.jump(x, v, s, s + 0.12 * conv.direction)
        ax.annotate("", xy=_np(step)[0], xytext=_np(x)[0],
                    arrowprops=dict(arrowstyle="-|>", color=STATE_COLOR, lw=2.5, shrinkA=4, shrinkB=0))
        v_txt = "E - D" if conv is CONVENTIONAL else "D - E"
        path = r"(1 - \sigma) D + \sigma E" if conv is CONVENTIONAL else "t D + (1 - t) E"
        ax.set_title(f"{conv.name}: $x = {path}$, $v = {v_txt}$", fontsize=10.5)
        ax.set_xlabel("$x_1$ (first coordinate)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("$x_2$ (second coordinate)")
    axes[0].set_xlim(-3.5, 3.5)
    axes[0].set_ylim(-2.1, 2.3)
    fig.suptitle(r"Euler jump $x' = x + (s' - s)\,v$ to both ends; the dark arrow is one sampling step", fontsize=11)
    fig.tight_layout()
    return fig


# ---- 01 / 05: time axes and schedules ----------------------------------------------------------------

def time_axes(n_calls: int = 10) -> Figure:
    """The sigma axis and the t axis aligned (t = 1 - sigma), with Hunyuan3D-2's ``n_calls`` schedule.

    Rows: the conventional ``sigma`` axis, the reversed ``t`` axis with ``hunyuan_compat(n_calls)``
    (its last step ``1 -> 1`` marked as the wasted call) and ``hunyuan_corrected(n_calls)``.
    The horizontal position is the noise level ``u = sigma = 1 - t``, noise on the left.
    """
    from ..schedules import hunyuan_compat, hunyuan_corrected, n_effective_steps

    compat = hunyuan_compat(n_calls, dtype=torch.float64)
    corrected = hunyuan_corrected(n_calls, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(_WIDTH, 3.6))
    rows = {"sigma": 3.0, "compat": 2.0, "corrected": 1.0}
    # the position on the page is the noise level: conventional sigma itself, reversed 1 - t
    for y in rows.values():
        ax.plot([0, 1], [y, y], color="0.6", lw=1, zorder=1)
    for k in range(11):
        u = 1 - k / 10
        ax.plot([1 - u, 1 - u], [rows["sigma"] - 0.06, rows["sigma"] + 0.06], color="0.3", lw=1)
        ax.text(1 - u, rows["sigma"] + 0.13, f"{u:.1f}", ha="center", fontsize=8.5)
    ax.text(-0.02, rows["sigma"], r"conventional $\sigma$" + "\n(diffusers, SD3)", ha="right", va="center", fontsize=9.5)
    ax.annotate("", xy=(0.98, rows["sigma"] + 0.42), xytext=(0.02, rows["sigma"] + 0.42),
                arrowprops=dict(arrowstyle="-|>", color="0.3"))
    ax.text(0.5, rows["sigma"] + 0.5, r"sampling: $\sigma$ 1 → 0 and $t$ 0 → 1 move the same way",
            ha="center", fontsize=9.5)
    for key, sched, label in (("compat", compat, f"Hunyuan3D-2 $t$\n{n_calls} calls (as shipped)"),
                              ("corrected", corrected, f"corrected $t$\n{n_calls} calls")):
        y = rows[key]
        ts = sched.tolist()
        ax.text(-0.02, y, label, ha="right", va="center", fontsize=9.5)
        for i in range(len(ts) - 1):
            a, b = ts[i], ts[i + 1]
            if b > a:
                ax.annotate("", xy=(b, y), xytext=(a, y),
                            arrowprops=dict(arrowstyle="-|>", color="tab:green", lw=1.3, shrinkA=2, shrinkB=2))
            else:
                ax.scatter([a], [y], s=260, facecolors="none", edgecolors=WRONG_COLOR, linewidths=2, zorder=4)
                ax.annotate(f"call {i + 1}: $t$ = {a:g} → {b:g},\n$dt = 0$ (wasted)", (a, y), xytext=(a + 0.035, y - 0.55),
                            color=WRONG_COLOR, fontsize=9, ha="left",
                            arrowprops=dict(arrowstyle="-", color=WRONG_COLOR, lw=0.8))
        ax.scatter(ts[:-1], [y] * (len(ts) - 1), s=14, color="tab:green", zorder=3)
        eff = n_effective_steps(sched)
        ax.text(0.5, y - 0.3, f"{n_calls} model calls, {eff} effective steps of size 1/{eff}",
                ha="center", fontsize=8.5, color="0.25")
    for k in range(11):
        ax.text(k / 10, rows["corrected"] - 0.6, f"{k / 10:.1f}", ha="center", fontsize=8.5)
    ax.text(0.5, rows["corrected"] - 0.85, r"$t = 1 - \sigma$  (noise on the left, data on the right)",
            ha="center", fontsize=9.5)
    ax.text(0.0, rows["sigma"] - 0.32, "noise", color=NOISE_COLOR, ha="center", fontsize=9.5)
    ax.text(1.0, rows["sigma"] - 0.32, "data", color=DATA_COLOR, ha="center", fontsize=9.5)
    ax.set_xlim(-0.32, 1.12)
    ax.set_ylim(0.05, 3.65)
    ax.axis("off")
    ax.set_title(r"One time axis read two ways; Hunyuan3D-2's schedule appends $t = 1$ to linspace(0, 1, N)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def shift_schedules(n_steps: int = 10, shift: float = 3.0, diffusers_sigmas: Tensor | None = None) -> Figure:
    """Conventional sigma per step: no shift, SD3 shift ``shift`` applied once, and diffusers' own grid.

    ``diffusers_sigmas``: ``FlowMatchEulerDiscreteScheduler(shift=shift).set_timesteps(n_steps)``'s
    ``sigmas`` (the double shift of diffusers #13243); ``None`` leaves that line out. Right panel: the
    same on a log scale, where the terminal step is visible.
    """
    from ..schedules import shifted

    lines = [("shift 1 (uniform)", shifted(n_steps, CONVENTIONAL, 1.0, dtype=torch.float64), "0.45", "o", "-"),
             (f"shift {shift:g}, applied once (flowlab.schedules.shifted)",
              shifted(n_steps, CONVENTIONAL, shift, dtype=torch.float64), "tab:blue", "s", "-")]
    if diffusers_sigmas is not None:
        lines.append((f"diffusers set_timesteps({n_steps}), shift {shift:g}: shifted twice (#13243)",
                      diffusers_sigmas.to(torch.float64), WRONG_COLOR, "^", "--"))
    fig, axes = plt.subplots(1, 2, figsize=(_WIDTH, 3.9), sharex=True)
    for ax in axes:
        for label, sig, color, marker, ls in lines:
            k = np.arange(len(sig))
            ax.plot(k, _np(sig), color=color, marker=marker, ms=4.5, ls=ls, lw=1.4, label=label)
        ax.set_xlabel("step $k$ (model call $k + 1$ starts here)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"$\sigma_k$ (1 = noise, 0 = data)")
    axes[1].set_yscale("log")
    axes[1].set_ylim(1e-3, 1.5)
    axes[1].set_ylabel(r"$\sigma_k$, log scale ($\sigma = 0$ not shown)")
    if diffusers_sigmas is not None:
        last = float(diffusers_sigmas[-2])
        axes[1].annotate(f"last nonzero $\\sigma$ = {last:.5f}\nthen one jump to 0", (n_steps - 1, last),
                         xytext=(n_steps - 7.5, 0.0022), fontsize=9, color=WRONG_COLOR,
                         arrowprops=dict(arrowstyle="-|>", color=WRONG_COLOR, lw=0.8))
    axes[0].set_title(r"SD3 shift $\sigma' = s\sigma / (1 + (s - 1)\sigma)$", fontsize=10.5)
    axes[1].set_title("the same, log scale: the terminal step", fontsize=10.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig


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
    from ..metrics import sliced_wasserstein
    from ..sampling import sample
    from ..schedules import hunyuan_compat, hunyuan_corrected

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


# ---- the interactive view -------------------------------------------------------------------------------

VIEW_3D = dict(elev=25, azim=35)


def _prediction_panel(ax: plt.Axes, x: np.ndarray, d: np.ndarray, e: np.ndarray, title: str, legend: bool) -> None:
    dim = x.shape[1]
    size = 2 if dim == 2 else 3
    # the noise prediction is drawn first and lighter, so it never hides the data prediction
    ax.scatter(*e.T, s=size, color=NOISE_COLOR, lw=0, alpha=0.35, label="noise prediction")
    ax.scatter(*x.T, s=size, color=STATE_COLOR, lw=0, alpha=0.5, label="state $x$")
    ax.scatter(*d.T, s=size, color=DATA_COLOR, lw=0, alpha=0.8, label="data prediction")
    ax.set_title(title, fontsize=10)
    if dim == 2:
        ax.set_aspect("equal")
        if legend:
            ax.legend(loc="lower left", fontsize=8, markerscale=4, framealpha=0.85)
    elif legend:
        ax.figure.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9, markerscale=5,
                         frameon=False)


def _frame(points: Sequence[Tensor]) -> list[tuple[float, float]]:
    """A cube (square in 2-D) that holds every point: one (lo, hi) per axis, the same width on each."""
    pts = torch.cat([p.reshape(-1, p.shape[-1]).to(torch.float64) for p in points])
    lo, hi = pts.min(dim=0).values, pts.max(dim=0).values
    half = float((hi - lo).max()) / 2 * 1.04
    return [(float(c) - half, float(c) + half) for c in (lo + hi) / 2]


def _traj_limits(trajs: Mapping[str, object]) -> list[tuple[float, float]]:
    return _frame([p for tr in trajs.values() for p in (tr.xs, tr.pred_data, tr.pred_noise)])


def _apply_frame(ax: plt.Axes, frame: list[tuple[float, float]]) -> None:
    ax.set_xlim(*frame[0])
    ax.set_ylim(*frame[1])
    if len(frame) == 3:
        ax.set_zlim(*frame[2])
        ax.set_box_aspect((1, 1, 1), zoom=1.15)
        ax.view_init(**VIEW_3D)
        ax.tick_params(labelsize=7, pad=0)


def _grid(rows: int, cols: int, dim: int, height: float) -> tuple[Figure, np.ndarray]:
    if dim not in (2, 3):
        raise FlowlabError(f"points must be 2-D or 3-D to plot, got dimension {dim}")
    if dim == 2:
        fig, axes = plt.subplots(rows, cols, figsize=(_WIDTH, height), sharex=True, sharey=True, squeeze=False)
        return fig, axes
    fig = plt.figure(figsize=(_WIDTH, height))
    axes = np.array([[fig.add_subplot(rows, cols, r * cols + c + 1, projection="3d") for c in range(cols)]
                     for r in range(rows)])
    return fig, axes


def sample_panels(panels: Mapping[str, Tensor], *, n: int = 2000) -> Figure:
    """One scatter panel per sample set (``{title: (N, 2 or 3)}``), all in the same frame (2-D or 3-D)."""
    if not panels:
        raise FlowlabError("sample_panels: nothing to plot")
    dims = {p.shape[-1] for p in panels.values()}
    if len(dims) != 1:
        raise FlowlabError(f"sample_panels: all sample sets must have the same dimension, got {sorted(dims)}")
    dim = dims.pop()
    fig, axes = _grid(1, len(panels), dim, 3.9 if dim == 2 else 3.6)
    frame = _frame([p[:n] for p in panels.values()])
    for ax, (title, pts) in zip(axes[0], panels.items()):
        ax.scatter(*_np(pts[:n]).T, s=2, lw=0, alpha=0.6, color=DATA_COLOR if "data" in title else STATE_COLOR)
        ax.set_title(title, fontsize=10.5)
        ax.set_xlabel("$x_1$")
        if dim == 2:
            ax.set_aspect("equal")
        else:
            ax.set_ylabel("$x_2$")
            ax.set_zlabel("$x_3$")
        _apply_frame(ax, frame)
    if dim == 2:
        axes[0, 0].set_ylabel("$x_2$")
    fig.tight_layout()
    return fig


def predictions_over_t(trajs: Mapping[str, object], levels: Sequence[float] = (0.8, 0.6, 0.4, 0.2)) -> Figure:
    """Small multiples: x, the data prediction and the noise prediction, per convention, at equal noise levels.

    ``trajs``: ``{"conventional": Trajectory, "reversed": Trajectory}`` (from :func:`flowlab.sampling.trajectory`,
    2-D or 3-D points; 3-D panels are drawn in perspective). ``levels``: noise levels ``u`` (``sigma = u``, ``t = 1 - u``);
    each is drawn at the recorded step whose time is closest. All panels share one square frame that
    holds every drawn point.
    """
    names = list(trajs)
    dim = next(iter(trajs.values())).xs.shape[-1]
    fig, axes = _grid(len(names), len(levels), dim, (2.6 if dim == 2 else 3.0) * len(names) + 0.6)
    frame = _traj_limits(trajs)
    for r, name in enumerate(names):
        tr = trajs[name]
        conv = _convention(name)
        for c, u in enumerate(levels):
            i = _index_at_level(tr, conv, u)
            time = float(tr.ts[i])
            _prediction_panel(axes[r, c], _np(tr.xs[i]), _np(tr.pred_data[i]), _np(tr.pred_noise[i]),
                              f"{name}, ${_sym(conv)} = {time:.1f}$", legend=(r == 0 and c == 0))
        axes[r, 0].set_ylabel("$x_2$")
        if dim == 3:
            axes[r, 0].set_zlabel("$x_3$")
    for a in axes.flat:
        _apply_frame(a, frame)
    for a in axes[-1]:
        a.set_xlabel("$x_1$")
    fig.suptitle("columns: the same noise level ($\\sigma = 1 - t$); data prediction: "
                 "$x - \\sigma v$ (conventional), $x + (1 - t)\\,v$ (reversed)", fontsize=10.5)
    fig.tight_layout(rect=(0, 0.05 if dim == 3 else 0, 1, 1))
    return fig


def _convention(name: str) -> Convention:
    from ..conventions import get_convention

    return get_convention(name)


def _index_at_level(tr: object, conv: Convention, u: float) -> int:
    t = float(conv.t_noise) + (float(conv.t_data) - float(conv.t_noise)) * (1 - u)
    ts = tr.ts[:-1].to(torch.float64)  # predictions exist for every state but the last
    return int((ts - t).abs().argmin())


def widget_frontend() -> bool:
    """True when the kernel was started by a Jupyter server (JupyterLab, Notebook), which renders widgets.

    nbclient / nbconvert / nbval start kernels without ``JPY_SESSION_NAME``; there the slider is not shown
    and the stored outputs stay deterministic. ``FLOWLAB_WIDGETS=0`` / ``1`` forces it off / on.
    """
    forced = os.environ.get("FLOWLAB_WIDGETS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return "JPY_SESSION_NAME" in os.environ


def show_predictions_over_t(trajs: Mapping[str, object], levels: Sequence[float] = (0.8, 0.6, 0.4, 0.2)) -> Figure:
    """Draw :func:`predictions_over_t` and, under a widget front end, add a slider over the noise level.

    The static small multiples are always drawn (they are what nbval, the HTML pages and a printout see);
    the slider (ipywidgets) redraws one panel per convention at the chosen ``t``.
    """
    fig = predictions_over_t(trajs, levels)
    if not widget_frontend():
        return fig
    import ipywidgets as widgets
    from IPython.display import display

    display(fig)  # the static view first; the slider and its panels below it
    plt.close(fig)

    names = list(trajs)
    frame = _traj_limits(trajs)
    dim = len(frame)
    out = widgets.Output()
    slider = widgets.FloatSlider(value=0.5, min=0.0, max=0.98, step=0.02, description="t = 1 - σ",
                                 continuous_update=False, readout_format=".2f")

    def redraw(change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            f, axes = _grid(1, len(names), dim, 4.2)
            for k, name in enumerate(names):
                tr, conv = trajs[name], _convention(name)
                i = _index_at_level(tr, conv, 1 - slider.value)
                _prediction_panel(axes[0, k], _np(tr.xs[i]), _np(tr.pred_data[i]), _np(tr.pred_noise[i]),
                                  f"{name}, ${_sym(conv)} = {float(tr.ts[i]):.2f}$", legend=(k == 0))
                axes[0, k].set_xlabel("$x_1$")
                _apply_frame(axes[0, k], frame)
            f.tight_layout()
            display(f)
            plt.close(f)

    slider.observe(redraw, names="value")
    redraw()
    display(widgets.VBox([slider, out]))
    return fig


# ---- the registry: default data for `flowlab figures` --------------------------------------------------

@dataclass(frozen=True)
class FigureSpec:
    """A named figure: what it shows (for index.md) and how to build it with small default data."""

    name: str
    shows: str
    notebook: str
    build: Callable[[], Figure]


def _exact_gmm_trajs(steps: int = 50, n: int = 400) -> tuple[dict, object, Tensor]:
    from ..gmm import eight_gaussians_gmm
    from ..sampling import trajectory
    from ..schedules import uniform

    gmm = eight_gaussians_gmm()
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    trajs = {c.name: trajectory(gmm.velocity_model(c), x0, uniform(steps, c, dtype=torch.float64), c)
             for c in (CONVENTIONAL, REVERSED)}
    return trajs, gmm, x0


def _build_shift() -> Figure:
    try:
        import diffusers
    except ImportError:
        return shift_schedules(10, 3.0, None)
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(10)
    return shift_schedules(10, 3.0, sched.sigmas.clone())


def _build_trajectories() -> Figure:
    from ..sampling import trajectory
    from ..schedules import uniform

    trajs, gmm, x0 = _exact_gmm_trajs()
    wrong = trajectory(gmm.velocity_model(CONVENTIONAL), x0, uniform(50, REVERSED, dtype=torch.float64), REVERSED)
    data = gmm.sample(2000, generator=torch.Generator().manual_seed(10))
    return trajectories_2d({k: v.xs for k, v in trajs.items()}, wrong.xs, data)


def _build_loss() -> Figure:
    from ..models import MLPConfig, train
    from ..toys import sample_toy

    data = sample_toy("two_moons", 4000, generator=torch.Generator().manual_seed(0))
    with _one_thread():
        losses = {c.name: train(data, c, config=MLPConfig(dim=2), steps=300, batch_size=256, seed=0).losses
                  for c in (CONVENTIONAL, REVERSED)}
    return loss_curve(losses, window=20)


def _build_sw2() -> Figure:
    from ..gmm import eight_gaussians_gmm
    from ..metrics import sliced_wasserstein

    gmm = eight_gaussians_gmm()
    ref = gmm.sample(2000, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    ref_b = gmm.sample(2000, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rows = sw2_table(gmm.velocity_model(REVERSED), x0, ref)
    return sw2_vs_calls(rows, sliced_wasserstein(ref, ref_b))


def guidance_runs(n: int = 2000, steps: int = 50, seed: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """Reversed eight-Gaussians runs with constraint guidance on the data and on the noise endpoint.

    The same setup as :func:`flowlab.guidance.guidance_demo` (region ``x_1 >= 1``, scale 0.5, seed ``seed``),
    recorded with :func:`flowlab.sampling.trajectory`. Returns ``(ts (steps + 1,), {label: xs})``.
    """
    from ..gmm import eight_gaussians_gmm
    from ..guidance import HalfPlane, constraint_guided
    from ..sampling import trajectory
    from ..schedules import uniform

    gmm = eight_gaussians_gmm()
    region = HalfPlane((1.0, 0.0), 1.0)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    runs, ts = {}, None
    for endpoint, label in (("data", "right: guide $x + (1 - t)\\,v$ (data)"),
                            ("noise", "wrong: guide $x - t\\,v$ (noise, #124)")):
        model = constraint_guided(gmm.velocity_model(REVERSED), REVERSED, region.penalty, 0.5, endpoint=endpoint)
        tr = trajectory(model, x0, uniform(steps, REVERSED), REVERSED)
        runs[label], ts = tr.xs, tr.ts
    return ts, runs


def _build_guidance() -> Figure:
    ts, runs = guidance_runs()
    return guidance_trajectories(ts, runs)


def _build_predictions() -> Figure:
    trajs, _, _ = _exact_gmm_trajs(n=600)
    return predictions_over_t(trajs)


class _one_thread:
    def __enter__(self) -> None:
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.n)


REGISTRY: dict[str, FigureSpec] = {s.name: s for s in (
    FigureSpec("segment_jumps", "the straight path from noise E to data D, the state x on it and both Euler jumps "
               "(to s' = 0 and s' = 1), conventional and reversed side by side, each labelled data or noise",
               "01", segment_jumps),
    FigureSpec("time_axes", "the sigma axis and the t axis aligned (t = 1 - sigma); Hunyuan3D-2's 10-call schedule "
               "with its zero-length last step marked, and the corrected schedule", "01", time_axes),
    FigureSpec("shift_schedules", "diffusers' conventional schedules, 10 steps: shift 1, shift 3 applied once, and "
               "diffusers' own set_timesteps grid at shift 3 (shifted twice, diffusers #13243); linear and log scale",
               "05", _build_shift),
    FigureSpec("trajectories_2d", "exact eight-Gaussians velocity: conventional and reversed trajectories from the "
               "same noise overlaid (they coincide), and the reversed sampler fed the unflipped conventional "
               "velocity (misses the data)", "02", _build_trajectories),
    FigureSpec("loss_curve", "flow-matching training loss per step in both conventions (tiny run: 300 steps, two "
               "moons); it falls and levels off above zero", "02", _build_loss),
    FigureSpec("sw2_vs_calls", "sliced W2 to the data against the number of model calls, Hunyuan3D-2's schedule "
               "(wasted last call) vs the corrected one, exact eight-Gaussians velocity, with the seed noise",
               "02", _build_sw2),
    FigureSpec("guidance_trajectories", "constraint guidance toward x1 >= 1 on the data endpoint (right) and on "
               "the noise endpoint (wrong, #124): x1 over t and the final samples, symlog axes, nothing clipped",
               "06", _build_guidance),
    FigureSpec("predictions_over_t", "small multiples: the state, the data prediction and the noise prediction "
               "at four noise levels, conventional and reversed side by side (the static view of the notebooks' "
               "slider)", "02", _build_predictions),
)}


def build(name: str) -> Figure:
    """Build the registered figure ``name`` with its default data."""
    try:
        spec = REGISTRY[name]
    except KeyError:
        raise FlowlabError(f"unknown figure {name!r}; figures: {', '.join(REGISTRY)}") from None
    return spec.build()
