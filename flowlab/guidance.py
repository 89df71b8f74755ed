"""Guidance that needs the data prediction at every step (the use case of Hunyuan3D-2 issue #124).

A constraint (or reward) is a function of the *clean* sample, so at each step the guidance evaluates
it on the data prediction, corrects that prediction, and turns the corrected prediction back into a
velocity. For a straight path the prediction at an endpoint ``s`` is the Euler jump
``pred = x + (s - t) v``, so a correction ``pred -> pred + delta`` is the velocity
``v' = v + delta / (s - t)``. Everything hinges on jumping to the right endpoint:

* right: ``s = t_data``. Reversed (Hunyuan3D-2, t runs 0 -> 1): ``pred_x1 = x + (1 - t) v``;
  conventional (sigma runs 1 -> 0): ``pred_x0 = x - sigma v``.
* wrong: ``s = t_noise``. Reversed: ``x - t v`` (Hunyuan's "pred_x0", which #124's derivation takes
  for the data). It is the NOISE prediction: the constraint is evaluated on noise, and since
  ``s - t`` has the opposite sign the correction also pushes the sample the wrong way.

:class:`ConstraintGuided` is a model wrapper (``model(x, t) -> v`` in, the same out), so it runs in
:func:`flowlab.sampling.sample` in either convention. :func:`guidance_demo` measures the effect on
the exact eight-Gaussians flow: fraction of samples meeting the constraint and sliced Wasserstein
distance to the target (the mixture restricted to the constraint region).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import functional as F
from .conventions import Convention, get_convention
from .errors import FlowlabError
from .limits import derived_seed

__all__ = ["ENDPOINTS", "HalfPlane", "ConstraintGuided", "constraint_guided", "GuidanceResult", "guidance_demo",
           "cfg_data_gap"]

Model = Callable[[Tensor, Tensor], Tensor]

#: Which endpoint the guidance jumps to: the data (right) or the noise (the #124 mistake).
ENDPOINTS = ("data", "noise")


@dataclass(frozen=True)
class HalfPlane:
    """The region ``<x, normal> >= offset`` of ``R^dim`` and the penalty ``relu(offset - <x, normal>)^2``.

    ``normal``: a tuple of floats (need not be unit length; it is normalised). Works on ``x: (B, dim)``.
    """

    normal: tuple[float, ...]
    offset: float

    def __post_init__(self) -> None:
        norm = math.sqrt(sum(c * c for c in self.normal))
        if not self.normal or not math.isfinite(norm) or norm == 0:
            raise FlowlabError(f"HalfPlane normal must be a non-zero finite vector, got {self.normal!r}")
        if not math.isfinite(self.offset):
            raise FlowlabError(f"HalfPlane offset must be finite, got {self.offset!r}")

    def _n(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != len(self.normal):
            raise FlowlabError(f"points must have shape (B, {len(self.normal)}), got {tuple(x.shape)}")
        n = torch.tensor(self.normal, dtype=x.dtype, device=x.device)
        return n / n.norm()

    def signed_distance(self, x: Tensor) -> Tensor:
        """``<x, n> - offset`` with unit ``n``: ``(B,)``, >= 0 inside."""
        return x @ self._n(x) - self.offset

    def penalty(self, x: Tensor) -> Tensor:
        """``relu(-signed_distance)^2``: ``(B,)``, 0 inside, differentiable."""
        return torch.relu(-self.signed_distance(x)) ** 2

    def inside(self, x: Tensor, margin: float = 0.0) -> Tensor:
        """``(B,)`` booleans: ``signed_distance >= -margin``."""
        return self.signed_distance(x) >= -margin


class ConstraintGuided:
    """``model`` steered so that the prediction at ``endpoint`` decreases ``penalty``.

    At ``(x, t)``: ``v = model(x, t)``, ``pred = x + (s - t) v`` with ``s`` the chosen endpoint's time,
    ``pred' = pred - scale * grad penalty(pred)``, and the returned velocity is the one whose jump
    gives ``pred'``: ``v' = v + (pred' - pred) / (s - t)``. Where ``s - t = 0`` (a call at the endpoint
    itself, e.g. Hunyuan3D-2's no-op last step) no correction is possible and ``v`` is returned.
    ``x: (B, dim)``, ``t: (B,)`` in the convention's time; straight-path conventions only.
    """

    def __init__(self, model: Model, convention: Convention, penalty: Callable[[Tensor], Tensor], scale: float,
                 endpoint: str) -> None:
        self.model = model
        self.convention = convention
        self.penalty = penalty
        self.scale = scale
        self.endpoint = endpoint
        self.s = convention.data_time if endpoint == "data" else convention.noise_time

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        v = self.model(x, t)
        s = torch.full_like(t, self.s)
        pred = F.jump(x, v, t, s).detach()
        with torch.enable_grad():
            p = pred.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.penalty(p).sum(), p)
        delta = -self.scale * grad
        gap = F.bcast(s - t, x)
        safe = gap != 0
        return v + torch.where(safe, delta / torch.where(safe, gap, torch.ones_like(gap)), torch.zeros_like(delta))

    def __repr__(self) -> str:
        return f"ConstraintGuided({self.model!r}, {self.convention.name}, endpoint={self.endpoint}, scale={self.scale})"


def constraint_guided(model: Model, convention: Convention | str, penalty: Callable[[Tensor], Tensor],
                      scale: float, *, endpoint: str = "data") -> ConstraintGuided:
    """Wrap ``model`` with constraint guidance on the data prediction (see :class:`ConstraintGuided`).

    ``endpoint="data"`` is right in every convention; ``endpoint="noise"`` reproduces the #124 mistake
    (reversed: ``x - t v``; conventional: ``x + (1 - sigma) v``). ``scale >= 0``: 0.5 with the squared
    hinge penalty of :class:`HalfPlane` projects the prediction onto the region at every step.
    """
    conv = get_convention(convention)
    if not callable(model):
        raise FlowlabError(f"model must be a callable model(x, t) -> v, got {type(model).__name__}")
    if not callable(penalty):
        raise FlowlabError(f"penalty must be a callable penalty(pred_data: (B, dim)) -> (B,), got {type(penalty).__name__}")
    if endpoint not in ENDPOINTS:
        raise FlowlabError(f"endpoint must be one of {ENDPOINTS} ('data' is right, 'noise' is the #124 mistake), "
                           f"got {endpoint!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise FlowlabError(f"scale must be a finite number >= 0 (0 = no guidance), got {scale!r}")
    if not conv.is_straight:
        raise FlowlabError(f"constraint guidance here uses the Euler jump, exact on straight paths only; "
                           f"{conv.name!r} is not straight: use 'conventional' or 'reversed'")
    return ConstraintGuided(model, conv, penalty, float(scale), endpoint)


# ---- the measured demo ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuidanceResult:
    """One guided (or unguided) sampling run on the eight-Gaussians flow.

    Attributes:
        label: what was run.
        samples: ``(n, 2)`` final samples (float32).
        fraction_inside: share of samples with ``<x, n> >= offset - 0.05`` (a 0.05 tolerance band).
        distance: sliced Wasserstein-2 to the target samples.
    """

    label: str
    samples: Tensor
    fraction_inside: float
    distance: float


def guidance_demo(convention: Convention | str = "reversed", endpoint: str | None = "data", *, scale: float = 0.5,
                  n: int = 2000, steps: int = 50, seed: int = 0,
                  region: HalfPlane = HalfPlane((1.0, 0.0), 1.0)) -> GuidanceResult:
    """Sample the exact eight-Gaussians flow with constraint guidance toward ``region`` and measure it.

    ``endpoint=None`` samples without guidance. The target is the mixture restricted to ``region``
    (exact rejection sampling from the mixture, ``n`` points, seed ``seed + 1``). ``steps`` uniform
    Euler steps in ``convention`` from the same initial noise (seed ``seed``), float32, CPU.
    """
    from .gmm import eight_gaussians_gmm
    from .metrics import sliced_wasserstein
    from .sampling import sample
    from .schedules import uniform

    conv = get_convention(convention)
    gmm = eight_gaussians_gmm()
    model = gmm.velocity_model(conv)
    if endpoint is not None:
        model = constraint_guided(model, conv, region.penalty, scale, endpoint=endpoint)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    out = sample(model, x0, uniform(steps, conv), conv)
    target = _target(gmm, region, n, derived_seed(seed, 1))
    label = f"{conv.name}, " + ("no guidance" if endpoint is None else f"guided on the {endpoint} endpoint")
    frac = float(region.inside(out, margin=0.05).float().mean())
    return GuidanceResult(label=label, samples=out, fraction_inside=frac,
                          distance=sliced_wasserstein(out, target, n_projections=128, seed=seed))


def _target(gmm: object, region: HalfPlane, n: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    kept: list[Tensor] = []
    total = 0
    while total < n:
        draw = gmm.sample(4 * n, generator=gen).to(torch.float32)
        inside = draw[region.inside(draw)]
        kept.append(inside)
        total += inside.shape[0]
    return torch.cat(kept)[:n]


def cfg_data_gap(convention: Convention | str, scale: float, *, n: int = 512, seed: int = 0) -> float:
    """Max abs difference between CFG on the velocity and CFG on the data prediction.

    ``pred_data(x, cfg(v_c, v_u, g), t)`` vs ``cfg(pred_data(x, v_c, t), pred_data(x, v_u, t), g)`` with
    ``v_c`` the exact velocity of the three right-hand eight-Gaussians components (the "condition") and
    ``v_u`` of all eight, at random ``x: (n, 2)`` and times ``t: (n,)`` in ``convention``. Linear maps
    commute, so this is float round-off.
    """
    from .gmm import GaussianMixture, eight_gaussians_gmm

    conv = get_convention(convention)
    full = eight_gaussians_gmm()
    means = full.means[full.means[:, 0] > 1.0]  # the three right-hand components
    cond = GaussianMixture(means, 0.15)
    gen = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(n, generator=gen, dtype=torch.float64)
    v_c, v_u = cond.velocity(x, t, conv), full.velocity(x, t, conv)
    on_v = conv.pred_data(x, F.cfg(v_c, v_u, scale), t)
    on_d = F.cfg(conv.pred_data(x, v_c, t), conv.pred_data(x, v_u, t), scale)
    return float((on_v - on_d).abs().max())
