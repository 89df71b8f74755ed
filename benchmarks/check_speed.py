"""How long flowlab.testing.check_sampler takes on a 50-step loop (goal: under 5 s on a 2-core CPU), next to the
user's loop alone (the same loop on the same exact model, nothing recorded or compared), measured in the same run.

    python benchmarks/check_speed.py [--steps 50] [--repeats 3]

Prints the median wall time of each and their ratio. check_sampler's extra work: recording every call (float64
copies), the RK4 reference from the same noise (~128 steps x 4 calls), the correct-Euler error model at the same
step count, and the reference's own error estimate (step doubling).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from flowlab.conventions import get_convention
from flowlab.testing import check_sampler
from flowlab.testing._exact import probe_mixture


def euler_loop(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    model = probe_mixture(2).velocity_model(get_convention("reversed"))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    report = check_sampler(euler_loop, "reversed", steps=args.steps)
    assert report.ok, report
    loop = _median_seconds(lambda: euler_loop(model, x, args.steps), args.repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # check_sampler runs on one thread (tiny tensors); the loop alone on one thread too
    loop1 = _median_seconds(lambda: euler_loop(model, x, args.steps), args.repeats)
    torch.set_num_threads(threads)
    check = _median_seconds(lambda: check_sampler(euler_loop, "reversed", steps=args.steps), args.repeats)
    print(f"CPU threads: {threads}, steps: {args.steps}, batch 64, 2-D mixture, median of {args.repeats}")
    print(f"the loop alone (exact model, nothing recorded): {loop:.3f} s")
    print(f"check_sampler on the same loop:                 {check:.3f} s  (goal < 5 s: "
          f"{'met' if check < 5 else 'NOT met'})")
    print(f"the loop alone on one thread:                    {loop1:.3f} s")
    print(f"ratio check / loop: {check / loop:.1f}x (against the one-thread loop: {check / loop1:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
