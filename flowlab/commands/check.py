"""``flowlab check FILE.py:FUNCTION``: check YOUR sampling loop (or prediction function) against the exact flow.

Loads only FILE.py (from its path; nothing is added to sys.path, no other file of yours is imported unless FILE.py
imports it) and calls only FUNCTION, once:

* default: FUNCTION is a sampling loop ``fn(model, x, steps) -> samples`` (flowlab.testing.check_sampler). The
  model is an exact Gaussian-mixture velocity in --convention, taking time on --time-scale, called as
  --signature says: positional ``model(x, t)``, diffusers ``model(x, timestep=t).sample``, hunyuan
  ``model(x, t, cond)``;
* ``--prediction data|noise``: FUNCTION is ``fn(x, v, t) -> prediction`` (flowlab.testing.check_prediction).

Exit status: 0 when nothing is wrong, 1 with findings (printed one per line, or --json), 2 for bad usage (no
such file or function, bad flags, or the function could not be run as the contract says).

Examples::

    flowlab check my_port.py:sample --convention reversed --signature hunyuan
    flowlab check pipe.py:denoise --convention conventional --time-scale 1000 --signature diffusers --json
    flowlab check utils.py:pred_x1 --convention reversed --prediction data
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

from ..cli import in_flags
from ..errors import FlowlabError

NAME = "check"
HELP = "check your own sampling loop or prediction function (FILE.py:FUNCTION) against the exact flow"
DESCRIPTION = __doc__
#: dtype names for --dtype (torch.<name>; written out so --help imports no torch)
_DTYPES = ("float16", "float32", "float64")
#: the straight conventions (the ones the checks handle), written out so --help imports no torch or SymPy;
#: tests/test_cli_help.py keeps them equal to flowlab.conventions.CONVENTIONS
_STRAIGHT = ("conventional", "reversed")
#: the call signatures of flowlab.testing._exact.SIGNATURES (kept equal by tests/test_cli_help.py)
SIGNATURES = ("positional", "diffusers", "hunyuan")
#: library spellings in error messages -> this command's flags
FLAGS = {"time_scale": "--time-scale", "signature=": "--signature ", "shift must": "--shift must"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="FILE.py:FUNCTION", help="the file and the function in it to check")
    p.add_argument("--convention", required=True, choices=_STRAIGHT,
                   help="the convention the model is trained in (conventional: sigma 1 -> 0; reversed: t 0 -> 1)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="what the model's time is multiplied by (1000 for 0-1000 timesteps; default 1)")
    p.add_argument("--signature", choices=SIGNATURES, default="positional",
                   help="how the loop calls the model (default positional: model(x, t))")
    p.add_argument("--prediction", choices=("data", "noise"), default=None,
                   help="FUNCTION is a prediction fn(x, v, t) of this endpoint instead of a sampling loop")
    p.add_argument("--steps", type=int, default=50, help="steps passed to the loop (default 50)")
    p.add_argument("--dim", type=int, choices=(2, 3), default=2, help="dimension of the exact mixture (default 2)")
    p.add_argument("--shift", type=float, default=None,
                   help="the SD3 shift the loop is meant to use (checks the schedule's shape; default: not checked)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float32", help="dtype of x (default float32)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def load_function(target: str) -> Callable[..., Any]:
    """``"path/to/file.py:name"`` -> the function, loading that one file as a private module."""
    path_text, sep, func = target.rpartition(":")
    if not sep or not path_text or not func:
        raise FlowlabError(f"expected FILE.py:FUNCTION, got {target!r}")
    path = Path(path_text).expanduser()
    if path.suffix != ".py" or not path.is_file():
        raise FlowlabError(f"{path_text!r} is not a Python file (FILE.py:FUNCTION)")
    mod_name = f"_flowlab_check_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(mod_name, path.resolve())
    if spec is None or spec.loader is None:
        raise FlowlabError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise FlowlabError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if fn is None:
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise FlowlabError(f"{path} has no function {func!r}; its functions: {', '.join(names) or 'none'}")
    if not callable(fn):
        raise FlowlabError(f"{path}:{func} is a {type(fn).__name__}, not a function")
    return fn


def run(args: argparse.Namespace) -> int:
    import torch

    from ..conventions import CONVENTIONS
    from ..testing import check_prediction, check_sampler
    dtype = getattr(torch, args.dtype)
    try:
        fn = load_function(args.target)
        if args.prediction:
            report = check_prediction(fn, CONVENTIONS[args.convention], args.prediction, time_scale=args.time_scale,
                                      dim=args.dim, dtype=dtype, name=args.target)
        else:
            report = check_sampler(fn, CONVENTIONS[args.convention], time_scale=args.time_scale,
                                   signature=args.signature, dim=args.dim, steps=args.steps, shift=args.shift,
                                   dtype=dtype, name=args.target)
    except FlowlabError as exc:  # the target or its contract: a usage problem, exit 2 (1 means findings)
        print(f"flowlab check: error: {in_flags(str(exc), FLAGS)}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else str(report))
    return 0 if report.ok else 1
