"""diffusers' flow-matching schedulers next to flowlab on the same inputs (cards diffusers-euler, diffusers-heun).

Conventional convention: sigma runs 1 -> 0, the network outputs v = E - D, data = x - sigma v.
"""
from __future__ import annotations

import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="card test dependency: pip install diffusers==0.42.1")

from flowlab import CONVENTIONAL, FlowlabError  # noqa: E402
from flowlab.atlas import diffusers_pred_x0, diffusers_terminal_sigma, probe_network  # noqa: E402
from flowlab.sampling import CallCounter, sample  # noqa: E402
from flowlab.schedules import shifted, uniform  # noqa: E402


def _run(sched, net, x):
    for t in sched.timesteps:
        v = net(x, (t / sched.config.num_train_timesteps).expand(x.shape[0]))
        x = sched.step(v, t, x).prev_sample
    return x


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_scheduler_equals_flowlab_sampler(shift):
    net = probe_network(3)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(12)
    ref = _run(sched, net, x0.clone())
    ours = sample(net, x0.clone(), sched.sigmas.clone(), CONVENTIONAL)
    assert (ref - ours).abs().max() < 1e-5
    # the model sees timesteps = 1000 sigma
    assert torch.allclose(sched.timesteps, sched.sigmas[:-1] * 1000)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flowlab_shifted_equals_diffusers_with_uniform_sigmas(shift):
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(sigmas=uniform(12, CONVENTIONAL)[:-1].tolist())
    assert (sched.sigmas - shifted(12, CONVENTIONAL, shift)).abs().max() < 1e-6


def test_dynamic_shifting_is_the_sd3_shift_with_exp_mu():
    mu = 0.8
    sched = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    sched.set_timesteps(12, mu=mu)
    base = torch.linspace(1.0, 1e-3, 12, dtype=torch.float64)
    s = math.exp(mu)
    assert (sched.sigmas[:-1].double() - s * base / (1 + (s - 1) * base)).abs().max() < 1e-6


def test_13243_terminal_sigma_is_shifted_twice():
    def sd3(u, s):
        return s * u / (1 + (s - 1) * u)

    last, single = diffusers_terminal_sigma(3.0)
    assert abs(single - sd3(1e-3, 3.0)) < 1e-9
    assert round(single, 5) == 0.00299
    assert round(last, 5) == 0.00893
    assert abs(last - sd3(sd3(1e-3, 3.0), 3.0)) < 1e-6
    last1, single1 = diffusers_terminal_sigma(1.0)  # no shift, no double shift
    assert abs(last1 - single1) < 1e-7


def test_10606_pred_x0_equals_diffusers_own_x0():
    """With stochastic_sampling=True diffusers computes x0 = sample - sigma * model_output internally and
    returns (1 - sigma') x0 + sigma' noise; replaying its noise recovers its x0."""
    net = probe_network(3)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0, stochastic_sampling=True)
    sched.set_timesteps(6)
    gen = torch.Generator().manual_seed(5)
    for i, t in enumerate(sched.timesteps):
        v = net(x, (t / 1000).expand(x.shape[0]))
        ours = diffusers_pred_x0(sched, v, t, x)
        replay = torch.Generator()
        replay.set_state(gen.get_state())
        noise = torch.randn(x.shape, generator=replay, dtype=x.dtype)
        nxt = sched.sigmas[i + 1]
        x = sched.step(v, t, x, generator=gen).prev_sample
        theirs = (x - nxt * noise) / (1 - nxt)
        assert (ours - theirs).abs().max() < 1e-5
    assert (ours - x).abs().max() == 0  # the last step lands exactly on x0


def test_pred_x0_is_the_data_for_the_exact_velocity():
    data = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(5)
    for i, t in enumerate(sched.timesteps):
        sigma = sched.sigmas[i]
        x = (1 - sigma) * data + sigma * noise
        got = diffusers_pred_x0(sched, noise - data, t, x)
        assert (got - data).abs().max() < 1e-5
        sched.step(noise - data, t, x)


def test_pred_x0_rejects_non_schedulers():
    with pytest.raises(FlowlabError, match="expected a diffusers flow-matching scheduler"):
        diffusers_pred_x0(object(), torch.zeros(1), 1.0, torch.zeros(1))


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_heun_scheduler_equals_flowlab_heun(shift):
    net = probe_network(3)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(4))
    sched = diffusers.FlowMatchHeunDiscreteScheduler(shift=shift)
    sched.set_timesteps(8)
    assert len(sched.timesteps) == 2 * 8 - 1
    ref = _run(sched, net, x0.clone())
    counter = CallCounter(net)
    ours = sample(counter, x0.clone(), torch.unique_consecutive(sched.sigmas), CONVENTIONAL, method="heun")
    assert counter.calls == len(sched.timesteps)  # the last step is Euler on both sides
    assert (ref - ours).abs().max() < 1e-5
