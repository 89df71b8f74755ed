#!/usr/bin/env python3
"""flowlab's Hunyuan3D-2 shape model vs the reference (hy3dgen 2.0.2), same weights, same run.

    python3 benchmarks/shape_peers.py            # CUDA, fp16, released v2-0 sizes (+ mini, turbo, hierarchical)
    python3 benchmarks/shape_peers.py --smoke    # CPU, tiny configs, seconds (checks the script)

One seeded random state dict is loaded (strictly) into both flowlab's modules and hy3dgen's (the key names
match by design). Measured, each for hy3dgen, flowlab's readable path and flowlab's fast path
(flowlab.shape.fast: compiled blocks, a CUDA graph per step, no no-op step, kv once, large fixed chunks):

1. DiT step, CFG batch 2 (3072 latents + 1370 cond tokens): time, peak memory, max |v - v_ref|;
2. the 50-call CFG 5.0 sampling loop (hy3dgen: its own pipeline and scheduler, output_type='latent');
   max |latents - latents_ref|;
3. VAE + dense volume decode at octree R on the SAME latents (hy3dgen: its VanillaVolumeDecoder with 8000
   and a larger chunk size); max |logits - logits_ref| and the inside/outside agreement;
4. end to end: 50 steps + dense decode + marching cubes (hy3dgen: its pipeline, output_type='trimesh');
   vertex counts of both meshes;
5. mini DiT (CFG batch 2, 512 latents) and the guidance-distilled 5-step turbo path (consistency schedule);
6. hierarchical decoding on an analytic field with a real surface (a sphere and a torus, signed distance
   times a slope, behind the GeoDecoder interface): queries vs dense, mesh agreement, and the decode time
   that the query count implies for the full-size network (flowlab's measured dense cost per query).

Random weights have no surface: the geometry decoder's output bias is shifted by the same amount in both
implementations (to a high quantile of a coarse decode, so that a small fraction of space is inside).
Peak memory is per stage: the stage's own allocations plus that implementation's resident weights (both
implementations are resident at once; the other one's weights are not counted).

hy3dgen is imported through package shells (see :func:`import_reference`): its package ``__init__`` files pull
in image and mesh post-processing (cv2, pymeshlab, rembg, transformers) that the shape model never uses; the
shells skip them. Nothing of hy3dgen is stubbed that the timed code runs.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib
import importlib.machinery
import importlib.util
import json
import math
import multiprocessing as mp
import os
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import card_name, time_fn  # noqa: E402

from flowlab.sampling import sample  # noqa: E402
from flowlab.conventions import REVERSED  # noqa: E402
from flowlab.shape.dit import DIT_CONFIGS, DiTConfig, ShapeDiT  # noqa: E402
from flowlab.shape.fast import (GraphedVelocity, compile_blocks, compiled_query, decode_dense_fast,  # noqa: E402
                                marching_cubes_parallel, skip_noop_steps, uncompile_blocks)
from flowlab.shape.mesh import marching_cubes  # noqa: E402
from flowlab.shape.pipeline import DiTVelocity, ShapePipeline, initial_latents  # noqa: E402
from flowlab.shape.vae import KV, VAE_CONFIGS, ShapeVAE, VAEConfig  # noqa: E402
from flowlab.shape.volume import decode_dense, decode_hierarchical  # noqa: E402

SMOKE_DIT = DiTConfig(in_channels=8, context_in_dim=16, hidden_size=32, num_heads=4, depth=1, depth_single_blocks=1)
SMOKE_VAE = VAEConfig(num_latents=16, embed_dim=8, width=32, heads=4, num_decoder_layers=1)


# ---- the reference ----------------------------------------------------------------------------------

def import_reference() -> tuple[types.SimpleNamespace | None, str]:
    """hy3dgen's shape modules, or None and the reason.

    PACKAGE SHELLS (benchmark only): empty modules stand in for the packages ``hy3dgen``,
    ``hy3dgen.shapegen`` and ``hy3dgen.shapegen.models`` with their real ``__path__``, so that importing a
    submodule does not run those ``__init__`` files (they import preprocessors (cv2), postprocessors
    (pymeshlab), the image conditioner (transformers, torchvision) and texture code). The submodules the
    benchmark times (denoisers.hunyuan3ddit, autoencoders, schedulers, pipelines) are imported unchanged.
    """
    spec = importlib.util.find_spec("hy3dgen")
    if spec is None or not spec.submodule_search_locations:
        return None, "hy3dgen is not importable here"
    root = Path(list(spec.submodule_search_locations)[0])
    saved = {k: sys.modules.get(k) for k in ("hy3dgen", "hy3dgen.shapegen", "hy3dgen.shapegen.models")}
    for name, path in (("hy3dgen", root), ("hy3dgen.shapegen", root / "shapegen"),
                       ("hy3dgen.shapegen.models", root / "shapegen" / "models")):
        if name not in sys.modules:
            shell = types.ModuleType(name, "package shell inserted by benchmarks/shape_peers.py")
            shell.__path__ = [str(path)]
            shell.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            shell.__spec__.submodule_search_locations = [str(path)]
            sys.modules[name] = shell
    try:
        dit_mod = importlib.import_module("hy3dgen.shapegen.models.denoisers.hunyuan3ddit")
        ae = importlib.import_module("hy3dgen.shapegen.models.autoencoders")
        schedulers = importlib.import_module("hy3dgen.shapegen.schedulers")
        pipelines = importlib.import_module("hy3dgen.shapegen.pipelines")
    except Exception as e:  # noqa: BLE001 - report any import failure, run flowlab alone
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
        return None, f"hy3dgen import failed: {type(e).__name__}: {str(e)[:200]}"
    try:
        from importlib.metadata import version
        ver = version("hy3dgen")
    except Exception:  # noqa: BLE001
        ver = "?"
    return types.SimpleNamespace(DiT=dit_mod.Hunyuan3DDiT, VAE=ae.ShapeVAE, Vanilla=ae.VanillaVolumeDecoder,
                                 schedulers=schedulers, pipelines=pipelines, version=ver), ""


class _Cond(torch.nn.Module):
    """Stands in for the reference's DINOv2 conditioner: a fixed embedding, zeros unconditional."""

    def __init__(self, cond: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("cond", cond)

    def forward(self, image, **kw):
        return {"main": self.cond.expand(image.shape[0], -1, -1)}

    def unconditional_embedding(self, batch_size, **kw):
        return {"main": torch.zeros(batch_size, *self.cond.shape[1:], dtype=self.cond.dtype, device=self.cond.device)}


def _processor(img, **kw):
    return {"image": torch.zeros(1, 3, 8, 8)}


def dit_params(c: DiTConfig) -> dict:
    return dict(in_channels=c.in_channels, context_in_dim=c.context_in_dim, hidden_size=c.hidden_size,
                mlp_ratio=c.mlp_ratio, num_heads=c.num_heads, depth=c.depth, depth_single_blocks=c.depth_single_blocks,
                axes_dim=[c.hidden_size // c.num_heads], theta=10000, qkv_bias=c.qkv_bias, time_factor=c.time_factor,
                guidance_embed=c.guidance_embed)


def vae_params(c: VAEConfig) -> dict:
    return dict(num_latents=c.num_latents, embed_dim=c.embed_dim, width=c.width, heads=c.heads,
                num_decoder_layers=c.num_decoder_layers, num_freqs=c.num_freqs, include_pi=c.include_pi,
                qkv_bias=c.qkv_bias, qk_norm=c.qk_norm, scale_factor=c.scale_factor,
                geo_decoder_downsample_ratio=c.geo_decoder_downsample_ratio,
                geo_decoder_mlp_expand_ratio=c.geo_decoder_mlp_expand_ratio,
                geo_decoder_ln_post=c.geo_decoder_ln_post)


# ---- weights ------------------------------------------------------------------------------------------

def seeded_state(module: torch.nn.Module, seed: int, device: torch.device, dtype: torch.dtype) -> dict:
    """A random state dict for ``module``'s keys: matrices and biases N(0, 0.02), norm scales 1 + N(0, 0.02)."""
    g = torch.Generator(device=device).manual_seed(seed)
    sd = {}
    for k, p in module.state_dict().items():
        x = torch.randn(p.shape, generator=g, device=device, dtype=torch.float32) * 0.02
        if p.ndim == 1 and (k.endswith("scale") or ("norm" in k or "ln_" in k) and k.endswith("weight")):
            x += 1
        sd[k] = x.to(dtype)
    return sd


def build(cls, cfg, sd: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    with torch.device(device):
        m = cls(cfg) if isinstance(cfg, (DiTConfig, VAEConfig)) else cls(**cfg)
    m = m.to(dtype).eval()
    m.load_state_dict(sd, strict=True)
    return m


def nbytes(m: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in m.parameters()) + sum(
        b.numel() * b.element_size() for b in m.buffers())


# ---- measuring ----------------------------------------------------------------------------------------

class Stage:
    """Time (median of reps, CUDA events) and peak memory (stage allocations + resident weights) of ``fn``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, fn, weights: int, *, warmup: int = 1, reps: int = 3):
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()  # before the warm-up: a graph captured there counts too
            for _ in range(warmup):
                fn()
            t = time_fn(fn, self.device, warmup=0, reps=reps)
            peak = (torch.cuda.max_memory_allocated() - base + weights) / 2 ** 30
        else:
            t = time_fn(fn, self.device, warmup=warmup, reps=reps)
            peak = float("nan")
        return t.median / 1e3, peak, t.result


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def dstr(a: torch.Tensor, b: torch.Tensor) -> str:
    """``max |a - b|`` and that over ``max |b|``."""
    d = maxdiff(a, b)
    return f"{d:.2e} (rel {d / max(float(b.double().abs().max()), 1e-30):.1e})"


def _warm_worker(vol) -> int:
    from skimage import measure

    return len(measure.marching_cubes(vol, 0.5, method="lewiner")[0])


def sdpa_choice(fn, device: torch.device) -> tuple[str | None, dict]:
    """Time ``fn`` (eager) under PyTorch's flash and cuDNN attention backends; the faster one's name and the times.

    None on CPU. A backend that cannot run the shapes counts as infinitely slow.
    """
    if device.type != "cuda":
        return None, {}
    from torch.nn.attention import SDPBackend, sdpa_kernel

    times = {}
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(be):
                times[name] = time_fn(fn, device, warmup=1, reps=3).median
        except Exception as e:  # noqa: BLE001 - not available for these shapes / this build
            print(f"  ({name} attention unavailable: {type(e).__name__}: {str(e)[:100]})", flush=True)
            times[name] = float("inf")
    return min(times, key=times.get), times


def with_sdpa(fn, name: str | None):
    """``fn`` called inside ``sdpa_kernel(<name>)`` (compilation and graph capture then use that backend)."""
    if name is None:
        return fn
    from torch.nn.attention import SDPBackend, sdpa_kernel

    be = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[name]

    def wrapped(*a):
        with sdpa_kernel(be):
            return fn(*a)
    return wrapped


def floors(device: torch.device, att: dict, n_lat: int, n_cond: int, chunk: int, n_kv: int) -> dict:
    """Measured floors of the two big stages: their attention and matrix-product work timed alone.

    DiT step (CFG batch 2): 48 joint attentions over ``n_lat + n_cond`` tokens (16 heads of 64) and the
    linear layers' FLOPs at the rate of a representative fp16 product. Dense decode: one cross-attention
    of a ``chunk`` of queries over ``n_kv`` latents and 21 MFLOP of products per query.
    """
    from torch.nn.attention import sdpa_kernel

    g = torch.Generator(device=device).manual_seed(0)
    out = {}

    def rnd(*shape):
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float16)

    def best_attn(q, k, v) -> float:
        best = float("inf")
        for name, be in att.items():
            try:
                with sdpa_kernel(be):
                    best = min(best, time_fn(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), device,
                                             warmup=2, reps=5).median)
            except Exception:  # noqa: BLE001
                pass
        return best / 1e3

    def gemm_rate(m: int) -> float:
        a, b = rnd(m, 1024), rnd(1024, 4096)
        sec = time_fn(lambda: a @ b, device, warmup=2, reps=5).median / 1e3
        return 2 * m * 1024 * 4096 / sec

    n = n_lat + n_cond
    q = rnd(2, 16, n, 64)
    t_att = 48 * best_attn(q, q, q)
    att_flop = 48 * 4 * 2 * 16 * n * n * 64
    lin = 2 * 2 * n * (16 * 12 + 32 * 12.5) * 1024 * 1024  # 16 double (12 M weights a token), 32 single (12.5 M)
    rate = gemm_rate(2 * n)
    out["dit"] = dict(attention_ms=t_att * 1e3, attention_tflops=att_flop / t_att / 1e12, linear_ms=lin / rate * 1e3,
                      linear_tflops=rate / 1e12)
    qd, kd = rnd(1, 16, chunk, 64), rnd(1, 16, n_kv, 64)
    t_att = best_attn(qd, kd, kd)
    rate = gemm_rate(chunk)
    out["decode_chunk"] = dict(attention_ms=t_att * 1e3, attention_tflops=4 * chunk * n_kv * 1024 / t_att / 1e12,
                               linear_ms=21e6 * chunk / rate * 1e3, linear_tflops=rate / 1e12)
    return out


# ---- an analytic field behind the GeoDecoder interface --------------------------------------------------

class AnalyticField:
    """A sphere and a torus as an occupancy logit ``slope * (inside distance)``; positive inside.

    Offers the two methods the volume decoders call: ``prepare(tokens) -> KV`` (ignored here) and
    ``query(points (B, P, 3) or (P, 3), kv) -> logits (B, P)``. ``calls`` counts the queried points.
    """

    def __init__(self, slope: float = 100.0) -> None:
        self.slope = slope
        self.queries = 0

    def prepare(self, tokens: torch.Tensor) -> KV:
        return KV(k=tokens[:, None], v=tokens[:, None])

    def query(self, points: torch.Tensor, kv: KV) -> torch.Tensor:
        if points.ndim == 2:
            points = points[None].expand(kv.k.shape[0], -1, -1)
        self.queries += points.shape[1]
        p = points.float()
        sphere = 0.45 - (p - torch.tensor([-0.35, 0.0, 0.0], device=p.device)).norm(dim=-1)
        q = p - torch.tensor([0.4, 0.1, 0.0], device=p.device)
        ring = torch.stack((q[..., :2].norm(dim=-1) - 0.4, q[..., 2]), dim=-1).norm(dim=-1)
        torus = 0.15 - ring
        return self.slope * torch.maximum(sphere, torus)


# ---- the benchmark ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny configs, seconds")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--octree", type=int, default=384)
    ap.add_argument("--ref-chunks", type=int, nargs=2, default=[8000, 200000], help="reference decode chunk sizes")
    ap.add_argument("--chunk-size", type=int, nargs="+", default=[32768, 131072],
                    help="flowlab fast decode chunk sizes (the first is used end to end)")
    ap.add_argument("--mc-workers", type=int, default=min(16, os.cpu_count() or 1),
                    help="processes for the slab-parallel marching cubes (0: serial slabs)")
    ap.add_argument("--inside", type=float, default=0.02, help="fraction of the coarse grid put inside (bias shift)")
    ap.add_argument("--no-compile", action="store_true", help="fast path without torch.compile (graphs only)")
    ap.add_argument("--no-peer", action="store_true", help="skip hy3dgen")
    ap.add_argument("--skip", nargs="*", default=[], choices=["mini", "turbo", "hier", "e2e", "readable-decode"])
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)

    if args.smoke:
        device, dtype = torch.device("cpu"), torch.float32
        dcfg, vcfg, mini_dcfg, mini_vcfg = SMOKE_DIT, SMOKE_VAE, SMOKE_DIT, SMOKE_VAE
        n_cond, args.steps, args.octree = 10, 4, 16
        args.ref_chunks, args.chunk_size, args.mc_workers = [1000, 3000], [2048], 0
        torch.set_num_threads(1)
        compile_ok = False  # compiling costs tens of seconds on a CPU: tests/test_shape_fast.py covers it
        reps = 1
    else:
        if not torch.cuda.is_available():
            print("no CUDA GPU visible; run with --smoke to check the script on CPU", file=sys.stderr)
            return 1
        device, dtype = torch.device("cuda"), torch.float16
        dcfg, vcfg = DIT_CONFIGS["v2-0"], VAE_CONFIGS["v2-0"]
        mini_dcfg, mini_vcfg = DIT_CONFIGS["v2-mini"], VAE_CONFIGS["v2-mini"]
        n_cond = 1370
        compile_ok = not args.no_compile
        reps = 5
    pool = None
    if args.mc_workers > 0:
        # forked before CUDA starts; skimage holds the GIL, so marching cubes runs in processes
        pool = cf.ProcessPoolExecutor(args.mc_workers, mp_context=mp.get_context("fork"))
        warm = torch.zeros(3, 3, 3)
        warm[1, 1, 1] = 1.0
        list(pool.map(_warm_worker, [warm.numpy()] * args.mc_workers))
    ref, why = (None, "--no-peer given") if args.no_peer else import_reference()
    stage = Stage(device)
    rows: list[dict] = []
    res: dict = {"card": card_name(device), "torch": torch.__version__, "dtype": str(dtype).replace("torch.", ""),
                 "hy3dgen": ref.version if ref else None, "rows": rows}
    print(f"shape peers: {res['card']}, torch {torch.__version__}, {res['dtype']}, "
          f"hy3dgen {ref.version if ref else 'NOT RUN (' + why + ')'}", flush=True)

    def row(what: str, impl: str, sec: float, peak: float, diff: str = "") -> None:
        rows.append(dict(what=what, impl=impl, seconds=sec, peak_gib=peak if peak == peak else None, diff=diff))
        mem = f"{peak:6.2f} GiB" if peak == peak else "      -   "
        print(f"  {what:<34} {impl:<26} {sec * 1e3:10.1f} ms  {mem}  {diff}", flush=True)

    torch.backends.cuda.matmul.allow_tf32 = True
    g = torch.Generator("cpu").manual_seed(0)
    with torch.inference_mode():
        # ---- v2-0: the same weights in both ----------------------------------------------------------
        proto = ShapeDiT(dcfg) if args.smoke else None
        if proto is None:
            with torch.device("meta"):
                proto = ShapeDiT(dcfg)
        sd_dit = seeded_state(proto, 0, device, dtype)
        with torch.device("meta"):
            vproto = ShapeVAE(vcfg)
        sd_vae = seeded_state(vproto, 1, device, dtype)
        del proto, vproto
        dit = build(ShapeDiT, dcfg, sd_dit, device, dtype)
        vae = build(ShapeVAE, vcfg, sd_vae, device, dtype)
        w_f = nbytes(dit) + nbytes(vae)
        if ref:
            rdit = build(ref.DiT, dit_params(dcfg), sd_dit, device, dtype)
            rvae = build(ref.VAE, vae_params(vcfg), sd_vae, device, dtype)
            w_r = nbytes(rdit) + nbytes(rvae)
        del sd_dit, sd_vae
        cond = torch.randn(1, n_cond, dcfg.context_in_dim, generator=g).to(device, dtype)
        x1 = initial_latents((1, vcfg.num_latents, dcfg.in_channels), 0, dtype, device)
        x2, c2 = torch.cat([x1, x1]), torch.cat([cond, torch.zeros_like(cond)])
        t2 = torch.full((2,), 0.5, device=device, dtype=dtype)
        what = f"DiT step CFG b2 ({vcfg.num_latents}+{n_cond} tok)"
        v_ref = None
        if ref:
            sec, peak, v_ref = stage(lambda: rdit(x2, t2, {"main": c2}), w_r, reps=reps)
            row(what, "hy3dgen", sec, peak)
        sec, peak, v = stage(lambda: dit(x2, t2, c2), w_f, reps=reps)
        row(what, "flowlab readable", sec, peak, f"max|dv| {dstr(v, v_ref)}" if ref else "")

        att_dit, att_times = sdpa_choice(lambda: dit(x2, t2, c2), device)
        if att_dit:
            print(f"  (eager DiT step by attention backend: " + ", ".join(f"{k} {v:.1f} ms" for k, v in att_times.items())
                  + f"; fast path uses {att_dit})", flush=True)
        res["sdpa_dit"] = [att_dit, att_times]
        pipe = ShapePipeline(dit=dit, vae=vae, device=device, dtype=dtype)
        steps = args.steps
        what = f"{steps}-call CFG 5.0 loop"
        lat_ref = None
        if ref:
            def ref_pipe(dit_m, vae_m, turbo: bool = False):
                sched = (ref.schedulers.ConsistencyFlowMatchEulerDiscreteScheduler(pcm_timesteps=100) if turbo
                         else ref.schedulers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000))
                return ref.pipelines.Hunyuan3DDiTFlowMatchingPipeline(
                    vae=vae_m, model=dit_m, scheduler=sched, conditioner=_Cond(cond), image_processor=_processor,
                    device=device, dtype=dtype)
            rp = ref_pipe(rdit, rvae)

            def ref_loop():
                return rp(image=object(), num_inference_steps=steps, guidance_scale=5.0,
                          generator=torch.Generator().manual_seed(0), output_type="latent", enable_pbar=False)
            sec, peak, lat_ref = stage(ref_loop, w_r, warmup=0, reps=1)
            row(what, "hy3dgen (its pipeline)", sec, peak)
        sec, peak, lat = stage(lambda: pipe.sample_latents(cond, steps=steps, guidance=5.0, seed=0), w_f,
                               warmup=0, reps=1)
        row(what, "flowlab readable", sec, peak, f"max|dlat| {dstr(lat, lat_ref)}" if ref else "")

        # ---- fast DiT -------------------------------------------------------------------------------
        if device.type == "cuda":
            torch.cuda.synchronize()
            cap_base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        if compile_ok:
            compile_blocks(dit)
        model = with_sdpa(DiTVelocity(dit, cond, guidance=5.0), att_dit)
        fast_step = GraphedVelocity(model) if device.type == "cuda" else model
        xs, ts1 = x1.clone(), torch.full((1,), 0.5, device=device, dtype=torch.float32)
        v_fast = fast_step(xs, ts1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        res["compile_and_capture_s"] = time.perf_counter() - t0
        # the graph's memory pool was allocated at capture: count that peak in the fast rows
        cap_peak = (torch.cuda.max_memory_allocated() - cap_base + w_f) / 2 ** 30 if device.type == "cuda" else 0.0
        print(f"  (fast path: compile {'on' if compile_ok else 'off'}, CUDA graph "
              f"{'on' if device.type == 'cuda' else 'off'}; compile + capture {res['compile_and_capture_s']:.1f} s)",
              flush=True)
        v_read = DiTVelocity(uncompile_blocks(dit), cond, guidance=5.0)(xs, ts1)
        if compile_ok:
            compile_blocks(dit)
        sec, peak, _ = stage(lambda: fast_step(xs, ts1), w_f, reps=reps)
        row("DiT step CFG b2 (+ CFG combine)", "flowlab fast", sec, max(peak, cap_peak),
            f"max|dv| vs readable {dstr(v_fast, v_read)}")
        ts = skip_noop_steps(pipe.schedule(steps))

        def fast_loop(step=fast_step, x0=x1, sched=ts):
            return sample(step, x0.clone(), sched, REVERSED, check_finite=False)
        sec, peak, lat_fast = stage(fast_loop, w_f, warmup=0, reps=1)
        row(what, f"flowlab fast ({ts.numel() - 1} calls)", sec, max(peak, cap_peak),
            (f"max|dlat| {dstr(lat_fast, lat_ref)}" if ref else "") +
            f" vs readable {dstr(lat_fast, lat)}")
        res["latents_finite"] = bool(torch.isfinite(lat_fast).all())

        # ---- VAE + dense decode on the same latents -----------------------------------------------
        tokens = vae.decode_latents(lat)
        coarse = decode_dense(vae.geo_decoder, tokens, 32, chunk_size=40000)
        shift = torch.quantile(coarse.float().flatten(), 1.0 - args.inside)
        vae.geo_decoder.output_proj.bias -= shift.to(dtype)
        if ref:
            rvae.geo_decoder.output_proj.bias -= shift.to(dtype)
            rtokens = rvae(1.0 / rvae.scale_factor * lat)
            row("VAE post_kl + transformer", "hy3dgen", *stage(lambda: rvae(1.0 / rvae.scale_factor * lat), w_r,
                                                              reps=reps)[:2])
        sec, peak, _ = stage(lambda: vae.decode_latents(lat), w_f, reps=reps)
        row("VAE post_kl + transformer", "flowlab", sec, peak,
            f"max|dtok| {dstr(tokens, rtokens)}" if ref else "")
        r = args.octree
        what = f"dense decode R={r} ({(r + 1) ** 3 / 1e6:.1f} M pts)"
        vol_ref = None
        if ref:
            for ch in args.ref_chunks:
                sec, peak, vol_ref = stage(lambda ch=ch: ref.Vanilla()(rtokens, rvae.geo_decoder, bounds=1.01,
                                                                        num_chunks=ch, octree_resolution=r,
                                                                        enable_pbar=False), w_r, warmup=0, reps=1)
                row(what, f"hy3dgen, {ch} a chunk", sec, peak)
        if "readable-decode" not in args.skip:
            big = max(args.chunk_size)
            sec, peak, vol_read = stage(lambda: decode_dense(vae.geo_decoder, tokens, r, chunk_size=big),
                                        w_f, warmup=0, reps=1)
            row(what, f"flowlab readable, {big}", sec, peak,
                f"max|dlogit| {dstr(vol_read, vol_ref)}" if ref else "")
            del vol_read
        probe = torch.rand(1, min(args.chunk_size[0], (r + 1) ** 3), 3, device=device) * 2 - 1
        pkv = vae.geo_decoder.prepare(tokens)
        att_dec, att_times = sdpa_choice(lambda: vae.geo_decoder.query(probe, pkv), device)
        if att_dec:
            print(f"  (eager decode chunk by attention backend: " + ", ".join(f"{k} {v:.1f} ms" for k, v in
                  att_times.items()) + f"; fast path uses {att_dec})", flush=True)
        res["sdpa_decode"] = [att_dec, att_times]
        del probe, pkv
        query = with_sdpa(compiled_query(vae.geo_decoder) if compile_ok else
                          (lambda p, k, v: vae.geo_decoder.query(p, KV(k=k, v=v))), att_dec)
        for ch in args.chunk_size:
            t0 = time.perf_counter()
            # compile (or warm up) at this chunk's shape, outside the timed decode
            decode_dense_fast(vae.geo_decoder, tokens, max(1, math.ceil(ch ** (1 / 3))), chunk_size=ch, query=query)
            res[f"decode_compile_s_{ch}"] = time.perf_counter() - t0
            sec, peak, vol = stage(lambda ch=ch: decode_dense_fast(vae.geo_decoder, tokens, r, chunk_size=ch,
                                                                   query=query), w_f, warmup=0, reps=1)
            sign = f" sign agree {float(((vol > 0) == (vol_ref > 0)).float().mean()) * 100:.4f}%" if ref else ""
            row(what, f"flowlab fast, {ch}", sec, peak,
                (f"max|dlogit| {dstr(vol, vol_ref)}" if ref else "") + sign)
            del vol
        vol = decode_dense_fast(vae.geo_decoder, tokens, r, chunk_size=args.chunk_size[0], query=query)
        res["inside_fraction"] = float((vol > 0).float().mean())
        t0 = time.perf_counter()
        try:
            mesh = marching_cubes(vol[0])
            res["mesh_same_latents"] = {"flowlab": int(mesh.vertices.shape[0])}
        except Exception as e:  # noqa: BLE001
            res["mesh_same_latents"] = {"error": str(e)[:120]}
        res["marching_cubes_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            pmesh = marching_cubes_parallel(vol[0], pool=pool)
            res["mesh_same_latents"]["flowlab_slab_mc"] = int(pmesh.vertices.shape[0])
        except Exception as e:  # noqa: BLE001
            res["mesh_same_latents"]["slab_error"] = str(e)[:120]
        res["marching_cubes_slabs_s"] = time.perf_counter() - t0
        if ref and "flowlab" in res["mesh_same_latents"]:
            res["mesh_same_latents"]["hy3dgen_volume"] = int(marching_cubes(vol_ref[0]).vertices.shape[0])
        print(f"  marching cubes (CPU, skimage + trimesh merge): readable {res['marching_cubes_s']:.2f} s, "
              f"slabs on {args.mc_workers} processes {res['marching_cubes_slabs_s']:.2f} s; vertices on the same "
              f"latents {res['mesh_same_latents']}; inside {res['inside_fraction'] * 100:.2f}%", flush=True)
        del coarse

        # ---- end to end -------------------------------------------------------------------------------
        if "e2e" not in args.skip:
            what = f"end to end ({steps} steps, R={r}, MC)"
            verts_ref = None
            if ref:
                def ref_e2e():
                    return rp(image=object(), num_inference_steps=steps, guidance_scale=5.0,
                              generator=torch.Generator().manual_seed(0), octree_resolution=r,
                              num_chunks=args.ref_chunks[0], output_type="trimesh", enable_pbar=False)[0]
                sec, peak, m_ref = stage(ref_e2e, w_r, warmup=0, reps=1)
                verts_ref = None if m_ref is None else int(m_ref.vertices.shape[0])
                row(what, "hy3dgen (its pipeline)", sec, peak, f"vertices {verts_ref}")

            def fast_e2e():
                x = sample(fast_step, initial_latents(x1.shape, 0, dtype, device), ts, REVERSED, check_finite=False)
                logits = decode_dense_fast(vae.geo_decoder, vae.decode_latents(x), r, chunk_size=args.chunk_size[0],
                                           query=query)
                return marching_cubes_parallel(logits[0], pool=pool)
            sec, peak, m = stage(fast_e2e, w_f, warmup=0, reps=1)
            vf = int(m.vertices.shape[0])
            rel = f" ({(vf - verts_ref) / verts_ref * 100:+.3f}%)" if verts_ref else ""
            row(what, f"flowlab fast ({args.chunk_size[0]}, MC slabs)", sec, peak, f"vertices {vf}{rel}")
            res["e2e_vertices"] = {"flowlab": vf, "hy3dgen": verts_ref}

        uncompile_blocks(dit)
        del fast_step, model, dit, vae, pipe
        if ref:
            del rdit, rvae, rp
        if device.type == "cuda":
            torch.cuda.empty_cache()

        # ---- hierarchical decoding on a field with a surface -----------------------------------------
        if "hier" not in args.skip:
            field = AnalyticField()
            tok = torch.zeros(1, 4, 4, device=device)
            dense = decode_dense(field, tok, r, chunk_size=1 << 20)
            field.queries = 0
            hier = decode_hierarchical(field, tok, r, chunk_size=1 << 20, min_resolution=min(63, r // 4))
            nq = field.queries
            md, mh = marching_cubes(dense[0]), marching_cubes(hier[0])
            vd, vh = int(md.vertices.shape[0]), int(mh.vertices.shape[0])
            same = md.vertices.shape == mh.vertices.shape and bool((abs(md.vertices - mh.vertices) < 1e-6).all())
            dense_q = (r + 1) ** 3
            per_q = min((x["seconds"] for x in rows if x["impl"].startswith("flowlab fast, ")),
                        default=float("nan")) / dense_q
            res["hierarchical"] = dict(queries=nq, dense_queries=dense_q, ratio=dense_q / nq, vertices_dense=vd,
                                       vertices_hier=vh, identical_mesh=same, implied_seconds=nq * per_q)
            print(f"  hierarchical R={r} (analytic sphere + torus): {nq / 1e6:.2f} M queries vs {dense_q / 1e6:.1f} M "
                  f"dense ({dense_q / nq:.1f}x fewer); vertices {vh} vs dense {vd} "
                  f"({'identical mesh' if same else 'meshes differ'}); implied full-network decode "
                  f"{nq * per_q * 1e3:.0f} ms at flowlab's fast dense cost per query", flush=True)

        # ---- mini and turbo --------------------------------------------------------------------------
        for name in ("mini", "turbo"):
            if name in args.skip:
                continue
            if name == "mini":
                dc, vc, seed = mini_dcfg, mini_vcfg, 10
            else:
                dc = DiTConfig(**{**dcfg.as_dict(), "guidance_embed": True})
                vc, seed = vcfg, 20
            with torch.device("meta"):
                proto = ShapeDiT(dc)
            if args.smoke:
                proto = ShapeDiT(dc)
            sd = seeded_state(proto, seed, device, dtype)
            del proto
            d = build(ShapeDiT, dc, sd, device, dtype)
            rd = build(ref.DiT, dit_params(dc), sd, device, dtype) if ref else None
            del sd
            w1 = nbytes(d)
            xin = initial_latents((1, vc.num_latents, dc.in_channels), 0, dtype, device)
            if name == "mini":
                xb, cb, tb = torch.cat([xin, xin]), torch.cat([cond, torch.zeros_like(cond)]), t2
                what = f"mini DiT step CFG b2 ({vc.num_latents} lat)"
                vr = None
                if ref:
                    sec, peak, vr = stage(lambda: rd(xb, tb, {"main": cb}), w1, reps=reps)
                    row(what, "hy3dgen", sec, peak)
                sec, peak, vm = stage(lambda: d(xb, tb, cb), w1, reps=reps)
                row(what, "flowlab readable", sec, peak, f"max|dv| {dstr(vm, vr)}" if ref else "")
                if compile_ok:
                    compile_blocks(d)
                mstep = with_sdpa(DiTVelocity(d, cond, guidance=5.0), att_dit)
                mstep = GraphedVelocity(mstep) if device.type == "cuda" else mstep
                sec, peak, _ = stage(lambda: mstep(xin, ts1), w1, reps=reps)
                row(what, "flowlab fast", sec, peak)
                sec, peak, _ = stage(lambda: sample(mstep, xin.clone(), ts, REVERSED, check_finite=False), w1,
                                     warmup=0, reps=1)
                row(f"mini {steps}-call loop", f"flowlab fast ({ts.numel() - 1} calls)", sec, peak)
            else:
                what = "turbo: guidance-embedded, 5 steps"
                # latents only: the pipelines need a VAE for the latent shape alone, so a narrow one with that shape
                shape_vae = VAEConfig(num_latents=vc.num_latents, embed_dim=dc.in_channels, width=32, heads=4,
                                      num_decoder_layers=1)
                lr = None
                if ref:
                    tp = ref.pipelines.Hunyuan3DDiTFlowMatchingPipeline(
                        vae=ref.VAE(**vae_params(shape_vae)), model=rd,
                        scheduler=ref.schedulers.ConsistencyFlowMatchEulerDiscreteScheduler(pcm_timesteps=100),
                        conditioner=_Cond(cond), image_processor=_processor, device=device, dtype=dtype)

                    def tloop():
                        return tp(image=object(), num_inference_steps=5, guidance_scale=5.0,
                                  generator=torch.Generator().manual_seed(0), output_type="latent",
                                  enable_pbar=False)
                    sec, peak, lr = stage(tloop, w1, warmup=1, reps=reps)
                    row(what, "hy3dgen (its pipeline)", sec, peak)
                tpipe = ShapePipeline(dit=d, vae=ShapeVAE(shape_vae), scheduler="consistency", pcm_timesteps=100,
                                      device=device, dtype=dtype)
                sec, peak, lt = stage(lambda: tpipe.sample_latents(cond, steps=5, guidance=5.0, seed=0), w1,
                                      warmup=1, reps=reps)
                row(what, "flowlab readable", sec, peak, f"max|dlat| {dstr(lt, lr)}" if ref else "")
                if compile_ok:
                    compile_blocks(d)
                tstep = with_sdpa(DiTVelocity(d, cond, guidance=5.0), att_dit)
                tstep = GraphedVelocity(tstep) if device.type == "cuda" else tstep
                tts = tpipe.schedule(5)
                sec, peak, ltf = stage(lambda: sample(tstep, xin.clone(), tts, REVERSED, check_finite=False), w1,
                                       warmup=1, reps=reps)
                row(what, "flowlab fast", sec, peak,
                    (f"max|dlat| {dstr(ltf, lr)}" if ref else "") + f" vs readable {dstr(ltf, lt)}")
            uncompile_blocks(d)
            del d, rd
            if device.type == "cuda":
                torch.cuda.empty_cache()

    if device.type == "cuda":
        from torch.nn.attention import SDPBackend

        fl = floors(device, {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION},
                    vcfg.num_latents, n_cond, args.chunk_size[0], vcfg.num_latents)
        res["floors"] = fl
        d, c = fl["dit"], fl["decode_chunk"]
        n_chunks = math.ceil((args.octree + 1) ** 3 / args.chunk_size[0])
        print(f"  floors: DiT step = attention {d['attention_ms']:.1f} ms ({d['attention_tflops']:.0f} TFLOP/s) + "
              f"linear layers {d['linear_ms']:.1f} ms ({d['linear_tflops']:.0f} TFLOP/s) = "
              f"{d['attention_ms'] + d['linear_ms']:.1f} ms before any element-wise work; dense decode = "
              f"{n_chunks} chunks x (attention {c['attention_ms']:.2f} ms ({c['attention_tflops']:.0f} TFLOP/s) + "
              f"products {c['linear_ms']:.2f} ms) = {n_chunks * (c['attention_ms'] + c['linear_ms']) / 1e3:.2f} s",
              flush=True)

    # ---- summary ---------------------------------------------------------------------------------------
    def pick(what_prefix: str, impl_prefix: str) -> float | None:
        for x in rows:
            if x["what"].startswith(what_prefix) and x["impl"].startswith(impl_prefix):
                return x["seconds"]
        return None
    print(f"\nsummary ({res['card']}): flowlab fast vs hy3dgen (ratio = hy3dgen time / flowlab time)")
    for label, wp, ref_impl in (("DiT step", "DiT step CFG b2 (", "hy3dgen"),
                                (f"{steps}-call loop", f"{steps}-call", "hy3dgen"),
                                ("dense decode", "dense decode", f"hy3dgen, {args.ref_chunks[0]}"),
                                ("end to end", "end to end", "hy3dgen")):
        f = pick(wp if label != "DiT step" else "DiT step CFG b2 (+", "flowlab fast")
        if label == "dense decode":  # the fastest of the fast chunk sizes
            f = min((x["seconds"] for x in rows if x["what"].startswith(wp) and x["impl"].startswith("flowlab fast")),
                    default=None)
        p = pick(wp, ref_impl)
        if f is not None:
            ratio = f"{p / f:5.2f}x" if p else "  -  "
            print(f"  {label:<16} flowlab {f * 1e3:9.1f} ms   hy3dgen {p * 1e3 if p else float('nan'):9.1f} ms   {ratio}")
    if not ref:
        print(f"  hy3dgen part NOT RUN: {why}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    if pool is not None:
        pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
