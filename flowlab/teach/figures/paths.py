"""Notebooks 01 and 05: the straight path with both Euler jumps, the two time axes, shifted schedules."""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ... import functional as F
from ...conventions import CONVENTIONAL, REVERSED
from ...errors import FlowlabError
from ._style import DATA_COLOR, NOISE_COLOR, STATE_COLOR, WRONG_COLOR, _WIDTH, _sym, _np


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
    from ...schedules import hunyuan_compat, hunyuan_corrected, n_effective_steps

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
    from ...schedules import shifted

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
