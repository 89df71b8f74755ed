"""Time the quality metrics of ``flowlab sample`` against the previous implementation, in the same run.

For each ``--n``: ``flowlab.commands.sample.quality`` (SW2 on a seeded subset of at most 20,000 rows,
NumPy's sort on the CPU; energy distance on 2,000 rows) against the baseline it replaced, written out
here: SW2 on ALL rows with ``torch.sort`` along dim 0 (fresh ground truth of n rows, twice), the same
energy distance. Prints the times, their ratio and the metric values of both (the subset estimates the
full-set value; their difference is seed noise of order ``1 / sqrt(20000)``).

    python benchmarks/metrics_speed.py                       # n = 20000, 100000, 1000000 on the CPU
    python benchmarks/metrics_speed.py --n 20000 --smoke     # seconds
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowlab.commands.sample import ENERGY_MAX, quality  # noqa: E402
from flowlab.metrics import energy_distance  # noqa: E402
from flowlab.toys import sample_toy  # noqa: E402


def baseline_sw2(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """The previous sliced_wasserstein: every row, torch.sort along dim 0."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(device=x.device, dtype=x.dtype)
    a, b = (x @ theta).sort(0).values, (y @ theta).sort(0).values
    return float(((a - b) ** 2).mean(0).mean().sqrt())


def baseline_quality(samples: torch.Tensor, dist: str, seed: int) -> dict:
    n = samples.shape[0]
    truth = sample_toy(dist, n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float32)
    other = sample_toy(dist, n, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float32)
    s, m = samples.float(), min(n, ENERGY_MAX)
    return {"sliced_w2": round(baseline_sw2(s, truth), 6),
            "energy_distance": round(energy_distance(s[:m], truth[:m], max_samples=None), 6),
            "floor_sliced_w2": round(baseline_sw2(other, truth), 6),
            "floor_energy_distance": round(energy_distance(other[:m], truth[:m], max_samples=None), 6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[20_000, 100_000, 1_000_000])
    ap.add_argument("--dist", default="eight_gaussians")
    ap.add_argument("--smoke", action="store_true", help="n = 20000 only")
    args = ap.parse_args()
    rows = []
    for n in ([20_000] if args.smoke else args.n):
        # stand-in samples: the toy itself from another seed (the metric's cost does not depend on the values)
        x = sample_toy(args.dist, n, generator=torch.Generator().manual_seed(99), dtype=torch.float32)
        t0 = time.perf_counter()
        new = quality(x, args.dist, 0)
        t1 = time.perf_counter()
        old = baseline_quality(x, args.dist, 0)
        t2 = time.perf_counter()
        rows.append({"n": n, "flowlab_s": round(t1 - t0, 3), "baseline_s": round(t2 - t1, 3),
                     "speedup": round((t2 - t1) / (t1 - t0), 1), "flowlab": new, "baseline": old})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
