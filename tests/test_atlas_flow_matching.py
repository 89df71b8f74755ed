"""facebookresearch/flow_matching next to flowlab (card flow-matching).

Reversed convention: t runs 0 -> 1, X0 = noise, X1 = data, x_t = alpha_t X1 + sigma_t X0.
"""
from __future__ import annotations

import pytest
import sympy as sp
import torch

pytest.importorskip("flow_matching", reason="card test dependency: pip install flow-matching==1.0.10 torchdiffeq==0.2.5")

from flow_matching.path import AffineProbPath  # noqa: E402
from flow_matching.path.scheduler import CondOTScheduler, CosineScheduler  # noqa: E402
from flow_matching.solver import ODESolver  # noqa: E402

from flowlab import REVERSED, Convention  # noqa: E402
from flowlab import functional as F  # noqa: E402
from flowlab.atlas import probe_network  # noqa: E402
from flowlab.conventions import T  # noqa: E402
from flowlab.sampling import sample  # noqa: E402
from flowlab.schedules import shifted, uniform  # noqa: E402

DT = torch.float64
COSINE = Convention.affine("fm_cosine", sp.sin(sp.pi * T / 2), sp.cos(sp.pi * T / 2), t_noise=0, t_data=1)


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    noise, data, v = (torch.randn(16, 3, generator=g, dtype=DT) for _ in range(3))
    t = torch.rand(16, generator=g, dtype=DT) * 0.98 + 0.01
    return noise, data, v, t


@pytest.mark.parametrize("scheduler, conv", [(CondOTScheduler(), REVERSED), (CosineScheduler(), COSINE)],
                         ids=["condot", "cosine"])
def test_path_sample_equals_convention(scheduler, conv):
    noise, data, _, t = _inputs(0)
    ps = AffineProbPath(scheduler=scheduler).sample(x_0=noise, x_1=data, t=t)
    assert (ps.x_t - conv.interpolate(data, noise, t)).abs().max() < 1e-12
    assert (ps.dx_t - conv.velocity_target(data, noise, t)).abs().max() < 1e-12


@pytest.mark.parametrize("scheduler, conv", [(CondOTScheduler(), REVERSED), (CosineScheduler(), COSINE)],
                         ids=["condot", "cosine"])
def test_six_conversions_equal_flowlab(scheduler, conv):
    noise, data, v, t = _inputs(1)
    path = AffineProbPath(scheduler=scheduler)
    x = conv.interpolate(data, noise, t)
    tc = t.reshape(-1, 1)
    a, b, _, _ = conv.coefficients(tc)
    d_hat, e_hat = conv.pred_data(x, v, t), conv.pred_noise(x, v, t)
    pairs = [
        (path.velocity_to_target(v, x, tc), d_hat),
        (path.velocity_to_epsilon(v, x, tc), e_hat),
        (path.target_to_velocity(d_hat, x, tc), conv.velocity_from_data(x, d_hat, t)),
        (path.epsilon_to_velocity(e_hat, x, tc), conv.velocity_from_noise(x, e_hat, t)),
        (path.target_to_epsilon(d_hat, x, tc), F.data_to_noise(x, d_hat, a, b)),
        (path.epsilon_to_target(e_hat, x, tc), F.noise_to_data(x, e_hat, a, b)),
    ]
    for theirs, ours in pairs:
        assert (theirs - ours).abs().max() < 1e-10
    # CondOT: its data prediction is the Euler jump x + (1 - t) v, its noise prediction x - t v
    if conv is REVERSED:
        assert (path.velocity_to_target(v, x, tc) - F.reversed_pred_x1(x, v, t)).abs().max() < 1e-12
        assert (path.velocity_to_epsilon(v, x, tc) - F.reversed_pred_x0(x, v, t)).abs().max() < 1e-12


@pytest.mark.parametrize("grid", ["uniform", "shifted"])
def test_ode_solver_euler_equals_flowlab_sampler(grid):
    net = probe_network(3)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    ts = uniform(10, REVERSED, dtype=DT) if grid == "uniform" else shifted(10, REVERSED, 3.0, dtype=DT)
    ref = ODESolver(velocity_model=net).sample(x_init=x0, step_size=None, method="euler", time_grid=ts)
    ours = sample(net, x0.clone(), ts, REVERSED)
    assert (ref - ours).abs().max() < 1e-12


def test_ode_solver_step_size_grid_equals_uniform_schedule():
    net = probe_network(3)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    ref = ODESolver(velocity_model=net).sample(x_init=x0, step_size=0.125, method="euler",
                                               time_grid=torch.tensor([0.0, 1.0], dtype=DT))
    ours = sample(net, x0.clone(), uniform(8, REVERSED, dtype=DT), REVERSED)
    assert (ref - ours).abs().max() < 1e-12
