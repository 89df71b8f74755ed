"""``flowlab compare``: sample one toy in both conventions from the same noise and compare.

Runs the conventional sampler (sigma: 1 -> 0) on the conventional exact velocity and the reversed
sampler (t: 0 -> 1) on the reversed exact velocity, each with its own schedule, from the same noise.
Reports the max absolute difference of the final samples (float round-off only: the two trajectories
are the same points under t = 1 - sigma; in float32 the max is set by the few samples that start near a
boundary between modes, where round-off decides the side, so the median is printed too), the same for
the reversed sampler on flip(conventional model), and for each convention the sliced W2 and energy
distance to fresh ground-truth samples, next to the floor between two ground-truth sets. The model is
the one `flowlab sample` uses (exact GMM velocity; an EM-fitted mixture for non-GMM toys).

JSON keys: dist, dim, n, steps, method, shift, device, dtype, seed, model, max_abs_diff, median_abs_diff,
max_abs_diff_flipped_model, conventional {sliced_w2, energy_distance, seconds}, reversed {...},
ground_truth_floor {sliced_w2, energy_distance}.
"""
from __future__ import annotations

import argparse
import json
import time

from .sample import add_common, check_common, check_fits, check_time, noise, quality, torch_dtype

NAME = "compare"
HELP = "sample a toy in both conventions from the same noise: max difference and quality metrics"
DESCRIPTION = __doc__


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..conventions import CONVENTIONAL, REVERSED
    from ..device import resolve_device
    from ..sampling import flip, sample
    from ..schedules import shifted
    from ..toys import get_toy, reference_gmm

    check_common(args)
    device = resolve_device(args.device)
    dtype = torch_dtype(args.dtype)
    toy = get_toy(args.dist)
    gmm, model_desc = reference_gmm(args.dist, seed=args.seed)
    check_fits(args.n, gmm.n_components, toy.dim, device)
    x0 = noise(args.n, toy.dim, args.seed, device, dtype)
    check_time(gmm.velocity_model(CONVENTIONAL), x0, shifted(args.steps, CONVENTIONAL, args.shift, dtype=dtype,
                                                             device=device), args.method, 3, args.yes, CONVENTIONAL)

    finals, rows, seconds = {}, {}, {}
    for conv in (CONVENTIONAL, REVERSED):
        schedule = shifted(args.steps, conv, args.shift, dtype=dtype, device=device)
        start = time.perf_counter()
        finals[conv.name] = sample(gmm.velocity_model(conv), x0, schedule, conv, method=args.method)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[conv.name] = round(time.perf_counter() - start, 4)
        rows[conv.name] = quality(finals[conv.name], args.dist, args.seed)
    flipped = sample(flip(gmm.velocity_model(CONVENTIONAL)), x0,
                     shifted(args.steps, REVERSED, args.shift, dtype=dtype, device=device), REVERSED,
                     method=args.method)
    per_sample = (finals["conventional"] - finals["reversed"]).abs().amax(dim=1)
    diff, diff_median = per_sample.max().item(), per_sample.median().item()
    diff_flip = (finals["conventional"] - flipped).abs().max().item()
    floor = {"sliced_w2": rows["conventional"]["floor_sliced_w2"],
             "energy_distance": rows["conventional"]["floor_energy_distance"]}
    report = {
        "dist": args.dist, "dim": toy.dim, "n": args.n, "steps": args.steps, "method": args.method,
        "shift": args.shift, "device": str(device), "dtype": args.dtype, "seed": args.seed, "model": model_desc,
        "max_abs_diff": diff,
        "median_abs_diff": diff_median,
        "max_abs_diff_flipped_model": diff_flip,
        "conventional": {"sliced_w2": rows["conventional"]["sliced_w2"],
                         "energy_distance": rows["conventional"]["energy_distance"],
                         "seconds": seconds["conventional"]},
        "reversed": {"sliced_w2": rows["reversed"]["sliced_w2"],
                     "energy_distance": rows["reversed"]["energy_distance"], "seconds": seconds["reversed"]},
        "ground_truth_floor": floor,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.dist} ({toy.dim}-D): {args.n} samples, {args.method}, {args.steps} steps, shift {args.shift:g}, "
          f"{device}, {args.dtype}")
    print(f"model: {model_desc}")
    print(f"max |conventional - reversed| of the final samples: {diff:.3e} "
          f"(median over samples {diff_median:.1e}; reversed sampler on flip(conventional model): {diff_flip:.3e})")
    print(f"{'':<22}{'sliced W2':>12}{'energy dist':>14}")
    for name in ("conventional", "reversed"):
        print(f"{name:<22}{report[name]['sliced_w2']:>12.4f}{report[name]['energy_distance']:>14.4f}")
    print(f"{'ground truth floor':<22}{floor['sliced_w2']:>12.4f}{floor['energy_distance']:>14.4f}")
    return 0
