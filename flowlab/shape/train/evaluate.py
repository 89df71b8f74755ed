"""Held-out evaluation of a mini-model training run: VAE reconstruction IoU and image -> shape IoU.

Shapes from seed :data:`EVAL_SEED` (training draws from seeds < 10^6), balanced over the families,
decoded on the (R + 1)^3 grid and compared with the analytic occupancy; image -> shape sampled with
flowlab's :class:`~flowlab.shape.pipeline.ShapePipeline` in the reversed convention with CFG. During
training, :func:`curve_point` records the same measurement a few times per stage (the curves in the log).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import Tensor

from ..data.primitives import FAMILIES, occupancy_grid, random_shapes, surface_points, volume_iou
from ..data.render import render, to_model_input

__all__ = ["EVAL_SEED", "evaluate", "curve_due", "curve_point", "tf32"]

#: Held-out shapes are drawn from seeds >= this (training draws from seeds < 10^6).
EVAL_SEED = 10_000_000

# ---- evaluation ------------------------------------------------------------------------------------

def curve_due(step: int, total: int, opts) -> bool:
    every = max(1, total // max(1, opts.curve_points))
    return opts.curve_points > 0 and (step % every == 0 or step == total)


def curve_point(log: dict, stage: str, step: int, models, dit_and_scale, opts) -> None:
    """Held-out IoU during training: VAE reconstruction (stage 'vae') or image -> shape at the evaluation's
    guidance with the EMA weights (stage 'dit'), per family, appended to ``log['curves'][stage]``."""
    tc = time.time()
    cur = replace(opts, guidance_sweep=(opts.eval_guidance,))
    if dit_and_scale is None:
        r = evaluate(models["encoder"], models["vae"], models["dit"], models["conditioner"], 1.0, cur, vae_only=True)
        point = {"step": step, "vae_iou": r["vae_iou"]}
    else:
        ema, scale = dit_and_scale
        r = evaluate(models["encoder"], models["vae"], ema["dit"], ema["conditioner"], scale, cur)
        point = {"step": step, "image_iou": r["image_iou"][str(opts.eval_guidance)]}
    log.setdefault("curves", {}).setdefault(stage, []).append(point)
    key = "vae_iou" if dit_and_scale is None else "image_iou"
    print(f"[{stage}] step {step}: held-out {key} {point[key]['overall']:.4f} "
          f"(mug {point[key]['mug']:.3f}, table {point[key]['table']:.3f}; {time.time() - tc:.1f} s)", flush=True)

def _per_family(values: Tensor, family: Tensor) -> dict[str, float]:
    out = {}
    for i, name in enumerate(FAMILIES):
        m = family == i
        if m.any():
            out[name] = round(float(values[m].mean()), 4)
    out["overall"] = round(float(values.mean()), 4)
    return out


@contextmanager
def tf32(enabled: bool | None) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN set to ``enabled`` inside the block (None: left as is); the caller's
    settings are restored after it, also on an exception."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if enabled is not None:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def evaluate(encoder, vae, dit, conditioner, scale: float, opts, chunk: int = 50, *,
             vae_only: bool = False) -> dict:
    """:func:`_evaluate` with full float32 matmuls on CUDA (TF32 is for training speed only); the caller's
    TF32 settings are restored after."""
    with tf32(False if torch.device(opts.device).type == "cuda" else None):
        return _evaluate(encoder, vae, dit, conditioner, scale, opts, chunk, vae_only=vae_only)


@torch.no_grad()
def _evaluate(encoder, vae, dit, conditioner, scale: float, opts, chunk: int = 50, *,
              vae_only: bool = False) -> dict:
    """Held-out shapes (seed EVAL_SEED + ``opts.eval_offset``, balanced over the families): VAE reconstruction
    IoU and image -> shape IoU (ShapePipeline, reversed convention, ``eval_steps`` calls, CFG ``eval_guidance``;
    skipped when ``vae_only``), both on the (R + 1)^3 decoding grid, R = ``eval_resolution``, against the
    analytic occupancy."""
    from ..pipeline import ShapePipeline

    dev = torch.device(opts.device)
    vae = copy.deepcopy(vae).float().eval()
    vae.config = replace(vae.config, scale_factor=scale)
    seed = EVAL_SEED + opts.eval_offset
    shapes = random_shapes(opts.eval_shapes, seed, balanced=True, device=dev)
    g = torch.Generator(dev).manual_seed(seed)
    pipe = ShapePipeline(dit=copy.deepcopy(dit), vae=vae, conditioner=copy.deepcopy(conditioner), device=dev,
                         dtype=torch.float32)
    res = opts.eval_resolution
    recon, gen, flip_diff = [], {w: [] for w in opts.guidance_sweep}, None
    for i in range(0, len(shapes), chunk):
        s = shapes[i:i + chunk]
        truth = occupancy_grid(s, res)
        surf, nrm = surface_points(s, opts.surface_points, g)
        z = encoder.eval()(surf, nrm).mode().float()
        recon.append(volume_iou(pipe.decode_volume(z * scale, octree=res, chunk_size=100_000, decode="dense") > 0, truth).cpu())
        if vae_only:  # the VAE stage's curve
            continue
        cond = pipe.conditioner(to_model_input(render(s, opts.render_size)))
        for w in opts.guidance_sweep:
            lat = pipe.sample_latents(cond, steps=opts.eval_steps, guidance=w, convention="reversed", seed=i)
            gen[w].append(volume_iou(pipe.decode_volume(lat, octree=res, chunk_size=100_000, decode="dense") > 0, truth).cpu())
        if i == 0:  # the flipped model in the conventional convention reaches the same latents
            lat_r = pipe.sample_latents(cond, steps=opts.eval_steps, guidance=opts.eval_guidance, seed=i)
            lat_c = pipe.sample_latents(cond, steps=opts.eval_steps, guidance=opts.eval_guidance, seed=i,
                                        convention="conventional")
            flip_diff = float((lat_r - lat_c).abs().max())
    encoder.train()
    fam = shapes.family.cpu()
    out = {"shapes": len(shapes), "seed": seed, "resolution": res, "steps": opts.eval_steps,
           "schedule": "reference (linspace(0, 1, N) + [1.0], exact t rounding)",
           "vae_iou": _per_family(torch.cat(recon), fam),
           "image_iou": {str(w): _per_family(torch.cat(v), fam) for w, v in gen.items() if v},
           "guidance": opts.eval_guidance, "flip_max_abs_latent_diff": flip_diff}
    return out
