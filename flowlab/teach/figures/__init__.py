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

Modules: :mod:`._style` (colours, widths), :mod:`.paths` (01 / 05), :mod:`.runs` (02 / 03 / 06),
:mod:`.predictions` (the predictions-over-time view), :mod:`.registry` (``flowlab figures``).
"""
from __future__ import annotations

from ._style import CONVENTION_STYLE, DATA_COLOR, NOISE_COLOR, STATE_COLOR, WRONG_COLOR
from .paths import segment_jumps, shift_schedules, time_axes
from .predictions import predictions_over_t, sample_panels, show_predictions_over_t, widget_frontend
from .registry import REGISTRY, FigureSpec, build, guidance_runs
from .runs import SW2Row, guidance_trajectories, loss_curve, sw2_table, sw2_vs_calls, trajectories_2d

__all__ = [
    "DATA_COLOR", "NOISE_COLOR", "STATE_COLOR", "CONVENTION_STYLE", "REGISTRY", "FigureSpec",
    "segment_jumps", "time_axes", "shift_schedules", "trajectories_2d", "loss_curve", "sw2_vs_calls",
    "guidance_trajectories", "predictions_over_t", "show_predictions_over_t", "widget_frontend", "sample_panels",
    "build", "sw2_table", "SW2Row", "guidance_runs", "WRONG_COLOR",
]
