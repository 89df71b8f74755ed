"""Hunyuan3D-2's scheduler (hy3dgen 2.0.2) through committed fixtures (card hunyuan3d2).

flowlab/data/schedulers/hunyuan3d2.json is written by tools/make_scheduler_fixtures.py with hy3dgen's own
FlowMatchEulerDiscreteScheduler driven as its pipeline does (sigmas = linspace(0, 1, N)).
Reversed convention: t runs 0 -> 1, v = D - E, data = x + (1 - t) v.
"""
from __future__ import annotations

import json

import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED
from flowlab.resources import data_dir
from flowlab.sampling import sample
from flowlab.schedules import hunyuan_compat, n_effective_steps

FIXTURE = json.loads((data_dir("schedulers") / "hunyuan3d2.json").read_text())
CASES = FIXTURE["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"N{c['num_inference_steps']}" for c in CASES])
def test_hunyuan_compat_equals_the_schedulers_sigmas(case):
    n = case["num_inference_steps"]
    ours = hunyuan_compat(n)
    assert torch.equal(torch.tensor(case["sigmas"], dtype=torch.float32), ours)
    assert torch.equal(torch.tensor(case["timesteps"], dtype=torch.float32), ours[:-1] * 1000)
    assert ours[-1] == ours[-2] == 1.0  # the appended 1.0: a no-op last step
    assert n_effective_steps(ours) == n - 1


@pytest.mark.parametrize("case", CASES, ids=[f"N{c['num_inference_steps']}" for c in CASES])
def test_step_loop_equals_flowlab_sampler(case):
    outputs = [torch.tensor(v) for v in case["model_outputs"]]
    calls = iter(outputs)
    seen = []
    final = sample(lambda x, t: next(calls), torch.tensor(case["x_init"]), hunyuan_compat(case["num_inference_steps"]),
                   REVERSED, callback=lambda info: seen.append(info.x))
    states = [torch.tensor(s) for s in case["states"]]
    for k in range(1, len(seen)):
        assert (seen[k] - states[k - 1]).abs().max() < 1e-6
    assert (final - torch.tensor(case["final"])).abs().max() < 1e-6
    # the wasted last call: the final state is the state after N - 1 calls
    assert torch.equal(states[-1], states[-2])


def test_scale_noise_mixes_in_the_conventional_direction():
    p = FIXTURE["scale_noise"]
    sample_, noise, sigma = torch.tensor(p["sample"]), torch.tensor(p["noise"]), p["sigma"]
    out = torch.tensor(p["output"])
    assert (out - CONVENTIONAL.interpolate(sample_, noise, sigma)).abs().max() < 1e-6
    # the reversed scheduler's own time would put (1 - t) on the noise: not what scale_noise does
    assert (out - REVERSED.interpolate(sample_, noise, sigma)).abs().max() > 0.1
