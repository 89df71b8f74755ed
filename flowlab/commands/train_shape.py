"""``flowlab train-shape``: train the mini Hunyuan3D-2-architecture model on procedural shapes."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "train-shape"
HELP = "train the mini shape model (ShapeVAE, image encoder, DiT) on flowlab's procedural shapes"
DESCRIPTION = """\
Train the mini model that ships with flowlab (flowlab/shape/weights/mini): the released Hunyuan3D-2
architecture at small widths, on shapes flowlab draws itself (10 families, analytic occupancy).
Stage 1 trains the ShapeVAE (encoder + decoder) on occupancy BCE + KL; stage 2 renders a pool of shapes,
encodes them to latents and trains the image encoder + DiT with flow matching in the REVERSED
convention (x_t = t D + (1 - t) E, target D - E), condition dropped to zeros 10% of the time; then the
held-out evaluation (VAE IoU, image -> shape IoU). --smoke runs a toy configuration on the CPU in seconds.
--export writes the official folder layout (config.yaml + model.fp16.safetensors) from a finished run.
--arch mini-512 trains issue 21's larger candidate (512 latent tokens, thin-part query sampling);
--labels tsdf trains the VAE on truncated signed distances instead of occupancy."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder for the checkpoints and train_log.json")
    parser.add_argument("--smoke", action="store_true", help="toy sizes, a few steps, CPU: checks the code path")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, the shapes and the batches (default 0)")
    parser.add_argument("--arch", default="mini", choices=["mini", "mini-512"],
                        help="mini: the shipped architecture (128 latent tokens, default); mini-512: issue 21's "
                             "512-token candidate with thin-part query sampling")
    parser.add_argument("--labels", default="binary", choices=["binary", "tsdf"],
                        help="what the VAE decoder learns: binary = occupancy with BCE (the release, default); tsdf = "
                             "the logit regressed on the truncated signed distance (-sdf / tau in a band of +-5 "
                             "logits; measured slower than binary at a small size, README)")
    parser.add_argument("--tsdf-tau", type=float, default=0.01, help="tsdf: distance per logit unit (default 0.01)")
    parser.add_argument("--stages", default="vae,dit,eval", help="comma-separated subset of vae,dit,eval")
    parser.add_argument("--init", metavar="FOLDER", help="start from the checkpoints in FOLDER (resume)")
    parser.add_argument("--vae-steps", default="auto", help="VAE steps, or 'auto' (fit --vae-time)")
    parser.add_argument("--vae-time", type=float, default=170.0, help="VAE time budget in s for 'auto'")
    parser.add_argument("--dit-steps", default="auto", help="DiT steps, or 'auto' (fit --dit-time)")
    parser.add_argument("--dit-time", type=float, default=220.0, help="DiT time budget in s for 'auto'")
    parser.add_argument("--pool", type=int, default=80000, help="rendered shapes the DiT trains on")
    parser.add_argument("--vae-batch", type=int, default=192, help="shapes per VAE step (default 192)")
    parser.add_argument("--dit-batch", type=int, default=512, help="pool samples per DiT step (default 512)")
    parser.add_argument("--deadline", type=float, default=None, help="wall-clock budget in s for everything")
    parser.add_argument("--eval-shapes", type=int, default=200,
                        help="held-out shapes (a fixed seed, all families) for the final IoU evaluation (default 200)")
    parser.add_argument("--export", metavar="FOLDER", help="write the shipped folder layout from --out's checkpoints")


def _steps(value: str, flag: str = "--steps"):
    from ..errors import FlowlabError

    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise FlowlabError(f"{flag} must be an integer or 'auto', got {value!r}") from None
    if n < 1:
        raise FlowlabError(f"{flag} must be >= 1, got {n}")
    return n


def _check_fits(cfg, opts, device) -> None:
    """Refuse --vae-batch / --pool / --dit-batch whose tensors cannot fit, with the estimate, before training.

    A lower bound of what a step holds, so the defaults always pass and absurd values are refused: VAE step,
    width-wide activations of every query / surface point and of the latents through the decoder; pool, the
    rendered images and the latents of every pooled shape; DiT step, the tokens through every block."""
    from ..limits import check_memory

    v = cfg.vae
    vae_bytes = opts.vae_batch * ((opts.surface_points + opts.queries) * v.width * 4 * 2
                                  + v.num_latents * v.width * 4 * 2 * (v.num_decoder_layers + 2))
    check_memory(vae_bytes, f"--vae-batch {opts.vae_batch}", "use a smaller --vae-batch (192 is the default)", device)
    pool_bytes = opts.pool * (3 * opts.render_size ** 2 * 4 + v.num_latents * v.embed_dim * 4 * 2)
    check_memory(pool_bytes, f"--pool {opts.pool}", "use a smaller --pool (80000 is the default)", device)
    d = cfg.dit
    dit_bytes = opts.dit_batch * (v.num_latents + 64) * d.hidden_size * 4 * 2 * (2 * d.depth + d.depth_single_blocks + 1)
    check_memory(dit_bytes, f"--dit-batch {opts.dit_batch}", "use a smaller --dit-batch (512 is the default)", device)


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..errors import FlowlabError
    from ..shape.train.loop import ARCHS, SMOKE, TrainOptions, train

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FlowlabError(f"--out {args.out!r} exists and is not a folder; give a folder for the checkpoints")
    if args.export:
        from ..shape.load.mini import export_folder

        export_folder(out, Path(args.export), previous=[Path(args.init)] if args.init else [])
        print(f"wrote {args.export}")
        return 0
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    bad = [s for s in stages if s not in ("vae", "dit", "eval")]
    if bad or not stages:
        raise FlowlabError(f"--stages {args.stages!r}: use a comma-separated subset of vae,dit,eval")
    for name in ("pool", "vae_batch", "dit_batch", "eval_shapes"):
        if getattr(args, name) < 1:
            raise FlowlabError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    import math

    from ..limits import check_seed

    check_seed(args.seed)
    vae_steps, dit_steps = _steps(args.vae_steps, "--vae-steps"), _steps(args.dit_steps, "--dit-steps")  # checked in --smoke too
    for name in ("vae_time", "dit_time", "deadline"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise FlowlabError(f"--{name.replace('_', '-')} must be a positive number of seconds, got {value}")
    if args.init and not Path(args.init).is_dir():
        raise FlowlabError(f"--init {args.init!r} is not a folder; give the --out folder of an earlier run "
                           "(it holds vae.safetensors, dit.safetensors, ...)")
    device = resolve_device(args.device)
    if args.smoke:
        cfg = SMOKE
        opts = TrainOptions(seed=args.seed, device="cpu", vae_steps=4, dit_steps=4, vae_batch=4, surface_points=64,
                            queries=64, pool=8, dit_batch=4, render_size=16, eval_shapes=10, eval_steps=3,
                            eval_resolution=8, guidance_sweep=(5.0,), log_every=2, warmup=2, labels=args.labels,
                            tsdf_tau=args.tsdf_tau)
    else:
        cfg, recipe = ARCHS[args.arch]
        opts = TrainOptions(**recipe, seed=args.seed, device=str(device), vae_steps=vae_steps, vae_time=args.vae_time,
                            dit_steps=dit_steps, dit_time=args.dit_time, pool=args.pool,
                            deadline=args.deadline, eval_shapes=args.eval_shapes, vae_batch=args.vae_batch,
                            dit_batch=args.dit_batch, labels=args.labels, tsdf_tau=args.tsdf_tau)
    _check_fits(cfg, opts, device)
    log = train(out, cfg, opts, init=Path(args.init) if args.init else None, stages=stages)
    if "eval" in log:
        print(json.dumps({"vae_iou": log["eval"]["vae_iou"]["overall"],
                          "image_iou": {w: v["overall"] for w, v in log["eval"]["image_iou"].items()}}))
    print(f"wrote {out}/train_log.json")
    return 0
