"""Time ``flowlab --help`` and every ``flowlab CMD --help`` against ``python -c pass``, in the same run.

Each is a fresh interpreter (as a user's shell starts it); the median of ``--reps`` runs is printed with
the time above the bare interpreter's start and the ratio to it. For scale, the same run also times
``python -c "import torch, sympy"``: what every --help cost when the package imported them eagerly.
The goal is < 1.5 s per --help; the exit status is 1 when a command misses it.

    python benchmarks/cli_help.py              # 5 runs each
    python benchmarks/cli_help.py --reps 11
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 1.5


def median_seconds(argv: list[str], reps: int, env: dict[str, str]) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed runs per command (default 5)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sys.path.insert(0, str(ROOT))
    from flowlab.cli import build_parser

    commands = sorted(build_parser()[1])
    py = sys.executable
    base = median_seconds([py, "-c", "pass"], args.reps, env)
    eager = median_seconds([py, "-c", "import torch, sympy"], args.reps, env)
    print(f"python -c pass: {base:.3f} s (baseline); python -c 'import torch, sympy': {eager:.3f} s "
          f"({eager / base:.1f}x the baseline)")
    print(f"{'command':<32}{'median s':>10}{'above baseline':>16}{'x baseline':>12}  goal < {GOAL_S} s")
    slow = []
    for cmd in [None, *commands]:
        argv = [py, "-m", "flowlab.cli", *([cmd] if cmd else []), "--help"]
        t = median_seconds(argv, args.reps, env)
        label = f"flowlab {cmd + ' ' if cmd else ''}--help"
        ok = t < GOAL_S
        slow += [] if ok else [label]
        print(f"{label:<32}{t:>10.3f}{t - base:>16.3f}{t / base:>12.1f}  {'ok' if ok else 'SLOW'}")
    if slow:
        print(f"over {GOAL_S} s: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
