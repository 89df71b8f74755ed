"""flowlab.shape.decode.fast agrees with the readable shape code it replaces (CPU), and on CUDA (marked gpu)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from flowlab.conventions import REVERSED
from flowlab.errors import FlowlabError
from flowlab.sampling import sample
from flowlab.shape.models.dit import DiTConfig, ShapeDiT
from flowlab.shape.decode.fast import (GraphedVelocity, compile_blocks, compiled_query, decode_dense_fast,
                                marching_cubes_parallel, skip_noop_steps, uncompile_blocks)
from flowlab.shape.decode.mesh import marching_cubes
from flowlab.shape.pipeline import DiTVelocity, ShapePipeline
from flowlab.shape.models.vae import ShapeVAE, VAEConfig
from flowlab.shape.decode.volume import decode_dense

DIT = DiTConfig(in_channels=8, context_in_dim=16, hidden_size=32, num_heads=4, depth=2, depth_single_blocks=2)
VAE = VAEConfig(num_latents=16, embed_dim=8, width=32, heads=4, num_decoder_layers=1)
ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one CPU thread (conftest)


def _randomised(m: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m.eval()


def _models(seed: int = 0) -> tuple[ShapeDiT, ShapeVAE]:
    torch.manual_seed(seed)
    return _randomised(ShapeDiT(DIT), seed + 1), _randomised(ShapeVAE(VAE), seed + 2)


def test_skip_noop_steps_same_samples_one_call_fewer():
    dit, vae = _models()
    pipe = ShapePipeline(dit=dit, vae=vae, dtype=torch.float32)
    cond = torch.randn(1, 5, DIT.context_in_dim, generator=torch.Generator().manual_seed(3))
    want = pipe.sample_latents(cond, steps=6, guidance=5.0, seed=0)
    ts = pipe.schedule(6)
    short = skip_noop_steps(ts)
    assert ts.numel() == 7 and short.numel() == 6  # the compatibility schedule ends 1, 1
    model = DiTVelocity(dit, cond, guidance=5.0)
    x0 = torch.randn(1, *vae.latent_shape, generator=torch.Generator().manual_seed(0))
    got = sample(model, x0, short, REVERSED)
    assert model.calls == 5
    assert torch.equal(got, want)


def test_skip_noop_steps_keeps_a_schedule_without_noops_and_rejects_bad_input():
    ts = torch.linspace(0, 1, 5)
    assert torch.equal(skip_noop_steps(ts), ts)
    with pytest.raises(FlowlabError):
        skip_noop_steps(torch.ones(3))
    with pytest.raises(FlowlabError):
        skip_noop_steps(torch.zeros(2, 2))


@pytest.mark.parametrize("chunk", [7, 1000, 5000])
def test_decode_dense_fast_matches_readable_with_padding_and_batch(chunk):
    _, vae = _models(1)
    z = torch.randn(2, *vae.latent_shape, generator=torch.Generator().manual_seed(4))
    tokens = vae.decode_latents(z)
    with torch.no_grad():
        want = decode_dense(vae.geo_decoder, tokens, 10, chunk_size=999)
        got = decode_dense_fast(vae.geo_decoder, tokens, 10, chunk_size=chunk)
    assert got.shape == want.shape == (2, 11, 11, 11)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_decode_dense_fast_rejects_bad_input():
    _, vae = _models(1)
    with pytest.raises(FlowlabError):
        decode_dense_fast(vae.geo_decoder, torch.zeros(1, 16, 32), 4, chunk_size=0)
    with pytest.raises(FlowlabError):
        decode_dense_fast(vae.geo_decoder, torch.zeros(16, 32), 4)


def test_compile_blocks_agrees_and_uncompiles():
    dit, _ = _models(2)
    keys = list(dit.state_dict())
    g = torch.Generator().manual_seed(5)
    x, c = torch.randn(2, 12, DIT.in_channels, generator=g), torch.randn(2, 5, DIT.context_in_dim, generator=g)
    t = torch.tensor([0.25, 0.75])
    with torch.no_grad():
        want = dit(x, t, c)
        got = compile_blocks(dit, backend="aot_eager")(x, t, c)
        assert list(dit.state_dict()) == keys
        assert all(b._compiled_call_impl is not None for b in dit.double_blocks)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        uncompile_blocks(dit)
        assert all(b._compiled_call_impl is None for b in dit.single_blocks)
        assert torch.equal(dit(x, t, c), want)
    with pytest.raises(FlowlabError):
        compile_blocks(torch.nn.Linear(2, 2))


def test_compiled_query_agrees():
    _, vae = _models(3)
    tokens = vae.decode_latents(torch.randn(1, *vae.latent_shape, generator=torch.Generator().manual_seed(6)))
    with torch.no_grad():
        want = decode_dense(vae.geo_decoder, tokens, 6)
        got = decode_dense_fast(vae.geo_decoder, tokens, 6, chunk_size=100,
                                query=compiled_query(vae.geo_decoder, backend="aot_eager"))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("slabs", [1, 3, 8])
def test_slab_marching_cubes_gives_the_readable_mesh(slabs):
    n = 41
    ax = torch.linspace(-1, 1, n)
    x, y, z = torch.meshgrid(ax, ax, ax, indexing="ij")
    vol = 0.6 - (x ** 2 + y ** 2 + z ** 2).sqrt() + 0.1 * torch.sin(9 * x) * torch.sin(7 * y) * torch.sin(5 * z)
    want = marching_cubes(vol)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        got = marching_cubes_parallel(vol, pool=pool, slabs=slabs)
    assert got.vertices.shape == want.vertices.shape and got.faces.shape == want.faces.shape
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(want.vertices).query(got.vertices)
    assert dist.max() < 1e-6 and len(set(idx.tolist())) == len(idx)  # a one-to-one match up to float32 round-off
    # the same triangles: each face's vertices map to a face of the readable mesh
    mapped = {tuple(sorted(f)) for f in idx[got.faces].tolist()}
    assert mapped == {tuple(sorted(f)) for f in want.faces.tolist()}
    with pytest.raises(FlowlabError):
        marching_cubes_parallel(torch.ones(5, 5, 5))


def test_graphed_velocity_refuses_cpu_and_bad_warmup():
    with pytest.raises(FlowlabError):
        GraphedVelocity(lambda x, t: x)(torch.zeros(1, 2), torch.zeros(1))
    with pytest.raises(FlowlabError):
        GraphedVelocity(lambda x, t: x, warmup=0)
    with pytest.raises(FlowlabError):
        GraphedVelocity(3)


def test_peer_benchmark_smoke(capsys):
    has_reference = importlib.util.find_spec("hy3dgen") is not None
    spec = importlib.util.spec_from_file_location("shape_peers", ROOT / "benchmarks" / "shape_peers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["shape_peers"] = mod
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke", "--skip", "mini"]) == 0
    out = capsys.readouterr().out
    assert "flowlab fast" in out and "identical mesh" in out
    assert importlib.util.find_spec("hy3dgen") is not None or not has_reference  # shells keep a valid spec
    if not has_reference:
        assert "hy3dgen part NOT RUN" in out
    else:
        assert "max|dlat| 0.00e+00" in out  # float32 on CPU: bitwise the reference


# ---- CUDA -----------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
def test_graphed_velocity_matches_eager_on_cuda():
    dit, _ = _models(4)
    dit = dit.cuda().half()
    cond = torch.randn(1, 5, DIT.context_in_dim, device="cuda", dtype=torch.float16)
    model = DiTVelocity(dit, cond, guidance=5.0)
    graphed = GraphedVelocity(model)
    for seed in (0, 1):
        x = torch.randn(1, 16, DIT.in_channels, device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
        x = x.half()
        t = torch.full((1,), 0.3 + 0.2 * seed, device="cuda")
        assert torch.equal(graphed(x, t), model(x, t))
    assert graphed.replays == 2
    with pytest.raises(FlowlabError):
        graphed(torch.zeros(1, 17, DIT.in_channels, device="cuda", dtype=torch.float16), t)


@pytest.mark.gpu
@cuda
def test_inductor_blocks_and_query_agree_on_cuda():
    dit, vae = _models(5)
    dit, vae = dit.cuda().half(), vae.cuda().half()
    g = torch.Generator("cuda").manual_seed(7)
    x = torch.randn(2, 64, DIT.in_channels, device="cuda", generator=g).half()
    c = torch.randn(2, 20, DIT.context_in_dim, device="cuda", generator=g).half()
    t = torch.tensor([0.25, 0.75], device="cuda", dtype=torch.float16)
    with torch.no_grad():
        want = dit(x, t, c).float()
        got = compile_blocks(dit)(x, t, c).float()
        uncompile_blocks(dit)
        assert float((got - want).norm() / want.norm()) < 1e-2
        tokens = vae.decode_latents(torch.randn(1, *vae.latent_shape, device="cuda", generator=g).half())
        v_want = decode_dense(vae.geo_decoder, tokens, 12)
        v_got = decode_dense_fast(vae.geo_decoder, tokens, 12, chunk_size=500, query=compiled_query(vae.geo_decoder))
        assert float((v_got - v_want).norm() / v_want.norm()) < 1e-2
