"""Colours, widths and small helpers every figure shares (the conventions of :mod:`flowlab.teach.figures`)."""
from __future__ import annotations


import numpy as np
import torch
from torch import Tensor

from ...conventions import Convention


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
