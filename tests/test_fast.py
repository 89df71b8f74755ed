"""flowlab.fast on CPU: the fast paths agree with the reference sampler; bad input is refused clearly.

The reference is flowlab.sampling.sample with the readable velocity models (GaussianMixture.velocity,
VelocityMLP.forward). The GMM check of the per-step tables also uses an independent hand-written
single-component formula.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

from flowlab import FlowlabError
from flowlab import schedules as S
from flowlab.fast import GraphedMLPEuler, gmm_euler, mixture_tables, mlp_euler, mlp_tables
from flowlab.gmm import GaussianMixture, cube_corners_gmm, eight_gaussians_gmm
from flowlab.models import MLPConfig, VelocityMLP, time_embedding
from flowlab.sampling import flip, sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _uneven_gmm() -> GaussianMixture:
    g = torch.Generator().manual_seed(5)
    means = torch.randn(5, 2, generator=g, dtype=torch.float64) * 2
    stds = torch.tensor([0.1, 0.3, 0.2, 0.5, 0.15], dtype=torch.float64)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0], dtype=torch.float64)
    return GaussianMixture(means, stds, weights)


def _noise(n: int, dim: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---- exact mixture --------------------------------------------------------------------------------------

@pytest.mark.parametrize("conv", ["reversed", "conventional"])
@pytest.mark.parametrize("make", [eight_gaussians_gmm, cube_corners_gmm, _uneven_gmm])
def test_gmm_torch_matches_reference_float64(conv, make):
    gmm = make()
    x = _noise(300, gmm.dim, dtype=torch.float64)
    ts = S.uniform(40, conv, dtype=torch.float64)
    ref = sample(gmm.velocity_model(conv), x, ts, conv)
    out = gmm_euler(gmm, x, ts, conv, backend="torch")
    assert out.dtype == torch.float64
    assert (out - ref).abs().max().item() < 1e-10


def test_gmm_float32_close_to_float64_and_vp_path():
    gmm = _uneven_gmm()
    for conv, ts in (("reversed", S.hunyuan_compat(30)), ("vp_cosine", None)):
        if ts is None:
            from flowlab import VP_COSINE

            conv = VP_COSINE
            ts = torch.linspace(float(VP_COSINE.t_noise), float(VP_COSINE.t_data), 41, dtype=torch.float64)
            ts[0], ts[-1] = float(VP_COSINE.t_noise), float(VP_COSINE.t_data)
        x = _noise(300, 2, seed=1)
        ref64 = sample(gmm.velocity_model(conv), x.double(), ts.double(), conv)
        out32 = gmm_euler(gmm, x, ts, conv, backend="torch")
        assert out32.dtype == torch.float32
        assert (out32.double() - ref64).abs().max().item() < 1e-4


def test_mixture_tables_give_the_single_gaussian_velocity_by_hand():
    # one component N(mu, s^2 I) on the straight reversed path: v = mu + (t s^2 - (1 - t)) / c (x - t mu)
    mu, s = torch.tensor([[1.5, -0.5]], dtype=torch.float64), 0.3
    gmm = GaussianMixture(mu, s)
    ts = torch.tensor([0.0, 0.25, 0.6, 1.0], dtype=torch.float64)
    tab = mixture_tables(gmm, ts, "reversed")
    x = _noise(7, 2, dtype=torch.float64)
    for i, t in enumerate(ts[:-1].tolist()):
        c = t * t * s * s + (1 - t) ** 2
        want = mu + (t * s * s - (1 - t)) / c * (x - t * mu)
        got = tab.c[i, 0] * x + tab.m[i, 0]  # a single component has posterior weight 1
        assert torch.allclose(got, want, atol=1e-12)
        assert tab.dt[i].item() == pytest.approx(ts[i + 1].item() - t)


def test_gmm_dtype_and_flip_symmetry():
    gmm = eight_gaussians_gmm()
    x = _noise(200, 2)
    rev = gmm_euler(gmm, x, S.uniform(20, "reversed"), "reversed")
    conv = gmm_euler(gmm, x, S.uniform(20, "conventional"), "conventional")
    assert (rev - conv).abs().max().item() < 1e-4  # mirror images: the same points
    half = gmm_euler(gmm, x.half(), S.uniform(20, "reversed"), "reversed")
    assert half.dtype == torch.float16 and half.shape == x.shape
    assert (half.float() - rev).abs().max().item() < 1e-2


def test_gmm_bad_input():
    gmm = eight_gaussians_gmm()
    ts = S.uniform(4, "reversed")
    full = GaussianMixture(torch.zeros(1, 2), torch.eye(2)[None] * 0.5)
    with pytest.raises(FlowlabError, match="isotropic"):
        gmm_euler(full, _noise(4, 2), ts, "reversed")
    with pytest.raises(FlowlabError, match=r"shape \(B, 2\)"):
        gmm_euler(gmm, _noise(4, 3), ts, "reversed")
    with pytest.raises(FlowlabError, match="backend"):
        gmm_euler(gmm, _noise(4, 2), ts, "reversed", backend="cuda")
    with pytest.raises(FlowlabError, match="CUDA"):
        gmm_euler(gmm, _noise(4, 2), ts, "reversed", backend="triton")
    with pytest.raises(FlowlabError, match="MLP"):
        gmm_euler(gmm, _noise(4, 2), ts, "reversed", backend="graph")
    with pytest.raises(FlowlabError, match="wrong way"):
        gmm_euler(gmm, _noise(4, 2), ts, "conventional")
    with pytest.raises(FlowlabError, match="GaussianMixture"):
        gmm_euler("eight_gaussians", _noise(4, 2), ts, "reversed")
    with pytest.raises(FlowlabError, match="no samples"):
        gmm_euler(gmm, _noise(0, 2), ts, "reversed")


# ---- MLP ------------------------------------------------------------------------------------------------

def _mlp(conv: str = "reversed", dim: int = 2) -> VelocityMLP:
    torch.manual_seed(0)
    return VelocityMLP(MLPConfig(dim=dim, hidden=32, depth=4, time_dim=16), conv).eval()


@pytest.mark.parametrize("dim", [2, 3])
def test_mlp_fp32_matches_reference_both_conventions(dim):
    m = _mlp(dim=dim)
    x = _noise(257, dim)
    for model, conv in ((m, "reversed"), (flip(m), "conventional")):
        ts = S.uniform(12, conv)
        with torch.no_grad():
            ref = sample(model, x, ts, conv)
        out = mlp_euler(model, x, ts, conv, precision="fp32", backend="torch", chunk=100)
        assert out.dtype == x.dtype and out.shape == x.shape
        assert (out - ref).abs().max().item() < 1e-5


def test_mlp_half_precision_matmuls_stay_close():
    m = _mlp()
    x = _noise(200, 2, seed=3)
    ts = S.uniform(10, "reversed")
    with torch.no_grad():
        ref = sample(m, x, ts, "reversed")
    out = mlp_euler(m, x, ts, "reversed", precision="fp16", backend="torch")
    err = (out - ref).abs().max().item()
    assert 0 < err < 5e-3  # rounded matmuls: different, but close


def test_mlp_tables_reproduce_the_first_layer():
    m = _mlp()
    ts = S.uniform(5, "reversed")
    tab = mlp_tables(m, ts, "reversed", precision="fp32")
    x = _noise(9, 2)
    with torch.no_grad():
        for i in range(5):
            full = m.net[0](torch.cat([x, time_embedding(ts[i].expand(9), 16)], dim=1))
            split = x @ tab.w1x + tab.bias1[i]
            assert torch.allclose(full, split, atol=1e-5)
    flipped = mlp_tables(flip(m), S.uniform(5, "conventional"), "conventional", precision="fp32")
    assert torch.allclose(flipped.dt, -S.uniform(5, "conventional").diff())


def test_mlp_bad_input():
    m = _mlp()
    ts = S.uniform(4, "reversed")
    x = _noise(8, 2)
    with pytest.raises(FlowlabError, match="flip"):
        mlp_euler(m, x, S.uniform(4, "conventional"), "conventional")
    with pytest.raises(FlowlabError, match="unflipped"):
        mlp_euler(flip(m), x, ts, "reversed")
    with pytest.raises(FlowlabError, match="VelocityMLP"):
        mlp_euler(lambda x, t: x, x, ts, "reversed")
    with pytest.raises(FlowlabError, match="precision"):
        mlp_euler(m, x, ts, "reversed", precision="int8")
    with pytest.raises(FlowlabError, match="chunk"):
        mlp_euler(m, x, ts, "reversed", chunk=0)
    with pytest.raises(FlowlabError, match="silu must be one of fast, exact"):
        mlp_euler(m, x, ts, "reversed", silu="tanh")
    with pytest.raises(FlowlabError, match="CUDA"):
        mlp_euler(m, x, ts, "reversed", backend="graph")
    with pytest.raises(FlowlabError, match="float32 weights"):
        mlp_euler(_mlp().double(), x, ts, "reversed", backend="torch")
    with pytest.raises(FlowlabError, match=r"shape \(B, 2\)"):
        mlp_euler(m, x[:, :1], ts, "reversed")
    with pytest.raises(FlowlabError, match="CUDA"):
        GraphedMLPEuler(m, 8, ts, "reversed")


def test_float64_input_comes_back_float64():
    m = _mlp()
    x = _noise(16, 2, dtype=torch.float64)
    out = mlp_euler(m, x, S.uniform(3, "reversed"), "reversed", precision="fp32")
    assert out.dtype == torch.float64


# ---- the benchmark's CPU smoke mode ---------------------------------------------------------------------------

def test_benchmark_smoke_runs(capsys):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import toy_peers
    finally:
        sys.path.pop(0)
    assert toy_peers.main(["--smoke", "--only", "gmm,mlp,steps"]) == 0
    out = capsys.readouterr().out
    assert "card: cpu" in out
    assert "flowlab reference sample()" in out and "plain torch loop" in out
    assert "compat" in out and "corrected" in out
    assert "FAILED" not in out
    summary = out.split("summary")[1]
    assert summary.count("- gmm eight_gaussians") == 1 and summary.count("- mlp eight_gaussians") == 1
