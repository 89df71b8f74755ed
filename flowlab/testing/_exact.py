"""The exact model flowlab hands to a user's loop, the record of every call, and the reference solution.

* :func:`probe_mixture`: an ASYMMETRIC Gaussian mixture in 2-D or 3-D (unequal weights, rotated anisotropic
  covariances, no point or mirror symmetry, mean away from 0), so that no wrong formula can agree with
  the right one by a symmetry.
* :class:`ProbeModel`: the mixture's exact velocity in a declared convention, time scale and call signature
  (``"positional"`` ``model(x, t)``; ``"diffusers"`` ``model(x, timestep=t)`` returning an object with
  ``.sample``; ``"hunyuan"`` ``model(x, t, cond)`` as Hunyuan3D-2's DiT is called). Every call is recorded:
  the state passed, the raw time tensor (its dtype too) and the velocity returned.
* :func:`reference_states`: the exact ODE solution from the same noise (RK4 in float64 on a fine grid,
  with its own error estimated by step doubling), at any list of times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..conventions import Convention
from ..errors import FlowlabError
from ..gmm import GaussianMixture

__all__ = ["SIGNATURES", "probe_mixture", "Call", "ModelOutput", "ProbeModel", "reference_states", "reference_error",
           "euler_error", "rel_rms"]

#: How the model the user's loop receives is called.
SIGNATURES = ("positional", "diffusers", "hunyuan")

#: Keyword arguments a diffusers transformer accepts besides ``timestep`` (all ignored by the exact model).
_DIFFUSERS_KWARGS = ("encoder_hidden_states", "pooled_projections", "guidance", "attention_kwargs",
                     "joint_attention_kwargs", "txt_ids", "img_ids", "return_dict")


def probe_mixture(dim: int) -> GaussianMixture:
    """The asymmetric mixture the checks use: 3 components in 2-D, 4 in 3-D, weights 0.5 / 0.3 / 0.2 (/ 0.1 ...)."""
    if dim == 2:
        means = [[1.3, 0.4], [-0.7, 1.1], [0.2, -1.4]]
        weights = [0.5, 0.3, 0.2]
        rot = [0.3, -0.9, 1.2]
        scales = [[0.45, 0.25], [0.3, 0.5], [0.55, 0.3]]
        covs = []
        for a, (s1, s2) in zip(rot, scales):
            r = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
            covs.append(r @ torch.diag(torch.tensor([s1 * s1, s2 * s2], dtype=torch.float64)) @ r.T)
        return GaussianMixture(torch.tensor(means), torch.stack(covs), torch.tensor(weights))
    if dim == 3:
        means = [[1.2, 0.3, -0.5], [-0.8, 1.0, 0.6], [0.1, -1.3, 0.9], [0.7, 0.8, 1.4]]
        weights = [0.4, 0.3, 0.2, 0.1]
        g = torch.Generator().manual_seed(17)
        covs = []
        for scale in ([0.45, 0.3, 0.25], [0.35, 0.5, 0.3], [0.3, 0.25, 0.55], [0.4, 0.3, 0.35]):
            q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
            covs.append(q @ torch.diag(torch.tensor(scale, dtype=torch.float64) ** 2) @ q.T)
        return GaussianMixture(torch.tensor(means), torch.stack(covs), torch.tensor(weights))
    raise FlowlabError(f"dim must be 2 or 3 (the probe mixtures are 2-D and 3-D), got {dim!r}")


@dataclass
class Call:
    """One model call: ``x`` (float64 copy, rows ``(R, dim)``), the time the model was given (raw dtype, and
    in the convention's units ``t = timestep / time_scale`` per row) and the velocity returned (float64)."""

    x: Tensor
    t: Tensor
    time_dtype: torch.dtype | None
    v: Tensor
    extra: int | None = None  # identity of the conditioning argument (cond / encoder_hidden_states), if any


@dataclass(frozen=True)
class ModelOutput:
    """What a diffusers-style model returns: the prediction is ``.sample`` (as in diffusers' transformers)."""

    sample: Tensor

    def __getitem__(self, i: int) -> Tensor:  # out[0], as diffusers' output classes allow
        return (self.sample,)[i]


@dataclass
class ProbeModel:
    """The exact velocity of ``gmm`` in ``convention``, called the way ``signature`` says; records every call.

    The time the loop passes is divided by ``time_scale`` (``1000`` for diffusers-style 0-1000 timesteps) to
    get the convention's time. ``x`` may be ``(B, dim)`` or ``(B, ..., dim)``; the time is a Python number,
    a 0-d tensor, a ``(B,)`` tensor or anything that broadcasts to ``x``'s leading shape.
    """

    gmm: GaussianMixture
    convention: Convention
    time_scale: float = 1.0
    signature: str = "positional"
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.signature not in SIGNATURES:
            raise FlowlabError(f"signature must be one of {', '.join(SIGNATURES)}, got {self.signature!r}")

    def __repr__(self) -> str:
        return (f"flowlab exact model ({self.gmm.dim}-D Gaussian mixture, {self.convention.name} convention, "
                f"time scale {self.time_scale:g}, {self.signature} signature)")

    def __call__(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.signature == "positional":
            if len(args) != 1 or kwargs:
                raise FlowlabError("this exact model is called as model(x, t) (signature='positional'); got "
                                   f"{1 + len(args)} positional and keywords {sorted(kwargs)}")
            return self.velocity(x, args[0])
        if self.signature == "hunyuan":
            unknown = set(kwargs) - {"guidance"}
            if len(args) != 2 or unknown:
                raise FlowlabError("this exact model is called as model(x, t, cond) like Hunyuan3D-2's DiT "
                                   f"(signature='hunyuan'); got {1 + len(args)} positional, keywords {sorted(kwargs)}")
            return self.velocity(x, args[0], id(args[1]))
        unknown = set(kwargs) - {"timestep", *_DIFFUSERS_KWARGS}
        if args or "timestep" not in kwargs or unknown:
            raise FlowlabError("this exact model is called like a diffusers transformer, model(x, timestep=t, ...) "
                               f"(signature='diffusers'); got {len(args)} extra positional argument(s), keywords "
                               f"{sorted(kwargs)}" + (f" (unknown: {sorted(unknown)})" if unknown else ""))
        cond = kwargs.get("encoder_hidden_states")
        v = self.velocity(x, kwargs["timestep"], None if cond is None else id(cond))
        return (v,) if kwargs.get("return_dict", True) is False else ModelOutput(v)

    def velocity(self, x: Tensor, timestep: Any, extra: int | None = None) -> Tensor:
        dim = self.gmm.dim
        if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[-1] != dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise FlowlabError(f"the exact model takes x of shape (B, {dim}) or (B, ..., {dim}); got {got}")
        raw = timestep if isinstance(timestep, Tensor) else torch.as_tensor(timestep, dtype=torch.float64)
        time_dtype = raw.dtype if isinstance(timestep, Tensor) else None
        lead = x.shape[:-1]
        tt = raw.detach().to(device="cpu", dtype=torch.float64)
        if tt.ndim == 1 and tt.shape[0] == x.shape[0] and x.ndim > 2:
            tt = tt.reshape(x.shape[0], *([1] * (x.ndim - 2)))
        try:
            tt = torch.broadcast_to(tt, lead).reshape(-1) / self.time_scale
        except RuntimeError:
            raise FlowlabError(f"the time passed to the model has shape {tuple(tt.shape)}, which does not broadcast "
                               f"to x's leading shape {tuple(lead)}; pass a number, a 0-d tensor or a (B,) tensor")
        rows = x.detach().to(device="cpu", dtype=torch.float64).reshape(-1, dim)
        v = self.gmm._velocity_unchecked(rows, tt, self.convention)
        self.calls.append(Call(rows, tt, time_dtype, v, extra))
        return v.reshape(x.shape).to(device=x.device, dtype=x.dtype)


def _rk4(gmm: GaussianMixture, conv: Convention, x: Tensor, t0: float, t1: float, n: int) -> Tensor:
    h = (t1 - t0) / n
    t = t0
    for _ in range(n):
        k1 = gmm._velocity_unchecked(x, t, conv)
        k2 = gmm._velocity_unchecked(x + 0.5 * h * k1, t + 0.5 * h, conv)
        k3 = gmm._velocity_unchecked(x + 0.5 * h * k2, t + 0.5 * h, conv)
        k4 = gmm._velocity_unchecked(x + h * k3, t + h, conv)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = t + h
    return x


def reference_states(gmm: GaussianMixture, conv: Convention, x0: Tensor, times: list[float], *,
                     h: float = 1 / 128) -> list[Tensor]:
    """The exact flow from ``x0`` (float64 ``(R, dim)`` at ``t_noise``) to each time in ``times`` (ordered from
    noise to data), by RK4 with steps of at most ``h`` (RK4 error ~ h^4: ~1e-9 here; see :func:`reference_error`)."""
    out, x, t = [], x0.to(torch.float64), float(conv.t_noise)
    for s in times:
        n = max(1, math.ceil(abs(s - t) / h))
        x = _rk4(gmm, conv, x, t, s, n) if s != t else x
        t = s
        out.append(x)
    return out


def reference_error(gmm: GaussianMixture, conv: Convention, x0: Tensor, h: float = 1 / 128) -> float:
    """Relative RMS gap between the reference at step ``h`` and at ``2 h`` (an upper estimate of its own error)."""
    a = reference_states(gmm, conv, x0, [float(conv.t_data)], h=h)[0]
    b = reference_states(gmm, conv, x0, [float(conv.t_data)], h=2 * h)[0]
    return rel_rms(a, b)


def euler_error(gmm: GaussianMixture, conv: Convention, x0: Tensor, ref: Tensor, steps: int) -> float:
    """Relative RMS error of a CORRECT Euler loop with ``steps`` uniform steps from ``x0`` (the error model)."""
    x = x0.to(torch.float64)
    ts = torch.linspace(float(conv.t_noise), float(conv.t_data), steps + 1, dtype=torch.float64).tolist()
    for t, s in zip(ts[:-1], ts[1:]):
        x = x + (s - t) * gmm._velocity_unchecked(x, t, conv)
    return rel_rms(x, ref)


def rel_rms(a: Tensor, b: Tensor) -> float:
    """``rms(a - b) / rms(b)``."""
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    return float(((a64 - b64) ** 2).mean().sqrt() / (b64 ** 2).mean().sqrt().clamp_min(1e-30))
