"""CUDA: CPU vs GPU agreement on the same seeds, no host sync in the loop, CUDA-graph capture.

Skips cleanly without CUDA (marker ``gpu`` plus an explicit skipif).
"""
from __future__ import annotations

import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED
from flowlab import schedules as S
from flowlab.gmm import cube_corners_gmm, eight_gaussians_gmm
from flowlab.metrics import energy_distance, sliced_wasserstein
from flowlab.sampling import sample
from flowlab.toys import TOYS, sample_toy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def cpu_noise(n, dim, dtype, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype, tol_max, tol_median", [(torch.float64, 1e-10, 1e-12), (torch.float32, 1e-2, 1e-5)])
@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED])
@pytest.mark.parametrize("method", ["euler", "heun", "midpoint"])
def test_cpu_and_cuda_agree_on_the_same_seed(dtype, tol_max, tol_median, conv, method):
    gmm = eight_gaussians_gmm()
    x = cpu_noise(4000, 2, dtype)
    ts = S.uniform(50, conv, dtype=dtype)
    out_cpu = sample(gmm.velocity_model(conv), x, ts, conv, method=method)
    out_gpu = sample(gmm.velocity_model(conv), x.cuda(), ts.cuda(), conv, method=method)
    assert out_gpu.device.type == "cuda" and out_gpu.dtype == dtype
    diff = (out_gpu.cpu() - out_cpu).abs().amax(1)
    # float32: different kernels round differently; samples near a boundary between modes may amplify it
    assert diff.max().item() < tol_max and diff.median().item() < tol_median


def test_conventions_agree_on_cuda_float64():
    gmm = cube_corners_gmm()
    x = cpu_noise(4000, 3, torch.float64).cuda()
    outs = [sample(gmm.velocity_model(c), x, S.uniform(40, c, dtype=torch.float64, device="cuda"), c)
            for c in (CONVENTIONAL, REVERSED)]
    assert (outs[0] - outs[1]).abs().max().item() < 1e-12


def test_schedule_on_cpu_is_moved_to_x_device():
    gmm = eight_gaussians_gmm()
    out = sample(gmm.velocity_model(REVERSED), cpu_noise(64, 2, torch.float32).cuda(), S.uniform(5, REVERSED), REVERSED)
    assert out.device.type == "cuda"


def test_loop_makes_no_host_sync_on_cuda():
    gmm = eight_gaussians_gmm()
    model = gmm.velocity_model(CONVENTIONAL)
    x = cpu_noise(10_000, 2, torch.float32).cuda()
    ts = S.uniform(20, CONVENTIONAL, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    sample(model, x, ts, CONVENTIONAL)  # warm the parameter cache (its one-time copy to the GPU)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for method in ("euler", "heun", "midpoint"):
            sample(model, x, ts, CONVENTIONAL, method=method, churn=0.2, generator=gen, check_finite=False,
                   check_schedule=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_graph_capture_of_the_whole_loop():
    gmm = eight_gaussians_gmm()
    model = gmm.velocity_model(REVERSED)
    ts = S.uniform(16, REVERSED, device="cuda")
    static_x = cpu_noise(2048, 2, torch.float32).cuda()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            sample(model, static_x, ts, REVERSED, check_finite=False, check_schedule=False)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = sample(model, static_x, ts, REVERSED, check_finite=False, check_schedule=False)
    new_x = cpu_noise(2048, 2, torch.float32, seed=5).cuda()
    static_x.copy_(new_x)
    graph.replay()
    eager = sample(model, new_x, ts, REVERSED)
    assert (static_out - eager).abs().max().item() < 1e-5


def test_nan_check_on_cuda_names_the_step():
    from flowlab import FlowlabError

    def bad(x, t):
        return torch.where(t[:, None] > 0.5, torch.full_like(x, float("nan")), -x)

    with pytest.raises(FlowlabError, match=r"step 3 \(t = 0\.6"):
        sample(bad, cpu_noise(16, 2, torch.float32).cuda(), S.uniform(5, REVERSED, device="cuda"), REVERSED)


@pytest.mark.parametrize("name", list(TOYS))
def test_toys_identical_on_cpu_and_cuda_with_a_cpu_generator(name):
    a = sample_toy(name, 1000, generator=torch.Generator().manual_seed(3))
    b = sample_toy(name, 1000, generator=torch.Generator().manual_seed(3), device="cuda")
    assert b.device.type == "cuda" and torch.equal(a, b.cpu())
    c = sample_toy(name, 1000, generator=torch.Generator(device="cuda").manual_seed(3))
    assert c.device.type == "cuda" and c.shape == a.shape


def test_metrics_on_cuda_match_cpu():
    x = cpu_noise(3000, 2, torch.float64)
    y = cpu_noise(2500, 2, torch.float64, seed=1) + 0.3
    assert abs(sliced_wasserstein(x, y) - sliced_wasserstein(x.cuda(), y.cuda())) < 1e-10
    assert abs(energy_distance(x, y) - energy_distance(x.cuda(), y.cuda())) < 1e-10


def test_fp16_on_cuda_follows_dtype():
    gmm = eight_gaussians_gmm()
    x = cpu_noise(512, 2, torch.float16).cuda()
    out = sample(gmm.velocity_model(REVERSED), x, S.hunyuan_compat(20, device="cuda"), REVERSED)
    assert out.dtype == torch.float16 and bool(torch.isfinite(out).all())
