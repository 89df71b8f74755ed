#!/usr/bin/env python3
"""Issue 21: how precise a surface the quality goals need, and how far the trained models are from it.

    python3 benchmarks/mini_bounds.py [--shapes 200] [--json benchmarks/results/mini_issue21/bounds.json]

No model is involved in the first part: for the held-out shapes of the GPU evaluation (seed EVAL_SEED,
20 per family) the analytic occupancy on the 65^3 decoding grid is compared with the same shape whose
surface moved by ``delta`` (dilated: ``sdf < delta``; eroded: ``sdf < -delta``). The mean of the two IoUs
against ``delta`` is the IoU a reconstruction with a uniform surface error ``delta`` would score. The
grid cell is 2.02 / 64 = 0.0316.

Then each trained model's measured IoU (the GPU evaluations in the training logs: the shipped weights'
``train_log.json`` and the 512-token candidate's in benchmarks/results/mini_issue21) is turned into its
*equivalent surface error*, the ``delta`` whose IoU equals it, per family, and so is each goal
(VAE 0.85 a family and 0.95 overall; image -> shape 0.60 and 0.80). The ratio of the two is how many
times more precise the surface has to become. Prints the table; ``--json`` writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "mini_issue21"
DELTAS = (0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04,
          0.05, 0.06, 0.08, 0.1)
GOALS = {"vae": (0.85, 0.95), "image": (0.60, 0.80)}  # (every family, overall)


def iou_against_delta(shapes: int) -> dict[str, list[float]]:
    """{family: [mean(dilate, erode) IoU at each of DELTAS]} plus 'overall'."""
    import torch

    from flowlab.shape.data.primitives import FAMILIES, random_shapes, sdf_grid, volume_iou
    from flowlab.shape.train.evaluate import EVAL_SEED

    s = random_shapes(shapes, EVAL_SEED, balanced=True)
    rows = []
    for i in range(0, shapes, 20):  # 20 shapes at a time: (20, 65^3) floats
        d = sdf_grid(s[i:i + 20], 64)
        truth = d < 0
        rows.append(torch.stack([(volume_iou(truth, d < dl) + volume_iou(truth, d < -dl)) / 2 for dl in DELTAS], 1))
    iou = torch.cat(rows)  # (shapes, len(DELTAS))
    out = {name: [round(float(v), 4) for v in iou[s.family == f].mean(0)] for f, name in enumerate(FAMILIES)}
    out["overall"] = [round(float(v), 4) for v in iou.mean(0)]
    return out


def equivalent_delta(curve: list[float], value: float) -> float | None:
    """The delta at which the (decreasing) IoU curve equals ``value``, linearly interpolated; None beyond it."""
    for (d0, i0), (d1, i1) in zip(zip(DELTAS, curve), zip(DELTAS[1:], curve[1:])):
        if i1 <= value <= i0:
            return round(d0 + (d1 - d0) * (i0 - value) / max(i0 - i1, 1e-12), 4)
    return None if value < curve[-1] else 0.0


def measured() -> dict[str, dict]:
    """The GPU evaluations on record: {model: {'vae': {fam: iou}, 'image': {fam: iou}}}."""
    shipped = json.loads((ROOT / "flowlab/shape/weights/mini/train_log.json").read_text())["runs"][-1]["eval"]
    cand = json.loads((RESULTS / "h200_run2_train_log.json").read_text())["eval"]
    return {"shipped (128 tokens)": {"vae": shipped["vae_iou"], "image": shipped["image_iou"]["5.0"]},
            "candidate mini-512": {"vae": cand["vae_iou"], "image": cand["image_iou"]["5.0"]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=200, help="held-out shapes, a multiple of 20 (default 200)")
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    if args.shapes < 20 or args.shapes % 20:
        ap.error(f"--shapes must be a positive multiple of 20 (20 per family at 200), got {args.shapes}")
    curves = iou_against_delta(args.shapes)
    print("IoU of the truth against the truth with its surface moved by delta (mean of dilated and eroded), "
          f"{args.shapes} held-out shapes, 65^3 grid (cell 0.0316)")
    print(f"{'delta':>8s} " + " ".join(f"{f[:8]:>8s}" for f in curves))
    for k, dl in enumerate(DELTAS):
        print(f"{dl:8.4f} " + " ".join(f"{c[k]:8.3f}" for c in curves.values()))
    out = {"shapes": args.shapes, "deltas": list(DELTAS), "iou": curves, "equivalent": {}, "goals": {}}
    for kind, (fam_goal, all_goal) in GOALS.items():
        out["goals"][kind] = {f: equivalent_delta(c, all_goal if f == "overall" else fam_goal) for f, c in curves.items()}
    for model, m in measured().items():
        out["equivalent"][model] = {k: {f: equivalent_delta(curves[f], v) for f, v in m[k].items()} for k in m}
    for kind in GOALS:
        print(f"\nequivalent surface error, {'VAE reconstruction' if kind == 'vae' else 'image -> shape (w = 5)'} "
              f"(goal: the delta the goal's IoU allows; x = model / goal)")
        models = list(out["equivalent"])
        print(f"{'family':12s} {'goal':>7s} " + " ".join(f"{m:>26s}" for m in models))
        for f in curves:
            goal = out["goals"][kind][f]
            cells = []
            for m in models:
                e = out["equivalent"][m][kind].get(f)
                ratio = f"x{e / goal:4.1f}" if e is not None and goal else "  -  "
                cells.append(f"{'>0.1' if e is None else f'{e:.4f}':>19s} {ratio:>6s}")
            print(f"{f:12s} {'>0.1' if goal is None else f'{goal:.4f}':>7s} " + " ".join(cells))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
