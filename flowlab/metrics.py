"""Distances between two sample sets ``x: (N, dim)`` and ``y: (M, dim)``, on any device.

* :func:`sliced_wasserstein`: sliced Wasserstein-2,
  ``SW2 = sqrt(mean_over_directions W2^2(<x, theta>, <y, theta>))`` with ``n_projections`` directions
  drawn uniformly on the sphere from a CPU generator seeded with ``seed`` (the same directions on every
  device). 1-D W2 between the projected empirical distributions is computed exactly from their quantile
  functions (equal sizes: sorted values; unequal: both quantile functions on the merged grid of levels).
* :func:`energy_distance`: ``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` over the empirical distributions
  (V-statistic, includes the zero diagonal, so it is >= 0 and equals scipy.stats.energy_distance in 1-D).
  ``O(N M)`` distances computed in chunks; subsample large sets.

Both return Python floats (one host sync each) and are symmetric; 0 for identical sets.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import FlowlabError

__all__ = ["sliced_wasserstein", "energy_distance", "wasserstein_1d_squared"]


def _check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    for name, s in (("x", x), ("y", y)):
        if not isinstance(s, Tensor) or s.ndim != 2 or s.shape[0] < 1:
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise FlowlabError(f"{name} must be a (N, dim) tensor of samples with N >= 1, got {shape}")
    if x.shape[1] != y.shape[1]:
        raise FlowlabError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if x.device != y.device:
        raise FlowlabError(f"x is on {x.device} and y on {y.device}; put both on one device")
    work = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(work), y.to(work)


def wasserstein_1d_squared(u: Tensor, v: Tensor) -> Tensor:
    """Squared W2 between the empirical distributions of the columns: ``u: (N, P)``, ``v: (M, P)`` -> ``(P,)``.

    ``W2^2 = int_0^1 (F_u^{-1}(q) - F_v^{-1}(q))^2 dq`` with step quantile functions, exact.
    """
    us, vs = u.sort(0).values, v.sort(0).values
    n, m = us.shape[0], vs.shape[0]
    if n == m:
        return ((us - vs) ** 2).mean(0)
    # merged breakpoints of the two step functions: levels i/n and j/m
    qu = torch.arange(1, n + 1, device=u.device, dtype=u.dtype) / n
    qv = torch.arange(1, m + 1, device=u.device, dtype=u.dtype) / m
    q, _ = torch.cat([qu, qv]).sort()
    widths = torch.diff(q, prepend=q.new_zeros(1))
    mid = q - widths / 2
    iu = (mid * n).floor().long().clamp(max=n - 1)
    iv = (mid * m).floor().long().clamp(max=m - 1)
    return (widths[:, None] * (us[iu] - vs[iv]) ** 2).sum(0)


def sliced_wasserstein(x: Tensor, y: Tensor, *, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between ``x: (N, dim)`` and ``y: (M, dim)`` (see module docstring)."""
    x, y = _check_pair(x, y)
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections <= 0:
        raise FlowlabError(f"n_projections must be a positive integer, got {n_projections!r}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(device=x.device, dtype=x.dtype)
    return float(wasserstein_1d_squared(x @ theta, y @ theta).mean().sqrt())


def _mean_dist(a: Tensor, b: Tensor, chunk: int) -> Tensor:
    total = a.new_zeros(())
    for i in range(0, a.shape[0], chunk):
        total = total + torch.cdist(a[i:i + chunk], b, compute_mode="donot_use_mm_for_euclid_dist").sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x: Tensor, y: Tensor, *, chunk: int = 2048) -> float:
    """Energy distance ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` between ``x: (N, dim)`` and ``y: (M, dim)``."""
    x, y = _check_pair(x, y)
    d2 = 2 * _mean_dist(x, y, chunk) - _mean_dist(x, x, chunk) - _mean_dist(y, y, chunk)
    return float(d2.clamp_min(0).sqrt())
