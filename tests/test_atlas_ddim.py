"""diffusers DDIMScheduler (VP, epsilon prediction, eta = 0) is Euler on a reparametrised straight flow (card ddim).

x = sqrt(abar) D + sqrt(1 - abar) E  ->  x_f = x / (sqrt(abar) + sqrt(1 - abar)) = (1 - s) D + s E,
s = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar)) runs ~1 -> 0 (conventional), v = E - D = eps - Dhat.
"""
from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="card test dependency: pip install diffusers==0.42.1")

from flowlab import CONVENTIONAL  # noqa: E402
from flowlab.atlas import ddim_flow_time, ddim_flow_velocity, ddim_to_flow, probe_network  # noqa: E402
from flowlab.sampling import sample  # noqa: E402

DT = torch.float64


def _ddim(clip_sample, set_alpha_to_one=True, steps=10):
    sched = diffusers.DDIMScheduler(clip_sample=clip_sample, set_alpha_to_one=set_alpha_to_one)
    sched.set_timesteps(steps)
    return sched


def _compare(sched, seed=0):
    """Run DDIM and flowlab's Euler on the reparametrised flow; max abs difference of every state."""
    eps_net = probe_network(3, seed=3)
    x_vp = 2.0 * torch.randn(8, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)
    final = sched.final_alpha_cumprod.reshape(1)
    abar = torch.cat([sched.alphas_cumprod[sched.timesteps], final]).to(DT)
    states = [x_vp.clone()]
    x = x_vp.clone()
    for t in sched.timesteps:
        x = sched.step(eps_net(x, (t / 1000.0).expand(8)), t, x, eta=0.0).prev_sample
        states.append(x)
    s_grid = ddim_flow_time(abar)

    def flow_model(xf, s):
        i = int((s_grid - s[0]).abs().argmin())
        xv = xf * (abar[i].sqrt() + (1 - abar[i]).sqrt())
        return ddim_flow_velocity(xv, eps_net(xv, (sched.timesteps[i] / 1000.0).expand(8).to(DT)), abar[i])

    seen = []
    sample(flow_model, ddim_to_flow(x_vp, abar[0]), s_grid, CONVENTIONAL, check_schedule=False,
           callback=lambda info: seen.append(info.x))
    worst = 0.0
    for k, xf in enumerate(seen):
        back = xf * (abar[k].sqrt() + (1 - abar[k]).sqrt())  # flow state -> VP state
        worst = max(worst, float((back - states[k]).abs().max()))
    return worst, abar


def test_ddim_equals_euler_of_the_reparametrised_flow():
    worst, abar = _compare(_ddim(clip_sample=False))
    assert abar[-1] == 1.0
    # diffusers computes its step coefficients from float32 abar; flowlab from the same values in float64
    assert worst < 1e-5


def test_default_clip_sample_breaks_the_equivalence():
    worst, _ = _compare(_ddim(clip_sample=True))
    assert worst > 1e-2


def test_set_alpha_to_one_false_stops_short_of_the_data():
    sched = _ddim(clip_sample=False, set_alpha_to_one=False)
    assert float(sched.final_alpha_cumprod) < 1.0
    assert float(ddim_flow_time(sched.final_alpha_cumprod.to(DT))) > 0.0


def test_reparametrisation_maps_the_vp_path_onto_the_straight_path():
    g = torch.Generator().manual_seed(4)
    data, noise = torch.randn(16, 3, generator=g, dtype=DT), torch.randn(16, 3, generator=g, dtype=DT)
    abar = torch.rand(16, generator=g, dtype=DT) * 0.98 + 0.01
    x_vp = abar.sqrt()[:, None] * data + (1 - abar).sqrt()[:, None] * noise
    s = ddim_flow_time(abar)
    assert (ddim_to_flow(x_vp, abar) - CONVENTIONAL.interpolate(data, noise, s)).abs().max() < 1e-12
    assert (ddim_flow_velocity(x_vp, noise, abar) - CONVENTIONAL.velocity_target(data, noise, s)).abs().max() < 1e-12
