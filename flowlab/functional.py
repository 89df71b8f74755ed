"""Hand-written tensor maps between parametrisations. Pure functions, no state.

These are the functions the sampler, the notebooks and the CLI compute with. The symbolic
module (:mod:`flowlab.symbolic`) derives the same expressions from first principles with SymPy
and the tests compare the two on random tensors (float32 and float64).

Notation (see notebooks/NOTATION.md): D = data, E = standard Gaussian noise, v = network output.
An affine path is ``x = a(t) D + b(t) E`` with time derivatives ``da = a'(t)``, ``db = b'(t)``;
its conditional velocity is ``v = da D + db E``. Every time argument is a tensor that broadcasts
against ``x`` (use :func:`bcast` to turn a per-sample ``(B,)`` time into ``(B, 1, ..., 1)``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .inputs import check_scale

__all__ = [
    "bcast",
    "euler_step",
    "jump",
    "conventional_pred_x0",
    "conventional_pred_x1",
    "reversed_pred_x0",
    "reversed_pred_x1",
    "reversed_to_conventional_time",
    "flip_velocity",
    "velocity_to_data",
    "velocity_to_noise",
    "data_to_velocity",
    "noise_to_velocity",
    "data_to_noise",
    "noise_to_data",
    "noise_to_score",
    "score_to_noise",
    "cfg",
]


def bcast(t: Tensor | float, x: Tensor) -> Tensor:
    """Return ``t`` shaped to broadcast against ``x``: scalar -> 0-dim, ``(B,)`` -> ``(B, 1, ..., 1)``."""
    if not isinstance(t, Tensor):  # a Python number takes x's precision, not torch's default float32
        t = torch.as_tensor(t, dtype=x.dtype if x.is_floating_point() else None, device=x.device)
    if t.ndim == 0:
        return t
    if t.ndim == 1 and x.ndim >= 1 and t.shape[0] == x.shape[0]:
        return t.reshape(t.shape[0], *([1] * (x.ndim - 1)))
    return t


# --- the update rule and what it implies -------------------------------------------------------

def euler_step(x: Tensor, v: Tensor, t: Tensor | float, t_next: Tensor | float) -> Tensor:
    """One Euler step ``x' = x + (t_next - t) v``. The same line of code in both conventions."""
    return x + (bcast(t_next, x) - bcast(t, x)) * v


def jump(x: Tensor, v: Tensor, t: Tensor | float, s: Tensor | float) -> Tensor:
    """Follow the current velocity from time ``t`` to any time ``s``: ``x + (s - t) v``.

    Jumping to an endpoint (``s = 0`` or ``s = 1``) is the prediction of whatever lives there.
    """
    return x + (bcast(s, x) - bcast(t, x)) * v


# --- conventional: sigma runs 1 -> 0, x = (1 - sigma) D + sigma E, v = E - D -------------------

def conventional_pred_x0(x: Tensor, v: Tensor, sigma: Tensor | float) -> Tensor:
    """Conventional convention, jump to sigma = 0: ``x - sigma v``. This is the DATA."""
    return x - bcast(sigma, x) * v


def conventional_pred_x1(x: Tensor, v: Tensor, sigma: Tensor | float) -> Tensor:
    """Conventional convention, jump to sigma = 1: ``x + (1 - sigma) v``. This is the NOISE."""
    return x + (1 - bcast(sigma, x)) * v


# --- reversed (Hunyuan3D-2): t runs 0 -> 1, x = t D + (1 - t) E, v = D - E ---------------------

def reversed_pred_x1(x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Reversed convention, jump to t = 1: ``x + (1 - t) v``. This is the DATA."""
    return x + (1 - bcast(t, x)) * v


def reversed_pred_x0(x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
    """Reversed convention, jump to t = 0: ``x - t v``. This is the NOISE (Hunyuan's 'pred_x0')."""
    return x - bcast(t, x) * v


# --- the map between the two ----------------------------------------------------------------------

def reversed_to_conventional_time(t: Tensor | float) -> Tensor | float:
    """``sigma = 1 - t``."""
    return 1 - t


def flip_velocity(v: Tensor) -> Tensor:
    """``v_rev(x, t) = -v_conv(x, 1 - t)``: the velocity changes sign with the direction of time."""
    return -v


# --- general affine paths x = a D + b E, v = da D + db E -------------------------------------------

def _det(a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    return a * db - da * b


def velocity_to_data(x: Tensor, v: Tensor, a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    """``D = (db x - b v) / (a db - da b)``."""
    return (db * x - b * v) / _det(a, b, da, db)


def velocity_to_noise(x: Tensor, v: Tensor, a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    """``E = (a v - da x) / (a db - da b)``."""
    return (a * v - da * x) / _det(a, b, da, db)


def data_to_velocity(x: Tensor, d: Tensor, a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    """``v = da D + db (x - a D) / b``. Needs ``b != 0`` (not at the data endpoint)."""
    return da * d + db * (x - a * d) / b


def noise_to_velocity(x: Tensor, e: Tensor, a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    """``v = da (x - b E) / a + db E``. Needs ``a != 0`` (not at the noise endpoint)."""
    return da * (x - b * e) / a + db * e


def data_to_noise(x: Tensor, d: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``E = (x - a D) / b``."""
    return (x - a * d) / b


def noise_to_data(x: Tensor, e: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``D = (x - b E) / a``."""
    return (x - b * e) / a


def noise_to_score(e: Tensor, b: Tensor) -> Tensor:
    """Score of the Gaussian path ``grad log p(x_t | D) = -(x - a D) / b^2 = -E / b``."""
    return -e / b


def score_to_noise(score: Tensor, b: Tensor) -> Tensor:
    """``E = -b * score``."""
    return -b * score


def cfg(v_cond: Tensor, v_uncond: Tensor, scale: float | Tensor) -> Tensor:
    """Classifier-free guidance, diffusers / SD3 / Hunyuan3D-2 scale: ``uncond + g (cond - uncond)``.

    ``g = 1`` is no guidance. facebookresearch/flow_matching writes ``(1 + w) cond - w uncond``:
    the same thing with ``g = 1 + w``. CFG is linear, so it commutes with the convention flip and
    with velocity -> data. ``scale`` is a number, a 0-dim tensor or a per-sample ``(B,)`` tensor.
    """
    check_scale(scale)
    if isinstance(scale, Tensor):
        scale = bcast(scale, v_cond)
    return v_uncond + scale * (v_cond - v_uncond)
