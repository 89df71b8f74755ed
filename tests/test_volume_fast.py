"""Hierarchical decoding and adaptive key / value selection against the dense decode (CPU, small inputs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from flowlab.errors import FlowlabError
from flowlab.shape.decode.fast import decode_dense_fast, decode_hierarchical_fast, selected_query
from flowlab.shape.decode.isosurface import marching_cubes_torch, mesh_agreement
from flowlab.shape.decode.mesh import marching_cubes
from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline
from flowlab.shape.models.vae import KV
from flowlab.shape.decode.volume import brick_order, decode_dense, decode_hierarchical, query_selected

pytestmark = pytest.mark.usefixtures("one_thread")

R, MIN_R, THRESHOLD = 48, 24, 0.05  # the tiny model's logits span about [-0.9, 0.2]


@pytest.fixture(scope="module")
def tiny():
    pipe = tiny_pipeline(0)
    with torch.no_grad():
        tokens = pipe.vae.decode_latents(pipe.sample_latents(tiny_cond(0), steps=4, seed=0))
        dense = decode_dense(pipe.vae.geo_decoder, tokens, R, chunk_size=5000)
    return pipe.vae.geo_decoder, tokens, dense


class Decoyed:
    """A copy of a real GeoDecoder with ``decoys`` extra latent tokens that no query attends to.

    Its query LayerNorm gets a bias of +3 on feature 0 of every head (so q_0 > 0 for every query); the
    real keys get +c on feature 0 and the decoys' keys are -c there (0 elsewhere). A real key then
    out-scores every decoy by 2 c q_0 / sqrt(D) (about 50 here): the decoys' weight is below e^-40, and
    the +c, the same for every real key, leaves the attention among the real keys unchanged.
    """

    def __init__(self, geo, decoys: int, c: float = 100.0) -> None:
        import copy

        self.geo, self.decoys, self.c = copy.deepcopy(geo), decoys, c
        with torch.no_grad():
            self.geo.cross_attn_decoder.attn.attention.q_norm.bias[0] += 3.0

    def __getattr__(self, name):
        return getattr(self.geo, name)

    def prepare(self, tokens):
        kv = self.geo.prepare(tokens)
        k = kv.k.clone()
        k[..., 0] += self.c
        b, h, _, d = k.shape
        zk = torch.zeros(b, h, self.decoys, d)
        zk[..., 0] = -self.c
        zv = 5 * torch.randn(b, h, self.decoys, d, generator=torch.Generator().manual_seed(7))  # a wrong pick shows
        return KV(k=torch.cat([zk, k], dim=2), v=torch.cat([zv, kv.v], dim=2))  # decoys first

    def query(self, points, kv):
        return self.geo.query(points, kv)


def test_brick_order_is_a_permutation_grouping_bricks():
    n = 11
    flat = torch.arange(n ** 3)[torch.randperm(n ** 3, generator=torch.Generator().manual_seed(0))[:500]]
    out = brick_order(flat, n, brick=4)
    assert torch.equal(out.sort().values, flat.sort().values)
    i, j, k = out // (n * n), out // n % n, out % n
    key = (i // 4 * 3 + j // 4) * 3 + k // 4
    assert bool((key[1:] >= key[:-1]).all())  # bricks in order, each brick's points together


def test_hierarchical_gives_the_dense_mesh(tiny):
    geo, tokens, dense = tiny
    calls = {"n": 0}
    hier = decode_hierarchical(geo, tokens, R, chunk_size=5000, min_resolution=MIN_R, threshold=THRESHOLD,
                               progress=lambda k: calls.__setitem__("n", calls["n"] + k))
    assert calls["n"] < 0.6 * (R + 1) ** 3  # fewer queries
    md, mh = marching_cubes(dense[0]), marching_cubes(hier[0])
    agree = mesh_agreement(mh, md, samples=None)
    assert (agree["vertices"], agree["faces"]) == (agree["ref_vertices"], agree["ref_faces"])
    assert agree["chamfer_rel"] < 1e-6
    # and on the torch marching cubes (the GPU path's), against the reference lewiner mesh of the dense volume
    mt = marching_cubes_torch(hier[0])
    assert mesh_agreement(mt, md, samples=None)["chamfer_rel"] < 1e-4


@pytest.mark.parametrize("chunk", [777, 4096, 200000])
def test_hierarchical_fast_equals_readable_hierarchical(tiny, chunk):
    geo, tokens, _ = tiny
    two = torch.cat([tokens, tokens.flip(1) * 0.9])  # a batch of 2 with a different second shape
    want = decode_hierarchical(geo, two, R, chunk_size=5000, min_resolution=MIN_R, threshold=THRESHOLD)
    got = decode_hierarchical_fast(geo, two, R, chunk_size=chunk, min_resolution=MIN_R, threshold=THRESHOLD)
    assert got.shape == want.shape == (2, R + 1, R + 1, R + 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_selected_query_with_every_token_is_the_dense_query(tiny):
    geo, tokens, _ = tiny
    kv = geo.prepare(tokens)
    pts = torch.rand(1, 256, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    n = kv.k.shape[2]
    assert torch.equal(query_selected(geo, pts, kv, topk=n, group=64), geo.query(pts, kv))


@torch.no_grad()
def test_selection_finds_the_tokens_that_matter(tiny):
    """Decoy tokens carry no attention weight: selecting as many tokens as there are real ones must give
    the dense answer; selecting fewer must not (the test can fail)."""
    geo, tokens, _ = tiny
    real = Decoyed(geo, 0)
    kv_real = real.prepare(tokens)
    dec = Decoyed(geo, 3 * kv_real.k.shape[2])
    kv = dec.prepare(tokens)
    pts = torch.rand(1, 512, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1
    pts = pts[:, brick_order(torch.arange(512), 8)]  # any order works with every query a probe
    want = real.query(pts, kv_real)
    torch.testing.assert_close(dec.query(pts, kv), want, rtol=0, atol=1e-5)  # decoys are negligible densely
    n = kv_real.k.shape[2]
    got = query_selected(dec, pts, kv, topk=n, group=64, probes=64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    short = query_selected(dec, pts, kv, topk=n // 4, group=64, probes=64)
    assert float((short - want).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="multiple"):
        query_selected(dec, pts[:, :100], kv, topk=n // 2, group=64)


def test_hierarchical_with_selection_gives_the_dense_mesh(tiny):
    geo, tokens, _ = tiny
    real, dec = Decoyed(geo, 0), Decoyed(geo, 64)
    n = geo.prepare(tokens).k.shape[2]
    dense = decode_dense(real, tokens, R, chunk_size=5000)
    q = selected_query(dec, n, group=128, probes=128)
    got = decode_hierarchical_fast(dec, tokens, R, chunk_size=1000, min_resolution=MIN_R, threshold=THRESHOLD, query=q)
    assert float(dense.min()) < 0 < float(dense.max())
    md, mg = marching_cubes(dense[0]), marching_cubes(got[0])
    agree = mesh_agreement(mg, md, samples=None)
    assert (agree["vertices"], agree["faces"]) == (agree["ref_vertices"], agree["ref_faces"])
    assert agree["chamfer_rel"] < 1e-5


def test_fast_decoders_reject_bad_input(tiny):
    geo, tokens, _ = tiny
    with pytest.raises(FlowlabError):
        decode_hierarchical_fast(geo, tokens, R, chunk_size=0)
    with pytest.raises(FlowlabError):
        decode_hierarchical_fast(geo, tokens[0], R)
    with pytest.raises(FlowlabError):
        selected_query(geo, 0)
    assert decode_dense_fast(geo, tokens, 8).shape == (1, 9, 9, 9)


def test_cli_defaults_to_hierarchical_and_gives_the_dense_mesh(tmp_path, capsys):
    trimesh = pytest.importorskip("trimesh")
    pytest.importorskip("yaml")
    from flowlab.cli import main
    from flowlab.shape.load.embedding import save_embedding
    from flowlab.shape.verify.tiny import write_checkpoint_folder

    write_checkpoint_folder(tiny_pipeline(0), tmp_path / "hunyuan3d-dit-v2-0")
    save_embedding(tiny_cond(0), tmp_path / "cond.safetensors")

    def run(out, *extra):
        return main(["shape", "--model", str(tmp_path / "hunyuan3d-dit-v2-0"), "--embedding",
                     str(tmp_path / "cond.safetensors"), "--out", str(tmp_path / out), "--steps", "4",
                     "--octree", "32", "--quiet", *extra])

    assert run("h.ply") == 0 and run("d.ply", "--decode", "dense") == 0 and run("t.ply", "--isosurface", "torch") == 0
    h, d, t = (trimesh.load(tmp_path / f, force="mesh", process=False) for f in ("h.ply", "d.ply", "t.ply"))
    assert len(d.faces) > 0 and h.vertices.shape == d.vertices.shape and np.array_equal(h.faces, d.faces)
    assert np.abs(h.vertices - d.vertices).max() < 1e-5
    diag = float(np.linalg.norm(d.vertices.max(0) - d.vertices.min(0)))
    from flowlab.shape.decode.isosurface import chamfer_distance

    assert chamfer_distance(t.vertices, d.vertices, samples=None) < 1e-4 * diag
    capsys.readouterr()
    assert run("x.ply", "--kv-topk", "0") != 0 and "--kv-topk 0: needs K >= 1" in capsys.readouterr().err
    assert run("x.ply", "--kv-topk", "8", "--decode", "dense") != 0
    assert "--decode hierarchical" in capsys.readouterr().err
    assert not (tmp_path / "x.ply").exists()


def test_pipeline_decode_options(tiny):
    pipe = tiny_pipeline(0)
    z = pipe.sample_latents(tiny_cond(0), steps=4, seed=0)
    hier = pipe.decode_volume(z, octree=24, decode="hierarchical")
    assert torch.equal(hier, pipe.decode_volume(z, octree=24))  # hierarchical is the default
    n = pipe.vae.config.num_latents
    seen = []
    allk = pipe.decode_volume(z, octree=24, decode="hierarchical", kv_topk=n, progress=seen.append)
    torch.testing.assert_close(allk, hier, rtol=1e-5, atol=1e-5)
    assert sum(seen) >= 13 ** 3 and all(k % 1024 == 0 for k in seen)
    with pytest.raises(FlowlabError, match="unknown decode"):
        pipe.decode_volume(z, octree=8, decode="octree")
    with pytest.raises(FlowlabError, match="unknown marching-cubes"):
        pipe.mesh(hier, method="dmc")
    a, b = pipe.mesh(hier, method="torch"), pipe.mesh(hier)
    assert mesh_agreement(a, b, samples=None)["chamfer_rel"] < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hierarchical_fast_on_cuda_matches_cpu(tiny):
    import copy

    geo, tokens, _ = tiny
    want = decode_hierarchical_fast(geo, tokens, R, chunk_size=4096, min_resolution=MIN_R, threshold=THRESHOLD)
    g = copy.deepcopy(geo).cuda()
    got = decode_hierarchical_fast(g, tokens.cuda(), R, chunk_size=4096, min_resolution=MIN_R, threshold=THRESHOLD)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)
    sel = decode_hierarchical_fast(g, tokens.cuda(), R, chunk_size=4096, min_resolution=MIN_R, threshold=THRESHOLD,
                                   query=selected_query(g, tokens.shape[1], group=1024))
    torch.testing.assert_close(sel.cpu(), want, rtol=1e-4, atol=1e-4)


def test_same_meshes_benchmark_on_the_shipped_mini_model(capsys):
    """benchmarks/shape_same_meshes.py on the trained mini model (tiny grid, few steps): it runs, and the options
    that are exact by construction are exact (hierarchical + skimage: the same mesh; torch marching cubes: Chamfer
    at float round-off)."""
    pytest.importorskip("flowlab.shape.load.mini")
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "shape_same_meshes.py"
    spec = importlib.util.spec_from_file_location("shape_same_meshes", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["shape_same_meshes"] = mod
    spec.loader.exec_module(mod)
    out = mod.main(["--shapes", "1", "--octree", "64", "--min-resolution", "16", "--steps", "20", "--topk", "64"])
    assert "hier + torch MC" in capsys.readouterr().out
    opts = out["options"]
    assert opts["dense + torch MC"]["chamfer_rel_max"] < 1e-6
    assert opts["hier + torch MC"]["query_fraction"] < 1.0
    assert set(opts) == {"dense + torch MC", "hier + skimage", "hier + torch MC", "hier + KV64/128 + torch MC"}
