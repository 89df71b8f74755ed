"""The view of the predictions over time: small multiples, and a slider in a live notebook."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ...conventions import Convention
from ...errors import FlowlabError
from ._style import DATA_COLOR, NOISE_COLOR, STATE_COLOR, _WIDTH, _sym, _np


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
    from ...conventions import get_convention

    return get_convention(name)


def _index_at_level(tr: object, conv: Convention, u: float) -> int:
    t = conv.noise_time + (conv.data_time - conv.noise_time) * (1 - u)
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
