"""Portability run: every notebook under nbval on several CPU configurations, and every claim's margin.

CI runs the notebooks on one machine; users run them on others. This script shows that the stored
outputs do not depend on the CPU's vector unit or the thread count, and how close each claim comes to
its tolerance on any of them:

    python tools/portability.py                  # all notebooks, every configuration this CPU supports
    python tools/portability.py --configs default-1t avx2-2t notebooks/02_*.ipynb

Each configuration is one fresh ``python -m pytest`` (nbval) over the notebooks with:

* ``ATEN_CPU_CAPABILITY`` = ``default`` (torch's plain vector kernels, as on a CPU without AVX2),
  ``avx2``, and ``avx512`` where /proc/cpuinfo lists avx512f;
* ``OMP_NUM_THREADS`` = 1 or 2, and, in one configuration, ``torch.set_num_threads(3)`` called by an
  IPython startup file inside each kernel (a thread count that differs from the OpenMP one).

The kernels append every ``claim()`` to a JSON-lines file (``FLOWLAB_CLAIMS_FILE``), so the report also
lists, per claim, the largest measured value over all configurations against its tolerance. A claim whose
largest value exceeds half its tolerance is flagged "near". Writes build/portability/report.md and
report.json; exit status 0 only when every configuration passed and no claim failed.
Takes about 3-4 min a configuration on a 2-core machine (the notebooks' own run time).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    name: str
    capability: str
    omp_threads: int
    torch_threads: int | None = None  # torch.set_num_threads inside each kernel, when not None

    def describe(self) -> str:
        extra = f", torch.set_num_threads({self.torch_threads})" if self.torch_threads else ""
        return f"ATEN_CPU_CAPABILITY={self.capability}, OMP_NUM_THREADS={self.omp_threads}{extra}"


CONFIGS = (
    Config("default-1t", "default", 1),
    Config("avx2-2t", "avx2", 2),
    Config("avx2-1t-torch3", "avx2", 1, torch_threads=3),
    Config("avx512-2t", "avx512", 2),
)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def supported(config: Config, flags: set[str]) -> bool:
    need = {"default": set(), "avx2": {"avx2"}, "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq"}}
    return need[config.capability] <= flags


@dataclass
class Outcome:
    config: Config
    passed: bool
    summary: str
    seconds: float
    capability_seen: str
    claims: list[dict] = field(default_factory=list)


def _startup_dir(tmp: Path, config: Config) -> Path:
    """An IPYTHONDIR whose startup file records the kernel's CPU capability and sets torch's threads."""
    ipy = tmp / f"ipython_{config.name}"
    startup = ipy / "profile_default" / "startup"
    startup.mkdir(parents=True)
    seen = tmp / f"capability_{config.name}.txt"
    threads = f"torch.set_num_threads({config.torch_threads})\n" if config.torch_threads else ""
    (startup / "00-portability.py").write_text(
        "import torch\n" + threads +
        f"with open({str(seen)!r}, 'a') as fh:\n"
        "    fh.write(f'{torch.backends.cpu.get_cpu_capability()} {torch.get_num_threads()}\\n')\n")
    return ipy


def run_config(config: Config, notebooks: list[str], tmp: Path, python: str) -> Outcome:
    claims_file = tmp / f"claims_{config.name}.jsonl"
    env = dict(os.environ, ATEN_CPU_CAPABILITY=config.capability, OMP_NUM_THREADS=str(config.omp_threads),
               FLOWLAB_CLAIMS_FILE=str(claims_file), IPYTHONDIR=str(_startup_dir(tmp, config)),
               PYTHONHASHSEED="0")
    start = time.perf_counter()
    proc = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *notebooks], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = lines[-1].strip("= ") if lines else proc.stderr.strip()[-200:]
    log = tmp / f"nbval_{config.name}.log"
    log.write_text(proc.stdout + proc.stderr)
    seen_path = tmp / f"capability_{config.name}.txt"
    seen = sorted(set(seen_path.read_text().split("\n")) - {""}) if seen_path.exists() else ["(no kernel started)"]
    claims = [json.loads(ln) for ln in claims_file.read_text().splitlines()] if claims_file.exists() else []
    return Outcome(config, proc.returncode == 0, summary, seconds, "; ".join(seen), claims)


def claim_margins(outcomes: list[Outcome]) -> list[dict]:
    """Per claim: tolerance, largest value over all configurations, and value / tolerance."""
    rows: dict[tuple[str, float], dict] = {}
    for outcome in outcomes:
        for c in outcome.claims:
            key = (c["claim"], c["tol"])
            row = rows.setdefault(key, {"claim": c["claim"], "tol": c["tol"], "kind": c["kind"], "max": 0.0,
                                        "failed_in": []})
            if not c["passed"]:
                row["failed_in"].append(outcome.config.name)
            if c["error"] is not None:
                row["max"] = max(row["max"], float(c["error"]))
    for row in rows.values():
        row["ratio"] = (row["max"] / row["tol"]) if row["tol"] else 0.0
    return sorted(rows.values(), key=lambda r: -r["ratio"])


def report(outcomes: list[Outcome], margins: list[dict], skipped: list[Config]) -> str:
    out = ["# Portability run", "", "| configuration | torch saw (capability, threads) | nbval | time |",
           "|---|---|---|---|"]
    for o in outcomes:
        out.append(f"| {o.config.describe()} | {o.capability_seen} | {'PASS' if o.passed else 'FAIL'}: "
                   f"{o.summary} | {o.seconds:.0f} s |")
    for c in skipped:
        out.append(f"| {c.describe()} | - | skipped: this CPU lacks it | - |")
    near = sum(1 for r in margins if r["ratio"] > 0.5)
    out += ["", f"{len(margins)} claims; largest measured value over all configurations against the tolerance "
                f"({near} above half of it, marked 'near'):", "",
            "| claim | kind | tolerance | largest value | value / tol | |", "|---|---|---|---|---|---|"]
    for r in margins:
        flag = "FAILED in " + ", ".join(r["failed_in"]) if r["failed_in"] else ("near" if r["ratio"] > 0.5 else "")
        out.append(f"| {r['claim']} | {r['kind']} | {r['tol']:.0e} | {r['max']:.3e} | {r['ratio']:.3f} | {flag} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every notebook)")
    parser.add_argument("--configs", nargs="+", choices=[c.name for c in CONFIGS],
                        help="configurations to run (default: all this CPU supports)")
    parser.add_argument("--out", default=str(ROOT / "build" / "portability"), help="report folder")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").rglob("*.ipynb")
                                         if ".ipynb_checkpoints" not in p.parts)
    flags = cpu_flags()
    chosen = [c for c in CONFIGS if not args.configs or c.name in args.configs]
    runnable = [c for c in chosen if supported(c, flags)]
    skipped = [c for c in chosen if c not in runnable]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="flowlab-portability-") as tmp:
        for config in runnable:
            print(f"== {config.describe()}", flush=True)
            outcome = run_config(config, notebooks, Path(tmp), sys.executable)
            print(f"   {'PASS' if outcome.passed else 'FAIL'}: {outcome.summary} ({outcome.seconds:.0f} s; torch saw "
                  f"{outcome.capability_seen})", flush=True)
            if not outcome.passed:
                (out / f"nbval_{config.name}.log").write_text((Path(tmp) / f"nbval_{config.name}.log").read_text())
            outcomes.append(outcome)
    margins = claim_margins(outcomes)
    text = report(outcomes, margins, skipped)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({
        "configs": [{"name": o.config.name, "describe": o.config.describe(), "passed": o.passed, "summary": o.summary,
                     "seconds": round(o.seconds, 1), "torch_saw": o.capability_seen} for o in outcomes],
        "skipped": [c.name for c in skipped], "claims": margins}, indent=2))
    print(text)
    ok = outcomes and all(o.passed for o in outcomes) and not any(r["failed_in"] for r in margins)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
