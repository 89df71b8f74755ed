#!/usr/bin/env python3
"""The mini model on this machine's CPU: time of ``flowlab shape --model M --primitive NAME`` and the held-out
IoU of the fp16 weights (issue 21's CPU check).

    python3 benchmarks/mini_cpu.py [--model mini] [--primitive table] [--repeat 2] [--iou-shapes 20]
                                   [--json benchmarks/results/mini_issue21/cpu_shipped.json]

Time: the whole CLI command in a fresh process (import, loading with the SHA-256 manifest check, 50 calls
with CFG 5, the default octree of the model's config, hierarchical decoding, marching cubes, writing the
.glb), best and median of ``--repeat`` runs, against the 30 s goal. The machine's load average is printed
beside it: on a shared 2-core machine other jobs slow it down, so say so when quoting the time.
IoU: :func:`flowlab.shape.load.mini.evaluate_shipped` on ``--iou-shapes`` shapes from seed EVAL_SEED + 1
(other shapes than the GPU evaluation's 200), 65^3 grid, 50 calls, CFG 5, per family.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_S = 30.0


def time_cli(model: str, primitive: str, repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "flowlab.cli", "shape", "--model", model, "--primitive",
                                primitive, "--device", "cpu", "--out", f"{tmp}/mesh.glb"], env=env,
                               capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            if r.returncode:
                raise SystemExit(f"flowlab shape failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mini", help="'mini' (shipped) or an exported mini-layout folder")
    ap.add_argument("--primitive", default="table")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--iou-shapes", type=int, default=20, help="0 skips the IoU check")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    if args.repeat < 1 or args.iou_shapes < 0:
        ap.error("--repeat must be >= 1 and --iou-shapes >= 0")
    load0 = os.getloadavg()[0]
    times = time_cli(args.model, args.primitive, args.repeat)
    load1 = os.getloadavg()[0]
    out = {"model": args.model, "primitive": args.primitive, "cpu_cores": os.cpu_count(),
           "seconds": [round(t, 2) for t in times], "best_s": round(min(times), 2),
           "median_s": round(statistics.median(times), 2), "goal_s": GOAL_S,
           "load_average_1min": [round(load0, 2), round(load1, 2)]}
    print(f"flowlab shape --model {args.model} --primitive {args.primitive}: best {out['best_s']:.1f} s, "
          f"median {out['median_s']:.1f} s of {args.repeat} (goal <= {GOAL_S:.0f} s: "
          f"{'met' if min(times) <= GOAL_S else 'MISSED'}); load average {load0:.1f} -> {load1:.1f} "
          f"on {os.cpu_count()} cores")
    if args.iou_shapes:
        from flowlab.shape.load.mini import evaluate_shipped

        t = time.perf_counter()
        folder = None if args.model == "mini" else Path(args.model)
        r = evaluate_shipped(shapes=args.iou_shapes, resolution=64, folder=folder, offset=1)
        out["iou"] = {"shapes": r["shapes"], "seed": r["seed"], "grid": "65^3", "calls": 50, "guidance": 5.0,
                      "vae_iou": r["vae_iou"], "image_iou": r["image_iou"]["5.0"],
                      "seconds": round(time.perf_counter() - t, 1)}
        print(f"{'family':12s} {'VAE':>6s} {'image':>6s}")
        for fam, v in r["vae_iou"].items():
            print(f"{fam:12s} {v:6.3f} {r['image_iou']['5.0'][fam]:6.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
