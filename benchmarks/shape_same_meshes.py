#!/usr/bin/env python3
"""Same meshes? Every fast decode / isosurface option against the reference mesh, on the trained mini model's
real shapes (CPU is enough).

    python3 benchmarks/shape_same_meshes.py [--shapes 3] [--octree 128]

Shapes, two kinds: held-out primitives (``flowlab.shape.data.primitives.random_shapes`` at the evaluation seed,
balanced over the families) encoded by the shipped encoder and decoded by the shipped VAE (reconstructions), and
the same primitives rendered and generated from the image by the shipped pipeline (50 calls, CFG 5, reversed
convention). Model: ``flowlab.shape.load.mini`` (``load_mini``, ``load_mini_encoder``). Reference mesh: dense
decode + scikit-image lewiner. Options: dense + torch marching cubes, hierarchical + skimage, hierarchical +
torch marching cubes, hierarchical + adaptive KV selection (top-k of the latent tokens per group of 1024
points) + torch marching cubes. Printed per option: vertices / faces vs the reference and the symmetric Chamfer
distance over the reference's bounding-box diagonal (worst and mean over the shapes), and the query count.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowlab.errors import FlowlabError  # noqa: E402
from flowlab.shape.decode.fast import decode_dense_fast, decode_hierarchical_fast, selected_query  # noqa: E402
from flowlab.shape.decode.isosurface import marching_cubes_torch, mesh_agreement  # noqa: E402
from flowlab.shape.decode.mesh import marching_cubes  # noqa: E402
from flowlab.shape.decode.volume import octree_levels  # noqa: E402


@torch.no_grad()
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", type=int, default=3, help="shapes of each kind")
    ap.add_argument("--octree", type=int, default=128)
    ap.add_argument("--topk", type=int, nargs="+", default=[64, 32], help="KV selection sizes to measure")
    ap.add_argument("--steps", type=int, default=50, help="model calls of the generated shapes")
    ap.add_argument("--min-resolution", type=int, default=63,
                    help="coarsest hierarchical level: halve the octree while the half is >= this (flowlab shape: 63)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", metavar="FILE")
    return ap.parse_args(argv)


def shape_tokens(args: argparse.Namespace, dev: torch.device):
    """The mini model and its latent tokens: held-out shapes reconstructed by the VAE, and generated from renders."""
    from flowlab.shape.data.primitives import random_shapes, surface_points
    from flowlab.shape.data.render import render, to_pil
    from flowlab.shape.load.mini import load_mini, load_mini_encoder
    from flowlab.shape.train.loop import EVAL_SEED

    torch.manual_seed(0)
    pipe = load_mini(dev, torch.float32)
    enc = load_mini_encoder(dev, torch.float32)
    vae = pipe.vae
    shapes = random_shapes(args.shapes, EVAL_SEED, balanced=True, device=dev)
    g = torch.Generator(dev).manual_seed(EVAL_SEED)
    surf, nrm = surface_points(shapes, 2048, g)
    z = enc(surf, nrm).mode().float()
    tokens = [("reconstruction " + n, vae.decode_latents(z[i:i + 1] * vae.config.scale_factor))
              for i, n in enumerate(shapes.family_names)]
    for i, n in enumerate(shapes.family_names):
        cond = pipe.encode_image(to_pil(render(shapes[i:i + 1])))
        lat = pipe.sample_latents(cond, steps=args.steps, guidance=5.0, seed=i)
        tokens.append(("generated " + n, vae.decode_latents(lat)))
    return vae, tokens


def compare_options(args: argparse.Namespace, vae, tokens: list, options: dict) -> tuple[dict, float]:
    """Each option's mesh against the reference (dense + skimage lewiner) on every shape; returns the rows per
    option and the reference's total seconds."""
    from flowlab.shape.models.vae import KV

    geo, r = vae.geo_decoder, args.octree
    hier = dict(chunk_size=4096, min_resolution=args.min_resolution)
    counted = {"n": 0}

    def counting(q):
        def fn(p, k_, v_):
            counted["n"] += p.shape[1]
            return q(p, k_, v_)
        fn.group = getattr(q, "group", 1)
        return fn

    def plain(p, k_, v_):
        return geo.query(p, KV(k=k_, v=v_))

    per = {name: [] for name in options}
    t_ref = 0.0
    for label, tok in tokens:
        t0 = time.perf_counter()
        dense = decode_dense_fast(geo, tok, r, chunk_size=4096)
        ref = marching_cubes(dense[0])
        t_ref += time.perf_counter() - t0
        for name, (kind, k, mc) in options.items():
            counted["n"] = 0
            q = counting(plain if k is None else selected_query(geo, k))
            t0 = time.perf_counter()
            vol = (decode_dense_fast(geo, tok, r, chunk_size=4096, query=q) if kind == "dense" else
                   decode_hierarchical_fast(geo, tok, r, query=q, **hier))
            try:
                m = marching_cubes_torch(vol[0]) if mc == "torch" else marching_cubes(vol[0])
                ag = mesh_agreement(m, ref, samples=None)
            except FlowlabError:  # the option lost the whole surface
                ag = dict(vertices=0, faces=0, ref_vertices=int(ref.vertices.shape[0]),
                          ref_faces=int(ref.faces.shape[0]), chamfer=float("inf"), chamfer_rel=float("inf"))
            dt = time.perf_counter() - t0
            ag.update(seconds=dt, queries=counted["n"], shape=label)
            per[name].append(ag)
        print(f"  {label}: reference V {ref.vertices.shape[0]} "
              f"F {ref.faces.shape[0]}; " + "; ".join(f"{n}: {a[-1]['chamfer_rel']:.1e}" for n, a in per.items()),
              flush=True)
    return per, t_ref


def summarise(args: argparse.Namespace, per: dict, t_ref: float, out: dict) -> None:
    r, n_lat, n_shapes = args.octree, out["num_latents"], out["shapes"]
    dense_q = (r + 1) ** 3
    print(f"\nmini model ({n_lat} latents), {n_shapes} shapes, R={r}, hierarchical levels {out['levels']}; reference "
          f"dense + skimage lewiner ({t_ref / n_shapes:.2f} s a shape on {args.device})")
    print(f"  {'option':<28} {'queries vs dense':>17} {'dV (max |%|)':>13} {'dF (max |%|)':>13} "
          f"{'Chamfer/diag max':>17} {'mean':>9} {'s a shape':>10}")
    for name, rows in per.items():
        dv = max(abs(a["vertices"] - a["ref_vertices"]) / a["ref_vertices"] * 100 for a in rows)
        df = max(abs(a["faces"] - a["ref_faces"]) / a["ref_faces"] * 100 for a in rows)
        cmax = max(a["chamfer_rel"] for a in rows)
        cmean = sum(a["chamfer_rel"] for a in rows) / len(rows)
        qr = sum(a["queries"] for a in rows) / len(rows) / dense_q
        sec = sum(a["seconds"] for a in rows) / len(rows)
        out["options"][name] = dict(rows=rows, vertices_max_pct=dv, faces_max_pct=df, chamfer_rel_max=cmax,
                                    chamfer_rel_mean=cmean, query_fraction=qr, seconds=sec)
        print(f"  {name:<28} {qr:>16.3f}x {dv:>12.3f}% {df:>12.3f}% {cmax:>17.1e} {cmean:>9.1e} {sec:>10.2f}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    dev = torch.device(args.device)
    vae, tokens = shape_tokens(args, dev)
    n_lat = vae.config.num_latents
    options = {"dense + torch MC": ("dense", None, "torch"), "hier + skimage": ("hier", None, "skimage"),
               "hier + torch MC": ("hier", None, "torch")}
    for k in args.topk:
        options[f"hier + KV{k}/{n_lat} + torch MC"] = ("hier", k, "torch")
    out = {"model": "mini", "octree": args.octree, "levels": octree_levels(args.octree, args.min_resolution),
           "shapes": len(tokens), "num_latents": n_lat, "options": {}}
    per, t_ref = compare_options(args, vae, tokens, options)
    summarise(args, per, t_ref, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
