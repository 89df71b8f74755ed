#!/usr/bin/env python3
"""Issue 21 on a CPU: the VAE's label kind and its number of latent tokens, one small model trained per arm.

    python3 benchmarks/mini_small.py [--steps 3000] [--arms binary,tsdf:0.01] [--tokens 64] [--eval-shapes 40]
                                     [--json benchmarks/results/mini_issue21/labels_cpu.json]

Every arm runs flowlab's own VAE stage (:func:`flowlab.shape.train.loop.train`, ``stages=("vae",)``) on a small
architecture (``--tokens`` latent tokens x 16 channels, width 96) with the same seed, hence the same shapes
and the same queries (and the same initial weights where the sizes agree). An arm is a label kind
(``binary`` = BCE on occupancy, the release's; ``tsdf:TAU`` = the logit regressed on -sdf / TAU in a +-5
band) at one token count: ``--arms binary,tsdf:0.01`` compares labels, ``--arms binary --tokens 32,64,128``
sizes. Held-out VAE reconstruction IoU (seed EVAL_SEED, all families balanced, 65^3 grid) is measured
``--curve-points`` times during each run. Prints the curves, the final per-family IoUs and each arm's
difference to the first arm.

It sizes the levers on a CPU; it is not the shipped model's training, whose size and length need a GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def small_config(tokens: int = 64):
    from flowlab.shape.models.encoder import EncoderConfig
    from flowlab.shape.train.loop import MINI, SMOKE, MiniConfig

    return MiniConfig(vae=replace(MINI.vae, num_latents=tokens, embed_dim=16, width=96, heads=4, num_decoder_layers=2),
                      encoder=EncoderConfig(num_latents=tokens, embed_dim=16, width=96, heads=4, num_encoder_layers=1),
                      dit=replace(SMOKE.dit, in_channels=16), image=dict(SMOKE.image))


def parse_arm(text: str) -> dict:
    """'binary' or 'tsdf:TAU' -> TrainOptions keywords."""
    kind, _, tau = text.partition(":")
    if kind == "binary" and not tau:
        return {"labels": "binary"}
    if kind == "tsdf":
        from flowlab.errors import FlowlabError
        from flowlab.shape.train.labels import Labels

        try:
            return {"labels": "tsdf", "tsdf_tau": Labels("tsdf", float(tau or 0.01)).tau}
        except (ValueError, FlowlabError):
            pass
    raise SystemExit(f"--arms: {text!r} is not 'binary' or 'tsdf:TAU' (TAU a finite distance > 0, such as 0.01)")


def run_arm(arm: str, tokens: int, args) -> dict:
    from flowlab.shape.train.loop import THIN_PARTS, TrainOptions, train

    opts = TrainOptions(**{**THIN_PARTS, "queries": args.queries}, device=args.device, vae_steps=args.steps,
                        vae_batch=args.batch, surface_points=512, vae_lr=1e-3, warmup=100, log_every=100,
                        eval_shapes=args.eval_shapes, eval_resolution=64, curve_points=args.curve_points,
                        **parse_arm(arm))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        log = train(Path(tmp), small_config(tokens), opts, stages=("vae",))
    return {"arm": arm, "tokens": tokens, "params": log["params"]["encoder"] + log["params"]["vae"], "seconds": round(time.perf_counter() - t, 1), "curve": log["curves"]["vae"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--arms", default="binary,tsdf:0.01", help="label kinds to train, comma-separated: binary, tsdf:TAU")
    ap.add_argument("--tokens", default="64", help="latent token counts, comma-separated (default 64)")
    ap.add_argument("--batch", type=int, default=8, help="shapes per step (default 8)")
    ap.add_argument("--queries", type=int, default=2048, help="labelled queries per shape (default 2048)")
    ap.add_argument("--eval-shapes", type=int, default=40, help="held-out shapes per curve point (default 40)")
    ap.add_argument("--curve-points", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    for name in ("steps", "batch", "queries", "eval_shapes", "curve_points"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    kinds = [a.strip() for a in args.arms.split(",") if a.strip()]
    for a in kinds:
        parse_arm(a)  # refuse a bad arm before training any
    try:
        tokens = [int(t) for t in args.tokens.split(",")]
    except ValueError:
        tokens = [0]
    if not kinds or min(tokens) < 1 or max(tokens) > 512:
        ap.error(f"--arms and --tokens need at least one entry each, tokens integers from 1 to 512 (the surface "
                 f"points FPS picks from): {args.arms!r}, {args.tokens!r}")
    arms = [run_arm(a, t, args) for t in tokens for a in kinds]
    names = [f"{a['arm']}/{a['tokens']}" for a in arms]
    print(f"held-out VAE IoU ({args.eval_shapes} shapes, 65^3) against steps, batch {args.batch}:")
    print(f"{'step':>6s} " + " ".join(f"{a:>12s}" for a in names))
    for k, point in enumerate(arms[0]["curve"]):
        print(f"{point['step']:6d} " + " ".join(f"{arm['curve'][k]['vae_iou']['overall']:12.3f}" for arm in arms))
    final = [arm["curve"][-1]["vae_iou"] for arm in arms]
    print(f"\nfinal, per family (step {arms[0]['curve'][-1]['step']}; in brackets: minus {names[0]}):")
    print(f"{'family':12s} " + " ".join(f"{a:>20s}" for a in names))
    for fam in final[0]:
        print(f"{fam:12s} " + " ".join(f"{f[fam]:12.3f} ({f[fam] - final[0][fam]:+6.3f})" for f in final))
    print("\nVAE parameters (encoder + decoder): " + ", ".join(f"{n} {a['params']:,}" for n, a in zip(names, arms)))
    print("wall time (training + curve points): " + ", ".join(f"{n} {a['seconds']:.0f} s" for n, a in zip(names, arms)))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "arms": arms}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
