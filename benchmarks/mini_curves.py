#!/usr/bin/env python3
"""Issue 21's curves: held-out IoU of the mini model against training steps (DiT: samples seen) and against model size.

    python3 benchmarks/mini_curves.py [--out benchmarks/results/mini_issue21/curves.png]

Reads the H200 training logs in benchmarks/results/mini_issue21 (the 512-token candidate: run 1 = VAE,
run 2 = VAE continued + DiT + evaluation, ``log['curves']`` measured during training on the 200 held-out
shapes) and the shipped model's log (flowlab/shape/weights/mini/train_log.json: two runs, only their final
evaluations). Panels: VAE reconstruction IoU vs cumulative VAE steps; image -> shape IoU (CFG 5) vs DiT steps;
final IoU vs parameter count (shipped 128-token model vs 512-token candidate). Overall, mug and table each.
Prints the numbers it plots.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mini_issue21"
SHIPPED = ROOT / "flowlab" / "shape" / "weights" / "mini" / "train_log.json"
KEYS = ("overall", "mug", "table")


def _load(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run the H200 training (README, 'Training the mini model') first")
    return json.loads(path.read_text())


def candidate_curves() -> tuple[list, list, dict, int]:
    r1, r2 = _load(RESULTS / "h200_run1_train_log.json"), _load(RESULTS / "h200_run2_train_log.json")
    vae = [(p["step"], p["vae_iou"]) for p in r1["curves"]["vae"]]
    off = r1["vae_steps"]
    vae += [(off + p["step"], p["vae_iou"]) for p in r2["curves"]["vae"]]
    batch = r2["options"]["dit_batch"]  # x axis: training samples seen (steps x batch)
    dit = [(p["step"] * batch, p["image_iou"]) for p in r2["curves"]["dit"]]
    dit.append((r2["dit_steps"] * batch, r2["eval"]["image_iou"]["5.0"]))
    params = sum(r2["params"].values())
    return vae, dit, r2["eval"], params


def shipped_final() -> tuple[dict, int, int, int]:
    runs = _load(SHIPPED)["runs"]
    last = runs[-1]
    return (last["eval"], sum(r["vae_steps"] for r in runs),
            sum(r["dit_steps"] * r["options"]["dit_batch"] for r in runs),
            sum(last["params"].values()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(RESULTS / "curves.png"))
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vae, dit, ev, params = candidate_curves()
    sev, svae_steps, sdit_steps, sparams = shipped_final()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = dict(zip(KEYS, ("k", "tab:orange", "tab:blue")))
    for k in KEYS:
        axes[0].plot([s for s, _ in vae], [v[k] for _, v in vae], "o-", color=colors[k], label=f"512 tokens: {k}")
        axes[0].plot([svae_steps], [sev["vae_iou"][k]], "s", color=colors[k], mfc="none", ms=9,
                     label=f"shipped (128): {k}")
        axes[1].plot([s for s, _ in dit], [v[k] for _, v in dit], "o-", color=colors[k], label=f"512 tokens: {k}")
        axes[1].plot([sdit_steps], [sev["image_iou"]["5.0"][k]], "s", color=colors[k], mfc="none", ms=9,
                     label=f"shipped (128): {k}")
        for what, ls in (("vae_iou", "-"), ("image_iou", "--")):
            a = sev[what] if what == "vae_iou" else sev[what]["5.0"]
            b = ev[what] if what == "vae_iou" else ev[what]["5.0"]
            axes[2].plot([sparams / 1e6, params / 1e6], [a[k], b[k]], "o" + ls, color=colors[k],
                         label=f"{'VAE' if what == 'vae_iou' else 'image'}: {k}")
    axes[0].axhline(0.95, color="k", lw=0.6, ls=":")
    axes[0].axhline(0.85, color="tab:red", lw=0.6, ls=":")
    axes[1].axhline(0.80, color="k", lw=0.6, ls=":")
    axes[1].axhline(0.60, color="tab:red", lw=0.6, ls=":")
    axes[0].set(title="VAE reconstruction IoU (held-out 200)\nrun 2 restarts the LR at the grey line",
                xlabel="VAE steps (cumulative)", ylabel="IoU", ylim=(0, 1))
    axes[0].axvline(_load(RESULTS / "h200_run1_train_log.json")["vae_steps"], color="grey", lw=0.6)
    axes[1].set(title="image -> shape IoU (CFG 5, 50 calls, EMA)", xlabel="DiT training samples (steps x batch)", ylim=(0, 1))
    axes[2].set(title="final IoU vs parameters (solid VAE, dashed image)", xlabel="parameters (millions)",
                ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print("VAE curve (step, overall, mug, table):")
    for s, v in vae:
        print(f"  {s:5d}  {v['overall']:.3f}  {v['mug']:.3f}  {v['table']:.3f}")
    print("image curve (samples, overall, mug, table):")
    for s, v in dit:
        print(f"  {s:8d}  {v['overall']:.3f}  {v['mug']:.3f}  {v['table']:.3f}")
    print(f"shipped: {sparams / 1e6:.1f} M params, {svae_steps} VAE steps / {sdit_steps} DiT samples: VAE "
          f"{sev['vae_iou']['overall']:.3f}, image {sev['image_iou']['5.0']['overall']:.3f}")
    print(f"512-token candidate: {params / 1e6:.1f} M params: VAE {ev['vae_iou']['overall']:.3f}, "
          f"image {ev['image_iou']['5.0']['overall']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
