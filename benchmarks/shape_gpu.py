#!/usr/bin/env python3
"""Cost of flowlab's Hunyuan3D-2 shape model: full-size v2-0 DiT and VAE with random weights.

    python3 benchmarks/shape_gpu.py                 # CUDA, fp16, the released v2-0 sizes
    python3 benchmarks/shape_gpu.py --dtype bf16 --octree 256 --chunk-size 200000
    python3 benchmarks/shape_gpu.py --smoke         # CPU, tiny sizes, a few seconds (checks the script)

Prints, one line each: DiT time per step (CFG batch 2: 3072 latents + 1370 cond tokens), the
guidance-distilled batch-1 step, the whole 50-call sampling loop (flowlab's sampler, reversed
convention, exact reference arithmetic), VAE post_kl + transformer, dense volume decode at octree
R (default 384: 385^3 = 57 M queries), hierarchical decode, marching cubes on the CPU, and the
peak GPU memory of each stage. Random weights give random shapes: the VAE's output bias is
shifted so the iso-surface exists (marching cubes timing needs one). ``--json FILE`` also writes
the numbers. Compare: the reference (hy3dgen 2.0.2) measured 73.3 ms / step, 3.67 s / 50 steps,
7.04 s dense decode at 384 with 8000-point chunks on one H100 (see the shape spec).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowlab.shape.models.dit import DIT_CONFIGS, DiTConfig, ShapeDiT  # noqa: E402
from flowlab.shape.pipeline import DiTVelocity, ShapePipeline  # noqa: E402
from flowlab.shape.models.vae import VAE_CONFIGS, ShapeVAE, VAEConfig  # noqa: E402
from flowlab.shape.decode.volume import decode_dense, decode_hierarchical  # noqa: E402

SMOKE_DIT = DiTConfig(in_channels=16, context_in_dim=32, hidden_size=64, num_heads=4, depth=1, depth_single_blocks=1)
SMOKE_VAE = VAEConfig(num_latents=64, embed_dim=16, width=64, heads=4, num_decoder_layers=1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int = 1, warmup: int = 0) -> tuple[float, float]:
    """Mean seconds of ``fn()`` over ``repeat`` runs after ``warmup``; and the peak memory in GiB."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    _sync(device)
    dt = (time.perf_counter() - t0) / repeat
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
    del out
    return dt, peak


def random_module(cls, config, device: torch.device, dtype: torch.dtype, seed: int):
    """Build on the meta device, allocate on ``device`` and fill with N(0, 0.02) (fast for 1 B params)."""
    with torch.device("meta"):
        m = cls(config)
    m = m.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, device=device) * 0.02)
        for name, b in m.named_buffers():
            if name.endswith("frequencies"):
                b.copy_(2.0 ** torch.arange(b.shape[0], device=device, dtype=torch.float32))
    return m.to(dtype).eval()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: check the script in seconds")
    ap.add_argument("--variant", default="v2-0", choices=sorted(DIT_CONFIGS), help="DiT config (default v2-0)")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--steps", type=int, default=50, help="model calls of the sampling loop (default 50)")
    ap.add_argument("--octree", type=int, default=384, help="decode resolution R (default 384)")
    ap.add_argument("--chunk-size", type=int, default=8000, help="points per geo-decoder call (default 8000)")
    ap.add_argument("--cond-tokens", type=int, default=1370)
    ap.add_argument("--repeat", type=int, default=10, help="timed DiT forwards (default 10)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return ap.parse_args(argv)


def setup(args: argparse.Namespace) -> tuple[torch.device, torch.dtype, DiTConfig, VAEConfig] | None:
    """Device, dtype and configs (tiny ones on the CPU with --smoke); None when no GPU is visible."""
    if args.smoke:
        args.steps, args.octree, args.cond_tokens, args.repeat = 4, 16, 20, 2
        args.chunk_size = min(args.chunk_size, 2000)
        torch.set_num_threads(1)  # tiny tensors: threads only add overhead
        return torch.device("cpu"), torch.float32, SMOKE_DIT, SMOKE_VAE
    if not torch.cuda.is_available():
        print("no CUDA GPU visible; run with --smoke to check the script on CPU", file=sys.stderr)
        return None
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    return (torch.device("cuda"), dtype, DIT_CONFIGS[args.variant],
            VAE_CONFIGS["v2-mini" if "mini" in args.variant else "v2-0"])


def measure_dit(args, device, dtype, dcfg, vcfg, results: dict, rows: list) -> tuple:
    """The DiT forward (CFG batch 2, and guidance-distilled batch 1); returns the DiT and its inputs."""
    dit = random_module(ShapeDiT, dcfg, device, dtype, 0)
    results["dit_params"] = sum(p.numel() for p in dit.parameters())
    g = torch.Generator("cpu").manual_seed(0)
    n_lat = vcfg.num_latents
    x2 = torch.randn(2, n_lat, dcfg.in_channels, generator=g).to(device, dtype)
    c2 = torch.randn(2, args.cond_tokens, dcfg.context_in_dim, generator=g).to(device, dtype)
    t2 = torch.full((2,), 0.5, device=device, dtype=dtype)
    dt, peak = timed(lambda: dit(x2, t2, c2), device, repeat=args.repeat, warmup=3)
    rows.append((f"DiT forward, CFG batch 2 ({n_lat} latents + {args.cond_tokens} cond tokens)", dt, peak))
    gdit = random_module(ShapeDiT, DiTConfig(**{**dcfg.as_dict(), "guidance_embed": True}), device, dtype, 1)
    w = torch.full((1,), 5.0, device=device, dtype=dtype)
    dt, peak = timed(lambda: gdit(x2[:1], t2[:1], c2[:1], guidance=w), device, repeat=args.repeat, warmup=3)
    rows.append(("DiT forward, guidance-distilled batch 1", dt, peak))
    return dit, c2


def measure_sampling_and_decode(args, device, dtype, vcfg, dit, c2, results: dict, rows: list) -> torch.Tensor:
    """The sampling loop, the VAE, dense and hierarchical decoding; returns the dense logits."""
    vae = random_module(ShapeVAE, vcfg, device, dtype, 2)
    pipe = ShapePipeline(dit=dit, vae=vae, device=device, dtype=dtype)
    cond = c2[:1]
    dt, peak = timed(lambda: pipe.sample_latents(cond, steps=args.steps, guidance=5.0, seed=0), device)
    rows.append((f"sampling loop, {args.steps} calls, CFG 5.0 (flowlab sampler, reversed, exact)", dt, peak))
    latents = pipe.sample_latents(cond, steps=args.steps, guidance=5.0, seed=0)
    dt, peak = timed(lambda: vae.decode_latents(latents), device, repeat=args.repeat, warmup=2)
    rows.append(("VAE post_kl + transformer", dt, peak))
    tokens = vae.decode_latents(latents)
    # random weights: centre the field so that an iso-surface exists
    coarse = decode_dense(vae.geo_decoder, tokens, 32, chunk_size=args.chunk_size)
    vae.geo_decoder.output_proj.bias -= coarse.float().median().to(dtype)
    r = args.octree
    dt, peak = timed(lambda: decode_dense(vae.geo_decoder, tokens, r, chunk_size=args.chunk_size), device, warmup=1)
    rows.append((f"dense volume decode, R = {r} ({(r + 1) ** 3 / 1e6:.1f} M queries, {args.chunk_size} a chunk)",
                 dt, peak))
    n_hier = {"queries": 0}

    def hier():
        n_hier["queries"] = 0
        return decode_hierarchical(vae.geo_decoder, tokens, r, chunk_size=args.chunk_size,
                                   min_resolution=min(63, r // 4),
                                   progress=lambda k: n_hier.__setitem__("queries", n_hier["queries"] + k))
    dt, peak = timed(hier, device, warmup=1)
    rows.append((f"hierarchical volume decode, R = {r} ({n_hier['queries'] / 1e6:.2f} M queries)", dt, peak))
    logits = decode_dense(vae.geo_decoder, tokens, r, chunk_size=args.chunk_size)
    hl = hier()
    results["hierarchical_sign_agreement"] = float(((hl > 0) == (logits > 0)).float().mean())
    return logits


def measure_marching_cubes(args, logits: torch.Tensor, results: dict, rows: list) -> None:
    from flowlab.shape.decode.mesh import marching_cubes

    vol = logits[0].float().cpu()
    marching_cubes(torch.linspace(-1, 1, 4)[:, None, None].expand(4, 4, 4).clone())  # imports, warm-up
    t0 = time.perf_counter()
    try:
        mesh = marching_cubes(vol)
        results["mesh"] = {"vertices": int(mesh.vertices.shape[0]), "faces": int(mesh.faces.shape[0])}
    except Exception as e:  # a random field may still have no surface: report, do not crash
        results["mesh"] = {"error": str(e)[:200]}
    rows.append((f"marching cubes on CPU, {args.octree + 1}^3 grid", time.perf_counter() - t0, float("nan")))


def report(args, results: dict, rows: list) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"flowlab shape benchmark: {results['device']}, {results['dtype']}, {results['variant']}, "
          f"DiT {results['dit_params'] / 1e6:.1f} M params, torch {results['torch']}")
    for name, dt, peak in rows:
        mem = f"peak {peak:6.2f} GiB" if peak == peak else ""
        print(f"  {name:<{width}}  {dt * 1e3:10.1f} ms  {mem}")
    print(f"  hierarchical vs dense: inside/outside agree on {results['hierarchical_sign_agreement'] * 100:.3f}% "
          f"of the grid; mesh {results['mesh']}")
    results["rows"] = [{"stage": n, "seconds": d, "peak_gib": (p if p == p else None)} for n, d, p in rows]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    got = setup(args)
    if got is None:
        return 1
    device, dtype, dcfg, vcfg = got
    torch.backends.cuda.matmul.allow_tf32 = True
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                     or "cpu", "dtype": str(dtype).replace("torch.", ""), "variant": "smoke" if args.smoke else args.variant,
                     "torch": torch.__version__}
    rows: list[tuple[str, float, float]] = []
    with torch.inference_mode():
        dit, c2 = measure_dit(args, device, dtype, dcfg, vcfg, results, rows)
        logits = measure_sampling_and_decode(args, device, dtype, vcfg, dit, c2, results, rows)
    measure_marching_cubes(args, logits, results, rows)
    report(args, results, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
