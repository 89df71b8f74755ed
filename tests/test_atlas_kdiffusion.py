"""k-diffusion's Karras samplers next to flowlab (card k-diffusion).

A flow model (conventional: sigma runs 1 -> 0, v = E - D) becomes a k-diffusion denoiser through
D(x, sigma) = x - sigma v; then to_d = (x - D) / sigma = v and sample_euler is flow-matching Euler.
k-diffusion is installed with --no-deps and only k_diffusion/sampling.py is loaded
(flowlab.atlas.load_k_diffusion_sampling), because its package __init__ needs torchvision.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

if importlib.util.find_spec("k_diffusion") is None or importlib.util.find_spec("torchsde") is None:
    pytest.skip("card test dependency: pip install --no-deps k-diffusion==0.1.1.post1; pip install torchsde==0.2.6",
                allow_module_level=True)

from flowlab import CONVENTIONAL  # noqa: E402
from flowlab import functional as F  # noqa: E402
from flowlab.atlas import load_k_diffusion_sampling, probe_network  # noqa: E402
from flowlab.sampling import sample  # noqa: E402
from flowlab.schedules import shifted, uniform  # noqa: E402

DT = torch.float64


@pytest.fixture(scope="module")
def kd():
    return load_k_diffusion_sampling()


def _denoiser(net):
    def denoiser(x, sigma):
        return x - F.bcast(sigma, x) * net(x, sigma)
    return denoiser


def test_loader_runs_k_diffusions_own_file(kd):
    assert kd.__file__.replace("\\", "/").endswith("k_diffusion/sampling.py")
    assert callable(kd.sample_euler) and callable(kd.sample_heun) and callable(kd.to_d)
    assert load_k_diffusion_sampling() is kd  # loaded once


def test_to_d_of_the_wrapped_flow_model_is_the_velocity(kd):
    net = probe_network(3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g, dtype=DT)
    sigma = torch.rand(8, generator=g, dtype=DT) * 0.9 + 0.05
    d = kd.to_d(x, sigma, _denoiser(net)(x, sigma))
    assert (d - net(x, sigma)).abs().max() < 1e-12


@pytest.mark.parametrize("name, method", [("sample_euler", "euler"), ("sample_heun", "heun")])
@pytest.mark.parametrize("grid", ["uniform", "shift3"])
def test_karras_sampler_equals_flowlab_sampler(kd, name, method, grid):
    net = probe_network(3)
    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    sigmas = uniform(10, CONVENTIONAL, dtype=DT) if grid == "uniform" else shifted(10, CONVENTIONAL, 3.0, dtype=DT)
    ref = getattr(kd, name)(_denoiser(net), x0.clone(), sigmas, disable=True)
    ours = sample(net, x0.clone(), sigmas, CONVENTIONAL, method=method)
    assert (ref - ours).abs().max() < 1e-12


def test_loader_does_not_shadow_the_real_package_name(kd):
    if "k_diffusion" in sys.modules:  # the full package imported: nothing private was registered
        assert kd.__name__ == "k_diffusion.sampling"
    else:
        assert kd.__name__.startswith("_flowlab_")
