"""Closing the loop: each derived expression lambdified to torch and compared with the hand-written
function the sampler uses, on random tensors."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import sympy as sp
import torch
from torch import Tensor

from .. import functional as F
from ..conventions import CONVENTIONAL, REVERSED, VP_COSINE, Convention, T, get_convention
from ..errors import FlowlabError
from .core import (X, V, S, S_NEXT, T_NEXT, D, E, DHAT, EPS, A, B, DA, DB, ABAR_T, ABAR_S, G, W, V_COND, V_UNCOND,
                   PARAMETRISATIONS, euler_update, jump_to, interpolant, velocity_target, endpoint_fact)
from .affine import (conversion, ddim_step, cfg)

__all__ = ["Domain", "TENSOR", "Identity", "to_torch", "torch_source", "compare", "identity_registry",
           "convention_identities", "measure_all"]


# ---- closing the loop: derived expression vs hand-written torch function -------------------------

@dataclass(frozen=True)
class Domain:
    """How to draw one argument for a numeric comparison.

    kind: ``"tensor"`` (standard normal, shape ``(B, N)``), ``"per_sample"`` (uniform in
    ``[lo, hi]``, shape ``(B,)``: a time or a path coefficient per sample) or ``"scalar"`` (uniform
    in ``[lo, hi]``, one Python float, e.g. a CFG scale).
    """

    kind: str
    lo: float = 0.0
    hi: float = 1.0


TENSOR = Domain("tensor")


@dataclass(frozen=True)
class Identity:
    """A derived expression paired with the hand-written torch function that should equal it.

    ``hand`` takes tensors in the order of ``args``; per-sample arguments reach it as ``(B,)``
    tensors (the way a sampler passes ``t``), while the lambdified ``derived`` receives them as
    ``(B, 1)`` so they broadcast against ``(B, N)``.
    """

    name: str
    derived: sp.Expr
    args: tuple[sp.Symbol, ...]
    hand: Callable[..., Tensor]
    domains: tuple[Domain, ...]

    def __post_init__(self) -> None:
        if len(self.args) != len(self.domains):
            raise FlowlabError(f"identity {self.name!r}: {len(self.args)} args but {len(self.domains)} domains")
        extra = self.derived.free_symbols - set(self.args)
        if extra:
            raise FlowlabError(f"identity {self.name!r}: the derived expression uses {sorted(map(str, extra))}, "
                               "which are not among its args")

    @cached_property
    def torch_fn(self) -> Callable[..., Tensor]:
        """The derived expression lambdified to torch (built once)."""
        return to_torch(self.derived, self.args)


def to_torch(expr: sp.Expr, args: Sequence[sp.Symbol]) -> Callable[..., Tensor]:
    """Lambdify ``expr`` to a torch function of ``args`` (``sympy.lambdify(..., modules="torch")``).

    The result always returns a tensor broadcast over all tensor inputs, in their dtype, even when
    ``expr`` is a constant or ignores an input.
    """
    fn = sp.lambdify(list(args), expr, modules="torch")

    def wrapped(*values: Tensor | float) -> Tensor:
        out = fn(*values)
        tensors = [v for v in values if isinstance(v, Tensor)]
        if not isinstance(out, Tensor):
            ref = tensors[0]
            out = torch.full((), float(out), dtype=ref.dtype, device=ref.device)
        return torch.broadcast_tensors(out, *tensors)[0]

    wrapped.__doc__ = f"torch version of {sp.sstr(expr)}"
    wrapped.lambdified = fn  # type: ignore[attr-defined]
    return wrapped


def torch_source(expr: sp.Expr, args: Sequence[sp.Symbol]) -> str:
    """The Python source sympy generates for ``to_torch(expr, args)`` (for display)."""
    return inspect.getsource(sp.lambdify(list(args), expr, modules="torch"))


def _draw(domains: Sequence[Domain], batch: int, dim: int, dtype: torch.dtype, device: torch.device,
          generator: torch.Generator) -> list[Tensor | float]:
    values: list[Tensor | float] = []
    for dom in domains:
        if dom.kind == "tensor":
            values.append(torch.randn(batch, dim, generator=generator, dtype=torch.float64).to(device, dtype))
        elif dom.kind == "per_sample":
            u = torch.rand(batch, generator=generator, dtype=torch.float64)
            values.append((dom.lo + (dom.hi - dom.lo) * u).to(device, dtype))
        elif dom.kind == "scalar":
            u = float(torch.rand((), generator=generator, dtype=torch.float64))
            values.append(dom.lo + (dom.hi - dom.lo) * u)
        else:
            raise FlowlabError(f"unknown domain kind {dom.kind!r}; use 'tensor', 'per_sample' or 'scalar'")
    return values


def compare(identity: Identity, dtype: torch.dtype = torch.float64, *, seed: int = 0, batch: int = 16,
            dim: int = 32, device: torch.device | str = "cpu") -> float:
    """Max abs difference between the lambdified derived expression and the hand-written function.

    Inputs: random tensors ``(batch, dim)``, per-sample values ``(batch,)`` (seeded with ``seed``,
    drawn in float64 then cast to ``dtype``). Returns a Python float; NaN or inf inputs never occur
    because every domain stays away from singular points.
    """
    if dtype not in (torch.float32, torch.float64):
        raise FlowlabError(f"compare needs float32 or float64, got {dtype}")
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    values = _draw(identity.domains, batch, dim, dtype, device, gen)
    derived_inputs = [v.reshape(-1, 1) if dom.kind == "per_sample" else v
                      for v, dom in zip(values, identity.domains)]
    got = identity.torch_fn(*derived_inputs)
    want = identity.hand(*values)
    if got.shape != want.shape:
        got, want = torch.broadcast_tensors(got, want)
    return float((got.to(torch.float64) - want.to(torch.float64)).abs().max())


def _bc(x: Tensor, *coefs: Tensor) -> list[Tensor]:
    return [F.bcast(c, x) for c in coefs]


def _generic_hand() -> dict[tuple[str, str], Callable[..., Tensor]]:
    """Hand-written conversions on generic coefficients, composed from flowlab.functional only."""
    def v2d(x, v, a, b, da, db): return F.velocity_to_data(x, v, *_bc(x, a, b, da, db))
    def v2n(x, v, a, b, da, db): return F.velocity_to_noise(x, v, *_bc(x, a, b, da, db))
    def v2s(x, v, a, b, da, db): return F.noise_to_score(v2n(x, v, a, b, da, db), F.bcast(b, x))
    def d2v(x, d, a, b, da, db): return F.data_to_velocity(x, d, *_bc(x, a, b, da, db))
    def d2n(x, d, a, b, da, db): return F.data_to_noise(x, d, *_bc(x, a, b))
    def d2s(x, d, a, b, da, db): return F.noise_to_score(d2n(x, d, a, b, da, db), F.bcast(b, x))
    def n2v(x, e, a, b, da, db): return F.noise_to_velocity(x, e, *_bc(x, a, b, da, db))
    def n2d(x, e, a, b, da, db): return F.noise_to_data(x, e, *_bc(x, a, b))
    def n2s(x, e, a, b, da, db): return F.noise_to_score(e, F.bcast(b, x)).expand_as(x)
    def s2n(x, s, a, b, da, db): return F.score_to_noise(s, F.bcast(b, x)).expand_as(x)
    def s2v(x, s, a, b, da, db): return n2v(x, s2n(x, s, a, b, da, db), a, b, da, db)
    def s2d(x, s, a, b, da, db): return n2d(x, s2n(x, s, a, b, da, db), a, b, da, db)
    return {("velocity", "data"): v2d, ("velocity", "noise"): v2n, ("velocity", "score"): v2s,
            ("data", "velocity"): d2v, ("data", "noise"): d2n, ("data", "score"): d2s,
            ("noise", "velocity"): n2v, ("noise", "data"): n2d, ("noise", "score"): n2s,
            ("score", "noise"): s2n, ("score", "velocity"): s2v, ("score", "data"): s2d}


def _time_domain(conv: Convention) -> Domain:
    """Per-sample times strictly inside the convention's interval (10% margin at each end)."""
    lo, hi = sorted([conv.noise_time, conv.data_time])
    margin = 0.1 * (hi - lo)
    return Domain("per_sample", lo + margin, hi - margin)


def convention_identities(conv: Convention | str) -> tuple[Identity, ...]:
    """Derived vs hand-written pairs for one convention (built-in or custom ``Convention.affine``):
    interpolant, velocity target, and velocity -> data / noise / score, data / noise -> velocity,
    against the :class:`Convention` methods the sampler calls."""
    c = get_convention(conv)
    td = _time_domain(c)
    n = c.name
    out = [
        Identity(f"{n}: interpolant", interpolant(c), (D, E, T), c.interpolate, (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity target = d/dt interpolant", velocity_target(c), (D, E, T), c.velocity_target,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity -> data", conversion("velocity", "data", c), (X, V, T), c.pred_data,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity -> noise", conversion("velocity", "noise", c), (X, V, T), c.pred_noise,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity -> score", conversion("velocity", "score", c), (X, V, T), c.score,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: data -> velocity", conversion("data", "velocity", c), (X, DHAT, T), c.velocity_from_data,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: noise -> velocity", conversion("noise", "velocity", c), (X, EPS, T), c.velocity_from_noise,
                 (TENSOR, TENSOR, td)),
    ]
    return tuple(out)


def identity_registry() -> tuple[Identity, ...]:
    """Every derived expression paired with its hand-written torch counterpart."""
    unit = Domain("per_sample", 0.0, 1.0)
    inner = Domain("per_sample", 0.1, 0.9)
    out = [
        Identity("Euler update x + (s' - s) v", euler_update(), (X, V, S, S_NEXT), F.euler_step,
                 (TENSOR, TENSOR, unit, unit)),
        Identity("jump x + (s' - s) v to any time", euler_update(), (X, V, S, S_NEXT), F.jump,
                 (TENSOR, TENSOR, unit, unit)),
    ]
    # endpoint predictions of the two conventions, against functional.* and the Convention methods
    hand_endpoint = {("conventional", 0): F.conventional_pred_x0, ("conventional", 1): F.conventional_pred_x1,
                     ("reversed", 0): F.reversed_pred_x0, ("reversed", 1): F.reversed_pred_x1}
    for conv in (CONVENTIONAL, REVERSED):
        for k in (0, 1):
            fact = endpoint_fact(conv, k)
            method = conv.pred_x0 if k == 0 else conv.pred_x1
            label = f"{conv.name}: {fact.name} ({fact.lives_there})"
            out.append(Identity(f"{label} vs functional.{hand_endpoint[(conv.name, k)].__name__}", fact.formula,
                                (X, V, T), hand_endpoint[(conv.name, k)], (TENSOR, TENSOR, unit)))
            out.append(Identity(f"{label} vs Convention.{fact.name}", fact.formula, (X, V, T), method,
                                (TENSOR, TENSOR, unit)))
    # the map
    def conventional_step_mapped(x: Tensor, v: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
        return F.euler_step(x, F.flip_velocity(v), F.reversed_to_conventional_time(t),
                            F.reversed_to_conventional_time(t_next))

    def conventional_pred_x0_mapped(x: Tensor, v: Tensor, t: Tensor) -> Tensor:
        return CONVENTIONAL.pred_x0(x, F.flip_velocity(v), F.reversed_to_conventional_time(t))

    out += [
        Identity("map: reversed Euler step == conventional step (sigma = 1 - t, v -> -v)",
                 euler_update(X, V, T, T_NEXT), (X, V, T, T_NEXT), conventional_step_mapped,
                 (TENSOR, TENSOR, unit, unit)),
        Identity("map: pred_x1(reversed) == pred_x0(conventional)", jump_to(1, T), (X, V, T),
                 conventional_pred_x0_mapped, (TENSOR, TENSOR, unit)),
    ]
    # generic affine conversions against functional.*
    coef = (Domain("per_sample", 0.25, 1.0), Domain("per_sample", 0.25, 1.0),
            Domain("per_sample", -1.5, -0.5), Domain("per_sample", 0.5, 1.5))
    for (src, dst), hand in _generic_hand().items():
        out.append(Identity(f"affine (generic a, b): {src} -> {dst}", conversion(src, dst),
                            (X, PARAMETRISATIONS[src], A, B, DA, DB), hand, (TENSOR, TENSOR) + coef))
    # each built-in convention against its methods
    for conv in (CONVENTIONAL, REVERSED, VP_COSINE):
        out += convention_identities(conv)

    # DDIM == Euler of the reparametrised flow
    def euler_reparametrised(x: Tensor, eps: Tensor, abar_t: Tensor, abar_s: Tensor) -> Tensor:
        at, as_ = F.bcast(abar_t, x), F.bcast(abar_s, x)
        sigma_t, sigma_s = torch.sqrt((1 - at) / at), torch.sqrt((1 - as_) / as_)
        return torch.sqrt(as_) * F.euler_step(x / torch.sqrt(at), eps, sigma_t, sigma_s)

    out.append(Identity("DDIM step (eta = 0) == Euler in sigma on x / sqrt(abar)", ddim_step(),
                        (X, EPS, ABAR_T, ABAR_S), euler_reparametrised,
                        (TENSOR, TENSOR, Domain("per_sample", 0.05, 0.5), Domain("per_sample", 0.5, 0.99))))

    # classifier-free guidance
    scale = Domain("scalar", 0.0, 8.0)

    def cfg_flipped(vc: Tensor, vu: Tensor, g: float) -> Tensor:
        return F.flip_velocity(F.cfg(F.flip_velocity(vc), F.flip_velocity(vu), g))

    def cfg_w(vc: Tensor, vu: Tensor, w: float) -> Tensor:
        return F.cfg(vc, vu, 1 + w)

    def cfg_of_data(x: Tensor, vc: Tensor, vu: Tensor, t: Tensor, g: float) -> Tensor:
        return F.cfg(REVERSED.pred_data(x, vc, t), REVERSED.pred_data(x, vu, t), g)

    out += [
        Identity("CFG uncond + g (cond - uncond)", cfg(), (V_COND, V_UNCOND, G), F.cfg, (TENSOR, TENSOR, scale)),
        Identity("CFG commutes with v -> -v", cfg(), (V_COND, V_UNCOND, G), cfg_flipped, (TENSOR, TENSOR, scale)),
        Identity("CFG (1 + w) cond - w uncond == cfg(g = 1 + w)", (1 + W) * V_COND - W * V_UNCOND,
                 (V_COND, V_UNCOND, W), cfg_w, (TENSOR, TENSOR, Domain("scalar", -1.0, 7.0))),
        Identity("CFG commutes with velocity -> data (reversed)",
                 conversion("velocity", "data", REVERSED).subs(V, cfg()), (X, V_COND, V_UNCOND, T, G), cfg_of_data,
                 (TENSOR, TENSOR, TENSOR, Domain("per_sample", 0.0, 1.0), scale)),
    ]
    return tuple(out)


def measure_all(dtype: torch.dtype = torch.float64, *, seed: int = 0,
                identities: Sequence[Identity] | None = None) -> dict[str, float]:
    """``{identity name: max abs error}`` for every identity of :func:`identity_registry`."""
    items = identity_registry() if identities is None else identities
    return {idn.name: compare(idn, dtype, seed=seed) for idn in items}
