"""Per-step overhead of ``sample()`` with a callback that reads the predictions, before and after the
SymPy facts of a Convention became fields computed once when it is built.

Before (``--baseline``, default b377956): ``Convention.is_straight`` was a property calling
``sp.simplify`` on every ``pred_data`` / ``pred_noise``, and the sampler's callback made two such calls a
step. After (this checkout): no SymPy call on the sampling path.

For each of ``reversed`` (straight) and ``vp_cosine`` (curved) it times, in the same process,
``sample()`` of ``--particles`` 2-D particles over ``--steps`` Euler steps with and without a callback that
reads ``info.pred_data`` / ``info.pred_noise``; the per-step overhead is the difference divided by the
number of steps. The baseline is measured from the old commit's ``flowlab/`` (``git archive`` into a
temporary folder) in a subprocess, the current code in another, with the same script, so both run the
same model, the same noise and the same timer. Prints both, and the ratio before / after.

    python3 benchmarks/sampling_overhead.py                  # CPU, ~1 min (the baseline vp_cosine is slow)
    python3 benchmarks/sampling_overhead.py --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONVENTIONS = ("reversed", "vp_cosine")
BASELINE = "b377956"  # the last commit whose Convention called SymPy on every prediction


def _measure(particles: int, steps: int, reps: int) -> dict:
    """Worker: time sample() with / without a prediction-reading callback, with whichever flowlab is on sys.path."""
    import torch

    import flowlab
    from flowlab import schedules as S
    from flowlab.conventions import get_convention
    from flowlab.sampling import sample

    torch.set_num_threads(1)
    out = {"flowlab": str(Path(flowlab.__file__).parent)}
    for name in CONVENTIONS:
        conv = get_convention(name)
        ts = S.uniform(steps, conv)
        x = torch.randn(particles, 2, generator=torch.Generator().manual_seed(0))
        sink: list = []

        def model(x, t):
            return torch.tanh(x) * (1 + t[:, None]) - 0.3

        def read(info) -> None:
            sink.append((info.pred_data, info.pred_noise))

        best = {}
        for label, cb in (("plain", None), ("callback", read)):
            times = []
            for _ in range(reps + 1):  # the first run warms up
                sink.clear()
                t0 = time.perf_counter()
                sample(model, x, ts, conv, callback=cb)
                times.append(time.perf_counter() - t0)
            best[label] = min(times[1:])
        out[name] = {"plain_ms": 1e3 * best["plain"], "callback_ms": 1e3 * best["callback"],
                     "overhead_per_step_ms": 1e3 * (best["callback"] - best["plain"]) / steps}
    return out


def _run_worker(src: Path, args: argparse.Namespace) -> dict:
    """Run this script's worker in a subprocess that imports flowlab from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--particles", str(args.particles),
           "--steps", str(args.steps), "--reps", str(args.reps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=src)
    if done.returncode != 0:
        raise SystemExit(f"worker for {src} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _baseline_tree(rev: str, into: Path) -> Path:
    """``flowlab/`` of commit ``rev`` extracted under ``into`` (git archive)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "flowlab"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"cannot read commit {rev!r} from {ROOT}: {archive.stderr.decode().strip()}; "
                         "run from a git checkout or pass --baseline REV")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _table(before: dict, after: dict, args: argparse.Namespace) -> list[str]:
    lines = [f"sample(): {args.particles} particles (2-D), {args.steps} Euler steps, best of {args.reps}, "
             "1 CPU thread; callback reads info.pred_data / info.pred_noise",
             f"{'convention':<11} {'':>7} {'no callback':>12} {'callback':>11} {'overhead/step':>14}"]
    for name in CONVENTIONS:
        for label, res in (("before", before[name]), ("after", after[name])):
            lines.append(f"{name:<11} {label:>7} {res['plain_ms']:>9.1f} ms {res['callback_ms']:>8.1f} ms "
                         f"{res['overhead_per_step_ms']:>11.3f} ms")
    for name in CONVENTIONS:
        ratio = before[name]["overhead_per_step_ms"] / max(after[name]["overhead_per_step_ms"], 1e-6)
        lines.append(f"{name}: per-step overhead {ratio:,.0f}x smaller after (before / after)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help="the commit measured as 'before' (default %(default)s)")
    ap.add_argument("--particles", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.particles, args.steps, args.reps)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        before = _run_worker(_baseline_tree(args.baseline, Path(tmp)), args)
        after = _run_worker(ROOT, args)
    lines = _table(before, after, args)
    print("\n".join(lines))
    if args.json is not None:
        args.json.write_text(json.dumps({"baseline": args.baseline, "before": before, "after": after,
                                         "particles": args.particles, "steps": args.steps}, indent=2) + "\n")


if __name__ == "__main__":
    main()
