"""Metrics against independent references: scipy in 1-D, closed forms for shifted Gaussians."""
from __future__ import annotations

import math

import pytest
import torch

from flowlab import FlowlabError
from flowlab.metrics import energy_distance, sliced_wasserstein, wasserstein_1d_squared


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_energy_distance_matches_scipy_in_1d():
    stats = pytest.importorskip("scipy.stats")
    x = torch.randn(300, 1, generator=gen(0), dtype=torch.float64)
    y = torch.randn(211, 1, generator=gen(1), dtype=torch.float64) * 1.3 + 0.4
    ref = stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert abs(energy_distance(x, y, chunk=64) - ref) < 1e-10


def test_w2_1d_matches_scipy_quantile_integral():
    stats = pytest.importorskip("scipy.stats")
    x = torch.randn(300, 1, generator=gen(0), dtype=torch.float64)
    y = torch.randn(211, 1, generator=gen(1), dtype=torch.float64) + 0.5
    # scipy >= 1.13 wasserstein_distance is W1; W2 has no scipy function: compare W1 via the same merge
    # grid as a cross-check of the quantile bookkeeping, then W2 for equal sizes against sorting by hand.
    xs, ys = x[:, 0].sort().values, y[:, 0].sort().values
    w1 = stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    qx = torch.arange(1, 301, dtype=torch.float64) / 300
    qy = torch.arange(1, 212, dtype=torch.float64) / 211
    q = torch.cat([qx, qy]).sort().values
    w = torch.diff(q, prepend=q.new_zeros(1))
    mid = q - w / 2
    ix, iy = (mid * 300).floor().long().clamp(max=299), (mid * 211).floor().long().clamp(max=210)
    assert abs((w * (xs[ix] - ys[iy]).abs()).sum().item() - w1) < 1e-10
    assert abs(wasserstein_1d_squared(x, y).item() - (w * (xs[ix] - ys[iy]) ** 2).sum().item()) < 1e-12
    z = torch.randn(300, 1, generator=gen(2), dtype=torch.float64)
    assert abs(wasserstein_1d_squared(x, z).item() - ((xs - z[:, 0].sort().values) ** 2).mean().item()) < 1e-14


def test_sliced_w2_of_a_translation():
    """Shifting a set by m changes every projection by <m, theta>: SW2^2 = mean <m, theta>^2 ~ |m|^2 / dim."""
    x = torch.randn(2000, 3, generator=gen(0), dtype=torch.float64)
    m = torch.tensor([0.6, -0.3, 0.9], dtype=torch.float64)
    sw = sliced_wasserstein(x, x + m, n_projections=4000)
    assert abs(sw - m.norm().item() / math.sqrt(3)) < 0.02
    assert sliced_wasserstein(x, x) == 0.0


def test_properties_seeded_symmetric_and_device_dtype():
    x = torch.randn(500, 2, generator=gen(0))
    y = torch.randn(400, 2, generator=gen(1)) + 1.0
    assert sliced_wasserstein(x, y, seed=3) == sliced_wasserstein(x, y, seed=3)
    assert sliced_wasserstein(x, y, seed=3) != sliced_wasserstein(x, y, seed=4)
    assert abs(sliced_wasserstein(x, y) - sliced_wasserstein(y, x)) < 1e-6
    assert abs(energy_distance(x, y) - energy_distance(y, x)) < 1e-6
    assert energy_distance(x, x) == 0.0
    near = torch.randn(500, 2, generator=gen(2))
    assert energy_distance(x, near) < energy_distance(x, y)
    assert sliced_wasserstein(x, near) < sliced_wasserstein(x, y)
    assert abs(sliced_wasserstein(x.half(), y.half()) - sliced_wasserstein(x, y)) < 1e-2


@pytest.mark.parametrize("x, y, match", [
    (torch.zeros(5), torch.zeros(5, 2), "must be a"),
    (torch.zeros(5, 2), torch.zeros(5, 3), "same dimension"),
    (torch.zeros(0, 2), torch.zeros(5, 2), "N >= 1"),
])
def test_bad_inputs(x, y, match):
    with pytest.raises(FlowlabError, match=match):
        sliced_wasserstein(x, y)
    with pytest.raises(FlowlabError, match=match):
        energy_distance(x, y)
    with pytest.raises(FlowlabError, match="n_projections"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), n_projections=0)
