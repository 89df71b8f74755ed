"""flowlab.fast on a CUDA GPU: the Triton kernels and the CUDA-graph path agree with the reference.

Skipped without CUDA. References: flowlab.sampling.sample in float64 (exact GMM velocity) or fp32
(MLP), and the torch backend of the same fast path (same tables, same precision).
"""
from __future__ import annotations

import pytest
import torch

from flowlab import schedules as S
from flowlab.fast import GraphedMLPEuler, gmm_euler, mlp_euler, triton_available
from flowlab.gmm import GaussianMixture, cube_corners_gmm, eight_gaussians_gmm
from flowlab.models import MLPConfig, VelocityMLP
from flowlab.sampling import flip, sample

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
needs_triton = pytest.mark.skipif(not triton_available(), reason="needs triton")
DEV = torch.device("cuda")


def _noise(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(DEV)


def _uneven_gmm() -> GaussianMixture:
    g = torch.Generator().manual_seed(5)
    return GaussianMixture(torch.randn(11, 3, generator=g, dtype=torch.float64) * 2,
                           torch.rand(11, generator=g, dtype=torch.float64) * 0.4 + 0.05,
                           torch.rand(11, generator=g, dtype=torch.float64) + 0.2)


@needs_triton
@pytest.mark.parametrize("conv", ["reversed", "conventional"])
@pytest.mark.parametrize("make", [eight_gaussians_gmm, cube_corners_gmm, _uneven_gmm])
def test_gmm_triton_matches_float64_reference(conv, make):
    gmm = make()
    x = _noise(100_003, gmm.dim)  # not a multiple of the block: the tail is masked
    ts = S.uniform(100, conv)
    ref64 = sample(gmm.velocity_model(conv), x.double(), ts.double(), conv)
    ref32 = sample(gmm.velocity_model(conv), x, ts, conv)
    out = gmm_euler(gmm, x, ts, conv, backend="triton")
    assert out.dtype == torch.float32 and out.device == x.device
    assert bool(torch.isfinite(out).all())
    err = (out.double() - ref64).abs()
    # a few particles sit where the flow splits between components and amplify round-off: the fp32
    # reference sampler shows the same; the bulk is at float32 round-off
    assert err.max().item() <= 3 * (ref32.double() - ref64).abs().max().item() + 1e-5
    assert err.flatten().quantile(0.999).item() < 2e-5
    torch_path = gmm_euler(gmm, x, ts, conv, backend="torch")
    assert (out - torch_path).abs().flatten().quantile(0.999).item() < 2e-5


@needs_triton
def test_gmm_triton_keeps_dtype_and_compat_schedule():
    gmm = eight_gaussians_gmm()
    x = _noise(5000, 2, seed=1)
    ts = S.hunyuan_compat(50)
    for dtype, tol in ((torch.float16, 4e-3), (torch.bfloat16, 3e-2)):
        xd = x.to(dtype)
        ref = sample(gmm.velocity_model("reversed"), xd.double(), ts.double(), "reversed")
        out = gmm_euler(gmm, xd, ts, "reversed", backend="triton")
        assert out.dtype == dtype
        assert (out.double() - ref).abs().flatten().quantile(0.999).item() < tol  # the output's rounding


@needs_triton
def test_gmm_triton_no_sync():
    gmm = eight_gaussians_gmm()
    x = _noise(10_000, 2)
    ts = S.uniform(20, "reversed")
    gmm_euler(gmm, x, ts, "reversed")  # compile outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        gmm_euler(gmm, x, ts, "reversed", check_schedule=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _mlp(dim: int = 2) -> VelocityMLP:
    torch.manual_seed(0)
    return VelocityMLP(MLPConfig(dim=dim, hidden=256, depth=4, time_dim=16), "reversed").to(DEV).eval()


@pytest.mark.parametrize("dim", [2, 3])
def test_mlp_graph_matches_torch_backend_and_reference(dim):
    m = _mlp(dim)
    x = _noise(70_001, dim)
    ts = S.uniform(30, "reversed")
    with torch.no_grad():
        ref = sample(m, x, ts, "reversed")
    for prec, tol in (("fp32", 1e-4), ("fp16", 2e-2)):
        eager = mlp_euler(m, x, ts, "reversed", precision=prec, backend="torch", chunk=32768)
        graphed = GraphedMLPEuler(m, x.shape[0], ts, "reversed", precision=prec, chunk=32768)
        out = graphed(x)
        assert (out - eager).abs().max().item() < 1e-5  # the same kernels, replayed
        assert (out - ref).abs().max().item() < tol
        out2 = graphed(x.flip(0))  # reuse with other inputs
        assert (out2 - eager.flip(0)).abs().max().item() < 1e-5


@needs_triton
def test_mlp_triton_probe_in_a_subprocess():
    # the benchmark's isolation probe: a toolchain miscompile must show up as a failed probe, not a crash
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "toy_peers.py"), "--probe", "128,8,1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "max |triton - torch fp16|" in proc.stdout


@needs_triton
@pytest.mark.parametrize("prec", ["fp16", "bf16"])
def test_mlp_triton_matches_torch_backend(prec):
    m = _mlp()
    x = _noise(20_011, 2, seed=2)
    for model, conv in ((m, "reversed"), (flip(m), "conventional")):
        ts = S.uniform(25, conv)
        with torch.no_grad():
            ref = sample(model, x, ts, conv)
        eager = mlp_euler(model, x, ts, conv, precision=prec, backend="torch")
        out = mlp_euler(model, x, ts, conv, precision=prec, backend="triton")
        assert bool(torch.isfinite(out).all())
        tol = 2e-2 if prec == "fp16" else 1e-1
        assert (out - ref).abs().max().item() < tol
        assert (out - eager).abs().max().item() < tol


@needs_triton
@pytest.mark.parametrize("dim,hidden", [(2, 256), (3, 256), (3, 64), (5, 128)])
def test_mlp_triton_fast_silu_matches_exact_and_reference(dim, hidden):
    # the hardware-tanh SiLU against the fp32 sigmoid, both against the fp32 reference sampler
    torch.manual_seed(dim)
    m = VelocityMLP(MLPConfig(dim=dim, hidden=hidden, depth=4, time_dim=16), "reversed").to(DEV).eval()
    with torch.no_grad():  # larger weights than the default init, so the velocity is not tiny
        for p in m.parameters():
            p.mul_(3.0)
    x = _noise(10_007, dim, seed=3)
    ts = S.uniform(40, "reversed")
    with torch.no_grad():
        ref = sample(m, x, ts, "reversed")
    scale = ref.abs().max().item()
    for prec in ("fp16", "bf16"):
        fast = mlp_euler(m, x, ts, "reversed", precision=prec, backend="triton")
        exact = mlp_euler(m, x, ts, "reversed", precision=prec, backend="triton", silu="exact")
        tol = (2e-2 if prec == "fp16" else 1e-1) * max(1.0, scale)
        assert bool(torch.isfinite(fast).all())
        assert (fast - ref).abs().max().item() < tol, prec
        assert (exact - ref).abs().max().item() < tol, prec
        assert (fast - x).abs().max().item() > tol  # the particles moved further than the tolerance


@needs_triton
def test_mlp_triton_no_sync():
    m = _mlp()
    x = _noise(4096, 2)
    ts = S.uniform(10, "reversed")
    mlp_euler(m, x, ts, "reversed", backend="triton")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        mlp_euler(m, x, ts, "reversed", backend="triton", check_schedule=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
