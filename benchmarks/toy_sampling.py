"""Time the sampler: 1e6 2-D particles x 100 Euler steps with the exact 8-Gaussian velocity.

Runs, on the same noise (drawn on the CPU from --seed, so identical on every device):

1. ``flowlab.sampling.sample`` with ``GaussianMixture.velocity`` (check_finite on, the default);
2. the same with ``check_finite=False`` (no end-of-loop sync, no per-step flags);
3. a plain torch peer: a hand-written loop ``x = x + (s_next - s) * v`` with the isotropic mixture velocity
   written inline (independent of flowlab.gmm), the bar the sampler should match.

Prints the best-of-``--repeats`` wall times, their ratios, the max difference between the sampler and the
peer, and the max difference between CPU and GPU results on the first ``--subset`` particles (same seed).

    python3 benchmarks/toy_sampling.py               # CUDA: 1e6 particles x 100 steps
    python3 benchmarks/toy_sampling.py --smoke       # CPU, seconds
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowlab import CONVENTIONAL  # noqa: E402
from flowlab.gmm import eight_gaussians_gmm  # noqa: E402
from flowlab.sampling import sample  # noqa: E402
from flowlab.schedules import uniform  # noqa: E402

RADIUS, STD = 2.0, 0.15  # must match flowlab.gmm.eight_gaussians_gmm() defaults


def peer_velocity(x: Tensor, sigma: Tensor, mu: Tensor) -> Tensor:
    """Conventional marginal velocity of 8 equal isotropic Gaussians, plain torch. x: (N, 2), sigma: 0-dim."""
    a, b = 1 - sigma, sigma
    c = a * a * STD**2 + b * b
    r = x[:, None, :] - a * mu[None]  # (N, 8, 2)
    logits = -0.5 * (r * r).sum(-1) / c  # equal weights and a shared c: constants cancel in the softmax
    p = torch.softmax(logits, dim=1)[:, :, None]
    d_hat = (p * (mu[None] + a * STD**2 / c * r)).sum(1)
    e_hat = (p * (b / c * r)).sum(1)
    return e_hat - d_hat  # v = E - D in the conventional convention


def peer_loop(x: Tensor, ts: Tensor, mu: Tensor) -> Tensor:
    for i in range(ts.shape[0] - 1):
        x = x + (ts[i + 1] - ts[i]) * peer_velocity(x, ts[i], mu)
    return x


def timed(fn, device: torch.device, repeats: int) -> tuple[float, Tensor]:
    best, out = math.inf, None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="particles (default 1e6)")
    p.add_argument("--steps", type=int, default=100, help="Euler steps (default 100)")
    p.add_argument("--device", default="cuda", help="device to time on (default cuda)")
    p.add_argument("--subset", type=int, default=20_000, help="particles re-run on the CPU for the comparison")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, best is reported (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="CPU, 20k particles, 10 steps: a quick check")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.steps, args.device, args.subset, args.repeats = 20_000, 10, "cpu", 2_000, 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible; run with --smoke or --device cpu", file=sys.stderr)
        return 1

    gmm = eight_gaussians_gmm(RADIUS, STD)
    model = gmm.velocity_model(CONVENTIONAL)
    x0_cpu = torch.randn(args.n, 2, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64).float()
    x0 = x0_cpu.to(device)
    ts = uniform(args.steps, CONVENTIONAL, device=device)
    mu = gmm.means.to(device=device, dtype=torch.float32)

    with torch.inference_mode():
        # warm-up (kernel selection, parameter caches) on a small batch
        sample(model, x0[:1024], ts, CONVENTIONAL)
        peer_loop(x0[:1024], ts, mu)
        t_sampler, out = timed(lambda: sample(model, x0, ts, CONVENTIONAL), device, args.repeats)
        t_nocheck, out_nc = timed(lambda: sample(model, x0, ts, CONVENTIONAL, check_finite=False), device,
                                  args.repeats)
        t_peer, out_peer = timed(lambda: peer_loop(x0, ts, mu), device, args.repeats)
        m = min(args.subset, args.n)
        cpu_out = sample(model, x0_cpu[:m], ts.cpu(), CONVENTIONAL)

    diff_peer = (out - out_peer).abs().amax(1)
    diff_cpu = (out[:m].cpu() - cpu_out).abs().amax(1)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "particles": args.n, "steps": args.steps, "dtype": "float32",
        "seconds_sampler": round(t_sampler, 4),
        "seconds_sampler_no_check": round(t_nocheck, 4),
        "seconds_plain_loop": round(t_peer, 4),
        "ratio_sampler_to_plain": round(t_sampler / t_peer, 3),
        "ratio_no_check_to_plain": round(t_nocheck / t_peer, 3),
        "particle_steps_per_second": round(args.n * args.steps / t_sampler),
        "max_abs_diff_sampler_vs_plain": diff_peer.max().item(),
        "median_abs_diff_sampler_vs_plain": diff_peer.median().item(),
        "max_abs_diff_check_vs_no_check": (out - out_nc).abs().max().item(),
        "cpu_subset": m,
        "max_abs_diff_cpu_vs_device": diff_cpu.max().item(),
        "median_abs_diff_cpu_vs_device": diff_cpu.median().item(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.n} particles x {args.steps} Euler steps, exact 8-Gaussian velocity, float32, "
          f"{report['device']}, torch {torch.__version__}")
    print(f"flowlab.sample (check_finite)   {t_sampler:9.4f} s   x{report['ratio_sampler_to_plain']:.2f} of plain loop")
    print(f"flowlab.sample (no check)       {t_nocheck:9.4f} s   x{report['ratio_no_check_to_plain']:.2f} of plain loop")
    print(f"plain torch loop (peer)         {t_peer:9.4f} s")
    print(f"max |sampler - peer| = {report['max_abs_diff_sampler_vs_plain']:.3e} "
          f"(median {report['median_abs_diff_sampler_vs_plain']:.1e})")
    print(f"max |CPU - {device.type}| on the first {m} particles = {report['max_abs_diff_cpu_vs_device']:.3e} "
          f"(median {report['median_abs_diff_cpu_vs_device']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
