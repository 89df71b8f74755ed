"""Distances between two sample sets ``x: (N, dim)`` and ``y: (M, dim)``, on any device.

* :func:`sliced_wasserstein`: sliced Wasserstein-2,
  ``SW2 = sqrt(mean_over_directions W2^2(<x, theta>, <y, theta>))`` with ``n_projections`` directions
  drawn uniformly on the sphere from a CPU generator seeded with ``seed`` (the same directions on every
  device). 1-D W2 between the projected empirical distributions is computed exactly from their quantile
  functions (equal sizes: sorted values; unequal: both quantile functions on the merged grid of levels).
* :func:`energy_distance`: ``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` over the empirical distributions
  (V-statistic, includes the zero diagonal, so it is >= 0 and equals scipy.stats.energy_distance in 1-D).
  ``O(N M)`` distances computed in chunks.

Both return Python floats (one host sync each) and are symmetric; 0 for identical sets.

Cost is bounded: a set with more than ``max_samples`` rows (:data:`SW2_MAX_SAMPLES` = 20,000 for
SW2, :data:`ENERGY_MAX_SAMPLES` = 5,000 for the energy distance) is replaced by a uniform random
subset of that size without replacement, drawn from a CPU generator seeded with ``seed`` (Floyd's
algorithm, ``O(max_samples)``; the same rows on every device). Below the limit the whole set is used,
so those values do not depend on the limit. Sorting runs in NumPy's vectorised sort on the CPU (the
same sorted values as ``torch.sort``, many times faster) and in torch on a GPU. So SW2 costs
``O(P m log m)`` with ``m = min(N, max_samples)`` and ``P = n_projections``, whatever ``N``;
``max_samples=None`` uses every row.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch import Tensor

from .errors import FlowlabError
from .inputs import check_tensor
from .limits import derived_seed

__all__ = ["sliced_wasserstein", "energy_distance", "wasserstein_1d_squared", "subsample", "SW2_MAX_SAMPLES",
           "ENERGY_MAX_SAMPLES"]

#: Rows of each set :func:`sliced_wasserstein` uses at most (larger sets are subsampled).
SW2_MAX_SAMPLES = 20_000
#: Rows of each set :func:`energy_distance` uses at most (``O(N M)`` pairs).
ENERGY_MAX_SAMPLES = 5_000


def subsample(x: Tensor, max_samples: int | None, seed: int = 0) -> Tensor:
    """``x`` itself when it has at most ``max_samples`` rows, else a uniform random subset of that many rows
    (without replacement; Floyd's algorithm with ``random.Random(seed)``, so ``O(max_samples)`` time and
    memory and the same rows on every device), in increasing row order."""
    if max_samples is None or x.shape[0] <= max_samples:
        return x
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise FlowlabError(f"max_samples must be a positive integer or None, got {max_samples!r}")
    n, rng, chosen = x.shape[0], random.Random(seed), set()
    for j in range(n - max_samples, n):
        k = rng.randint(0, j)
        chosen.add(j if k in chosen else k)
    idx = torch.tensor(sorted(chosen), dtype=torch.long, device=x.device)
    return x.index_select(0, idx)


def _sort0(u: Tensor) -> Tensor:
    """``u.sort(0).values`` (the same values), via NumPy's SIMD sort on the CPU."""
    if u.device.type != "cpu":
        return u.sort(0).values
    a = u.detach().T.contiguous().numpy()
    a.sort(axis=1)
    return torch.from_numpy(a).T.contiguous()


def _check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    for name, s in (("x", x), ("y", y)):
        if not isinstance(s, Tensor) or s.ndim != 2 or s.shape[0] < 1:
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise FlowlabError(f"{name} must be a (N, dim) tensor of samples with N >= 1, got {shape}")
    if x.shape[1] != y.shape[1]:
        raise FlowlabError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if x.device != y.device:
        raise FlowlabError(f"x is on {x.device} and y on {y.device}; put both on one device")
    for name, s in (("x", x), ("y", y)):
        check_tensor(s, name, floating=False)
        bad = int((~torch.isfinite(s)).any(1).sum()) if s.is_floating_point() else 0
        if bad:
            raise FlowlabError(f"{name}: {bad} of its {s.shape[0]} samples contain NaN or inf, so the distance is "
                               "undefined; drop those rows (s[torch.isfinite(s).all(1)]) or find where they came from")
    work = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(work), y.to(work)


def wasserstein_1d_squared(u: Tensor, v: Tensor) -> Tensor:
    """Squared W2 between the empirical distributions of the columns: ``u: (N, P)``, ``v: (M, P)`` -> ``(P,)``.

    ``W2^2 = int_0^1 (F_u^{-1}(q) - F_v^{-1}(q))^2 dq`` with step quantile functions, exact.
    """
    us, vs = _sort0(u), _sort0(v)
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


def sliced_wasserstein(x: Tensor, y: Tensor, *, n_projections: int = 256, seed: int = 0,
                       max_samples: int | None = SW2_MAX_SAMPLES) -> float:
    """Sliced Wasserstein-2 distance between ``x: (N, dim)`` and ``y: (M, dim)`` (see module docstring).

    Sets larger than ``max_samples`` rows are subsampled (seeded by ``seed``); None uses every row."""
    x, y = _check_pair(x, y)
    x, y = subsample(x, max_samples, seed), subsample(y, max_samples, derived_seed(seed, 1))
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


def energy_distance(x: Tensor, y: Tensor, *, chunk: int = 2048, max_samples: int | None = ENERGY_MAX_SAMPLES,
                    seed: int = 0) -> float:
    """Energy distance ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` between ``x: (N, dim)`` and ``y: (M, dim)``.

    Sets larger than ``max_samples`` rows are subsampled (seeded by ``seed``); None uses every row."""
    x, y = _check_pair(x, y)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise FlowlabError(f"chunk must be a positive integer, got {chunk!r}")
    x, y = subsample(x, max_samples, seed), subsample(y, max_samples, derived_seed(seed, 1))
    d2 = 2 * _mean_dist(x, y, chunk) - _mean_dist(x, x, chunk) - _mean_dist(y, y, chunk)
    return float(d2.clamp_min(0).sqrt())
