"""Schedules: endpoints, direction, the shift's meaning in both conventions, Hunyuan3D-2 parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED, FlowlabError
from flowlab import schedules as S


@pytest.mark.parametrize("conv, first, last", [(CONVENTIONAL, 1.0, 0.0), (REVERSED, 0.0, 1.0)])
def test_uniform_runs_noise_to_data(conv, first, last):
    ts = S.uniform(4, conv)
    assert ts.dtype == torch.float32 and ts.shape == (5,)
    assert ts[0].item() == first and ts[-1].item() == last
    steps = (ts[1:] - ts[:-1]) * conv.direction
    assert bool((steps > 0).all())
    assert torch.allclose(steps, torch.full((4,), 0.25))


def test_uniform_dtype_device_and_mirror():
    c = S.uniform(7, "conventional", dtype=torch.float64, device="cpu")
    r = S.uniform(7, "reversed", dtype=torch.float64)
    assert c.dtype == torch.float64
    assert torch.equal(1 - c, r)  # exact in float64 for these grids: k/7 and 1 - k/7 round the same way
    r32 = S.uniform(7, "reversed")
    assert (S.to_reversed(S.uniform(7, "conventional")) - r32).abs().max().item() <= 6e-8


def test_shift_formula_hand_values_conventional():
    # SD3: sigma' = 3 sigma / (1 + 2 sigma) on sigma = 1, .75, .5, .25, 0 -> 1, .9, .75, .5, 0
    ts = S.shifted(4, CONVENTIONAL, 3.0, dtype=torch.float64)
    assert torch.allclose(ts, torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED])
@pytest.mark.parametrize("shift", [0.5, 3.0])
def test_shift_greater_than_one_pushes_toward_noise_in_both(conv, shift):
    base = S.uniform(8, conv, dtype=torch.float64)
    ts = S.shifted(8, conv, shift, dtype=torch.float64)
    dist_to_noise_base = (base - float(conv.t_noise)).abs()[1:-1]
    dist_to_noise = (ts - float(conv.t_noise)).abs()[1:-1]
    if shift > 1:
        assert bool((dist_to_noise < dist_to_noise_base).all())
    else:
        assert bool((dist_to_noise > dist_to_noise_base).all())
    assert ts[0].item() == float(conv.t_noise) and ts[-1].item() == float(conv.t_data)


def test_shift_one_is_uniform_and_conventions_mirror():
    assert torch.equal(S.shifted(5, REVERSED, 1.0), S.uniform(5, REVERSED))
    c = S.shifted(6, CONVENTIONAL, 3.0, dtype=torch.float64)
    r = S.shifted(6, REVERSED, 3.0, dtype=torch.float64)
    assert (1 - c - r).abs().max().item() < 1e-15


def test_naive_shift_on_reversed_time_pushes_toward_data():
    """Trap 4: the SD3 formula applied unchanged to the reversed t moves steps toward the data (t = 1)."""
    t = S.uniform(8, REVERSED, dtype=torch.float64)
    naive = 3.0 * t / (1 + 2.0 * t)
    assert bool((naive[1:-1] > t[1:-1]).all())  # larger t = closer to data in the reversed convention
    good = S.shifted(8, REVERSED, 3.0, dtype=torch.float64)
    assert bool((good[1:-1] < t[1:-1]).all())


def test_shift_matches_diffusers_flow_match_scheduler():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    n = 10
    sched.set_timesteps(sigmas=np.linspace(1.0, 0.0, n + 1)[:-1].tolist())
    ours = S.shifted(n, CONVENTIONAL, 3.0)
    assert sched.sigmas.shape == ours.shape
    assert (sched.sigmas.float() - ours).abs().max().item() < 1e-6


def test_hunyuan_compat_matches_reference_construction():
    for n in (1, 2, 5, 50):
        ts = S.hunyuan_compat(n)
        ref = torch.cat([torch.from_numpy(np.linspace(0, 1, n)).to(torch.float32), torch.ones(1)])
        assert torch.equal(ts, ref)
        assert ts.shape == (n + 1,)
    ts = S.hunyuan_compat(5)
    assert S.n_effective_steps(ts) == 4  # 5 model calls, 4 effective steps
    assert ts[-1].item() == ts[-2].item() == 1.0
    with pytest.raises(FlowlabError, match="no-op step 4"):
        S.validate(ts, REVERSED)
    assert S.n_effective_steps(S.hunyuan_corrected(5)) == 5
    assert S.hunyuan_corrected(5).shape == (6,)


def test_hunyuan_turbo_values():
    ts = S.hunyuan_turbo(5)
    expected = torch.tensor([0.0, 0.1992, 0.3994, 0.5996, 0.7998, 1.0])
    assert (ts - expected).abs().max().item() < 1e-4
    exact = torch.tensor([0, 199 / 999, 399 / 999, 599 / 999, 799 / 999, 1.0], dtype=torch.float64)
    assert (S.hunyuan_turbo(5, dtype=torch.float64) - exact).abs().max().item() < 1e-15
    assert S.n_effective_steps(ts) == 5
    with pytest.raises(FlowlabError, match="exceeds pcm_timesteps"):
        S.hunyuan_turbo(20, pcm_timesteps=10)


def test_hunyuan_parity_with_hy3dgen_schedulers():
    sched_mod = pytest.importorskip("hy3dgen.shapegen.schedulers")
    n = 7
    ref = sched_mod.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    ref.set_timesteps(sigmas=np.linspace(0, 1, n))
    assert torch.equal(ref.sigmas.float(), S.hunyuan_compat(n))
    turbo = sched_mod.ConsistencyFlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, pcm_timesteps=100)
    turbo.set_timesteps(n)
    assert torch.equal(turbo.sigmas_.double(), S.hunyuan_turbo(n, dtype=torch.float64))


def test_conversions_round_trip_and_check_input():
    r = S.hunyuan_compat(4)
    c = S.to_conventional(r)
    assert c[0].item() == 1.0 and c[-1].item() == 0.0
    S.validate(c, CONVENTIONAL, allow_noop=True)
    assert (S.to_reversed(c) - r).abs().max().item() <= 6e-8  # 1 - (1 - t) rounds in float32
    with pytest.raises(FlowlabError, match="wrong way"):
        S.to_conventional(S.uniform(3, CONVENTIONAL))
    assert torch.equal(S.noise_level(S.uniform(4, REVERSED), REVERSED), S.noise_level(S.uniform(4, CONVENTIONAL), CONVENTIONAL))


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([1.0, 0.5, 0.7, 0.0]), "not monotone: step 1"),
    (torch.tensor([0.0, 0.5, 1.0]), "wrong way"),
    (torch.tensor([0.9, 0.5, 0.0]), "must start at the noise endpoint"),
    (torch.tensor([1.0, 0.5, 0.1]), "must end exactly at the data endpoint"),
    (torch.tensor([1.0, 0.5, 1.0]), "must end exactly at the data endpoint"),
    (torch.tensor([[1.0, 0.0]]), "must be 1-D"),
    (torch.tensor([1, 0]), "floating dtype"),
    (torch.tensor([1.0]), "at least 2 points"),
    (torch.tensor([1.0, float("nan"), 0.0]), "NaN or inf"),
    (torch.tensor([1.0, 0.5, 0.5, 0.0]), "no-op step 1"),
    ([1.0, 0.0], "torch tensor"),
])
def test_validate_rejects(bad, match):
    with pytest.raises(FlowlabError, match=match):
        S.validate(bad, CONVENTIONAL)


def test_validate_wrong_way_names_the_fix():
    with pytest.raises(FlowlabError, match="to_conventional / to_reversed"):
        S.validate(torch.tensor([1.0, 0.0]), REVERSED)


@pytest.mark.parametrize("call, match", [
    (lambda: S.uniform(0, "reversed"), "n_steps must be >= 1"),
    (lambda: S.uniform(-3, "reversed"), "n_steps must be >= 1"),
    (lambda: S.uniform(2.5, "reversed"), "positive integer"),
    (lambda: S.shifted(4, "reversed", 0.0), "shift must be a positive"),
    (lambda: S.shifted(4, "reversed", float("nan")), "shift must be a positive"),
    (lambda: S.hunyuan_compat(0), "n_calls must be >= 1"),
    (lambda: S.uniform(3, "sideways"), "unknown convention"),
])
def test_builders_reject_bad_arguments(call, match):
    with pytest.raises(FlowlabError, match=match):
        call()
