"""Regenerate (or check) flowlab/data/schedulers/hunyuan3d2.json from hy3dgen's own scheduler.

Run it with the interpreter that has hy3dgen 2.0.2 installed (hy3dgen pulls a CUDA torch and many
packages, so it is not a test dependency; the fixture is committed instead)::

    /tmp/hy3dgen/bin/python tools/make_scheduler_fixtures.py            # compare with the committed file
    /tmp/hy3dgen/bin/python tools/make_scheduler_fixtures.py --update   # rewrite it

What is recorded, for the pipeline's way of driving the scheduler (``sigmas = np.linspace(0, 1, N)``
passed to ``set_timesteps``; reversed convention, ``t`` runs 0 -> 1):

* ``cases``: for N in (2, 5, 10), the scheduler's ``timesteps`` and ``sigmas``, a seeded initial
  sample ``x_init (4, 3)``, seeded model outputs (one ``(4, 3)`` per call) and every state of the
  step loop (``states[k]`` after k calls, ``final`` = ``states[-1]``), all float32;
* ``scale_noise``: one call of the scheduler's ``scale_noise`` (kept from diffusers, conventional mix);
* ``inspection``: flowlab's inspector run on the real scheduler class (N = 5 and 10), as a dict.

Tests (tests/test_atlas_hunyuan.py, tests/test_inspector.py) compare flowlab's
``schedules.hunyuan_compat`` + sampler + inspector against these numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "flowlab" / "data" / "schedulers" / "hunyuan3d2.json"  # package data: resources.data_dir("schedulers")


def build() -> dict:
    import numpy as np
    import torch
    import diffusers
    import hy3dgen
    from hy3dgen.shapegen.pipelines import retrieve_timesteps
    from hy3dgen.shapegen.schedulers import FlowMatchEulerDiscreteScheduler

    sys.path.insert(0, str(ROOT))
    from flowlab.inspector import inspect_scheduler

    gen = torch.Generator().manual_seed(2024)
    cases = []
    for n in (2, 5, 10):
        sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
        timesteps, _ = retrieve_timesteps(sched, n, "cpu", sigmas=np.linspace(0, 1, n))
        x = torch.randn(4, 3, generator=gen, dtype=torch.float32)
        x_init = x.clone()
        outputs, states = [], []
        for t in timesteps:
            v = torch.randn(4, 3, generator=gen, dtype=torch.float32)
            x = sched.step(v, t, x).prev_sample
            outputs.append(v.tolist())
            states.append(x.tolist())
        cases.append({"num_inference_steps": n, "timesteps": [float(t) for t in timesteps],
                      "sigmas": [float(s) for s in sched.sigmas], "x_init": x_init.tolist(),
                      "model_outputs": outputs, "states": states, "final": x.tolist()})

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    retrieve_timesteps(sched, 10, "cpu", sigmas=np.linspace(0, 1, 10))
    sample = torch.randn(4, 3, generator=gen, dtype=torch.float32)
    noise = torch.randn(4, 3, generator=gen, dtype=torch.float32)
    t = sched.timesteps[3:4]
    mixed = sched.scale_noise(sample, t, noise)
    scale_noise = {"timestep": float(t[0]), "sigma": float(sched.sigmas[3]), "sample": sample.tolist(),
                   "noise": noise.tolist(), "output": mixed.tolist()}

    inspection = {}
    for n in (5, 10):
        report = inspect_scheduler(FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000), None,
                                   sigmas=np.linspace(0, 1, n).tolist(),
                                   source="hy3dgen FlowMatchEulerDiscreteScheduler, sigmas = linspace(0, 1, N)")
        inspection[str(n)] = report.as_dict()

    return {"generator": "tools/make_scheduler_fixtures.py",
            "versions": {"hy3dgen": getattr(hy3dgen, "__version__", "2.0.2"), "diffusers": diffusers.__version__,
                         "torch": torch.__version__.split("+")[0]},
            "cases": cases, "scale_noise": scale_noise, "inspection": inspection}


def _diff(a: object, b: object, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k == "versions":
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in one file")
            else:
                out += _diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6 * max(1.0, abs(a))
        return [] if same else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the committed fixture")
    args = parser.parse_args()
    fresh = build()
    if args.update:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(fresh, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
        return 0
    if not OUT.is_file():
        print(f"{OUT.relative_to(ROOT)} does not exist; run with --update", file=sys.stderr)
        return 1
    diffs = _diff(json.loads(OUT.read_text(encoding="utf-8")), fresh)
    for d in diffs[:20]:
        print(d)
    print("fixture matches" if not diffs else f"{len(diffs)} differences; rerun with --update if intended")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
