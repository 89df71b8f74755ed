"""``flowlab inspect NAME``: probe a scheduler numerically and print its convention card."""
from __future__ import annotations

import argparse
import importlib.util
import json
import math

from ..errors import FlowlabError

#: The most steps the probe runs (it deep-copies the scheduler and calls each step twice).
MAX_INSPECT_STEPS = 10_000

NAME = "inspect"
HELP = "probe a scheduler (e.g. diffusers.FlowMatchEulerDiscreteScheduler) and print its convention card"
DESCRIPTION = """\
Probe a scheduler's step numerically and derive the direction of time, no-op steps, the shift,
the time scale, what the model must output and the correct data and noise predictions.
A step that is affine in the sample and the model output (Euler-type) is read coefficient by
coefficient; a multistep or second-order scheduler (DPMSolverMultistep, UniPCMultistep,
FlowMatchHeun) is driven like a pipeline drives it, with an exact Gaussian-mixture model, and the
time map / model output that lands on the exact answer is reported with the solver order.

NAME is a dotted class path (diffusers.FlowMatchEulerDiscreteScheduler), FILE.py:CLASS, or an alias:
  hunyuan3d2   Hunyuan3D-2's scheduler driven as its pipeline does (sigmas = linspace(0, 1, N));
               hy3dgen's class if installed, else flowlab.schedules.hunyuan_compat.
Dotted names are imported only from diffusers, hy3dgen, flow_matching, k_diffusion, torchcfm and
flowlab (never from the working folder); your own module needs --allow-import MODULE. The class is
checked (set_timesteps and step defined) before it is constructed.

Exit status: 0 when a card was derived, 1 when none could be (the card says why) or on a bad
name or argument.

examples:
  flowlab inspect diffusers.FlowMatchEulerDiscreteScheduler --shift 3
  flowlab inspect diffusers.FlowMatchEulerDiscreteScheduler --mu 0.8 --json
  flowlab inspect hunyuan3d2 --steps 50
  flowlab inspect diffusers.DPMSolverMultistepScheduler --config use_flow_sigmas=true \
      --config flow_shift=3.0 --config prediction_type=flow_prediction
  flowlab inspect my_sched.py:MyScheduler
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="dotted scheduler class (module.Class) or an alias (hunyuan3d2)")
    parser.add_argument("--steps", type=int, default=10, help="number of inference steps / model calls, "
                        f"1 .. {MAX_INSPECT_STEPS} (default 10)")
    parser.add_argument("--shift", type=float, default=None, help="passed to the scheduler's constructor as shift=")
    parser.add_argument("--mu", type=float, default=None,
                        help="dynamic shifting: constructs with use_dynamic_shifting=True, set_timesteps(mu=MU)")
    parser.add_argument("--sigmas", type=str, default=None,
                        help="comma-separated custom sigmas passed to set_timesteps(sigmas=...)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="constructor option (repeatable); VALUE is an int, float, true/false, none or a string, "
                             "never evaluated, e.g. --config use_flow_sigmas=true --config flow_shift=3.0")
    parser.add_argument("--allow-import", action="append", default=[], metavar="MODULE",
                        help="opt in to importing MODULE (it may run code) for a scheduler outside the known packages")
    parser.add_argument("--json", action="store_true", help="print the card as JSON")


def _parse_sigmas(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        vals = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise FlowlabError(f"--sigmas must be comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise FlowlabError(f"--sigmas must be finite numbers, got {text!r}")
    if len(vals) > MAX_INSPECT_STEPS:
        raise FlowlabError(f"--sigmas has {len(vals)} values, more than the limit of {MAX_INSPECT_STEPS:,}")
    diffs = [b - a for a, b in zip(vals, vals[1:])]
    if any(d > 0 for d in diffs) and any(d < 0 for d in diffs):
        first = next(d for d in diffs if d != 0)
        i = next(k for k, d in enumerate(diffs) if d * first < 0)
        raise FlowlabError(f"--sigmas {text!r} is not monotone (it turns at {vals[i]:g} -> {vals[i + 1]:g}): a schedule "
                           "runs from the noise end to the data end in one direction, e.g. 1,0.75,0.5,0.25")
    if len(vals) > 1 and all(d == 0 for d in diffs):
        raise FlowlabError(f"--sigmas {text!r} has no step that moves: every value is {vals[0]:g}")
    return vals


#: The shifts --shift / --mu may ask for: beyond them float32 noise levels collapse onto 1 (or 0) and the schedule
#: has repeated steps that schedulers cannot look up (diffusers then fails inside step()).
MAX_SHIFT = 1e4


def _check_shift(shift: float | None, mu: float | None) -> None:
    """--shift makes a schedule only when finite and > 0 (SD3: s sigma / (1 + (s - 1) sigma)); --mu finite."""
    if shift is not None and not (math.isfinite(shift) and shift > 0):
        raise FlowlabError(f"--shift {shift:g} makes no schedule: the SD3 shift s sigma / (1 + (s - 1) sigma) needs a "
                           "finite s > 0 (s > 1 moves steps toward noise, s < 1 toward data, 1 = none)")
    if shift is not None and not 1 / MAX_SHIFT <= shift <= MAX_SHIFT:
        raise FlowlabError(f"--shift {shift:g} is outside {1 / MAX_SHIFT:g} .. {MAX_SHIFT:g}: the shifted noise levels "
                           "would round to the same float32 value (every step at noise 1 or at data), which no "
                           "scheduler can step through; real models use shifts between 0.3 and 10")
    if mu is not None and not math.isfinite(mu):
        raise FlowlabError(f"--mu {mu:g} is not a finite number (dynamic shifting uses shift = exp(mu))")
    lim = math.log(MAX_SHIFT)
    if mu is not None and abs(mu) > lim:
        raise FlowlabError(f"--mu {mu:g} is outside -{lim:.2f} .. {lim:.2f}: dynamic shifting uses shift = exp(mu), "
                           f"and exp({mu:g}) is " + ("too large for a float" if mu > 709 else f"{math.exp(mu):.3g}")
                           + f", beyond the shifts 1/{MAX_SHIFT:g} .. {MAX_SHIFT:g} whose noise levels stay distinct "
                           "in float32; real models use mu between about 0.5 and 1.2")


def _hunyuan(steps: int):
    from ..inspector import inspect_scheduler, inspect_step, schedule_step

    if importlib.util.find_spec("hy3dgen") is not None:
        import numpy as np
        from hy3dgen.shapegen.schedulers import FlowMatchEulerDiscreteScheduler

        return inspect_scheduler(FlowMatchEulerDiscreteScheduler(), None,
                                 sigmas=np.linspace(0, 1, steps).tolist(),
                                 source="hy3dgen FlowMatchEulerDiscreteScheduler, sigmas = linspace(0, 1, N)")
    from ..schedules import hunyuan_compat

    step, timesteps = schedule_step(hunyuan_compat(steps))
    return inspect_step(step, timesteps, source="Hunyuan3D-2 (flowlab.schedules.hunyuan_compat; hy3dgen not installed)")


def run(args: argparse.Namespace) -> int:
    from ..inspector import inspect_scheduler
    from ..limits import check_count
    from ..scheduler_import import ALIASES, construct_scheduler, parse_config, resolve_scheduler

    check_count(args.steps, "--steps", maximum=MAX_INSPECT_STEPS,
                why="the probe calls every step twice on a copy of the scheduler; 10 to 100 steps show everything")
    _check_shift(args.shift, args.mu)
    sigmas = _parse_sigmas(args.sigmas)
    if args.name in ALIASES:
        if args.name == "hunyuan3d2":
            if args.shift is not None or args.mu is not None or sigmas is not None or args.config:
                raise FlowlabError("hunyuan3d2 takes only --steps (its pipeline fixes the sigmas, shift 1)")
            result = _hunyuan(args.steps)
    else:
        options = parse_config(args.config)
        cls = resolve_scheduler(args.name, allow_import=args.allow_import)
        if args.shift is not None:
            options["shift"] = args.shift
        if args.mu is not None:
            options["use_dynamic_shifting"] = True
        if (args.shift is not None or args.mu is not None) and not _takes(cls, "shift" if args.shift else
                                                                         "use_dynamic_shifting"):
            raise FlowlabError(f"{args.name} takes no shift option; drop --shift / --mu for schedulers that do not take "
                               "them (or pass the scheduler's own option with --config KEY=VALUE)")
        scheduler = construct_scheduler(cls, options, args.name)
        label = args.name + "".join(f" {k}={v!r}" if not isinstance(v, float) else f" {k}={v:g}"
                                    for k, v in options.items() if k != "use_dynamic_shifting")
        label += f" mu={args.mu:g}" if args.mu is not None else ""
        result = inspect_scheduler(scheduler, None if sigmas is not None else args.steps, sigmas=sigmas, mu=args.mu,
                                   source=label)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, allow_nan=False))
    else:
        print(result.card())
    return 0 if result.derived else 1


def _takes(cls: type, option: str) -> bool:
    import inspect as _inspect

    params = _inspect.signature(cls).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
