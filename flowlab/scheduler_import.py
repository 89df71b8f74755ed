"""Which scheduler classes ``flowlab inspect`` may import, and how it checks one before building it.

``flowlab inspect NAME`` imports a module and constructs a class the user named. That must never run
code the user did not mean to run: a module in the working folder (``python -m flowlab.cli`` puts it
first on ``sys.path``), or a class whose constructor opens a connection (``imaplib.IMAP4``). So:

* a dotted name is imported only from an allow-listed package (:data:`ALLOWED_PACKAGES`) or a module
  the user opted into (``allow_import=["mymod"]``, ``--allow-import mymod`` on the command line), and
  never from the working folder unless opted into;
* ``FILE.py:NAME`` imports the file the user named (an explicit path is the opt-in);
* before anything is instantiated, the class is checked *statically* (``inspect.getattr_static``,
  ``inspect.signature``; nothing is called): it must be a class defined in an allowed module, with
  ``set_timesteps`` and ``step(model_output, timestep, sample, ...)`` defined as functions.
* constructor options (``--config key=value``) are parsed as literals only (int, float, bool, str,
  None); nothing is evaluated, and each key must be a parameter of the constructor.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect as _inspect
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import FlowlabError

__all__ = ["ALLOWED_PACKAGES", "ALIASES", "KNOWN_SCHEDULERS", "resolve_scheduler", "check_scheduler_class",
           "parse_config", "construct_scheduler"]

#: Top-level packages whose scheduler classes ``flowlab inspect`` imports without an opt-in.
ALLOWED_PACKAGES: tuple[str, ...] = ("diffusers", "hy3dgen", "flow_matching", "k_diffusion", "torchcfm", "flowlab")

#: Where each allow-listed package comes from (what to install when it is missing).
_INSTALL = {"diffusers": "pip install diffusers==0.42.1 (or pip install 'flowlab[atlas]')",
            "flow_matching": "pip install flow-matching==1.0.10 (or pip install 'flowlab[atlas]')",
            "hy3dgen": "install Hunyuan3D-2 (pip install hy3dgen) or use the alias hunyuan3d2",
            "k_diffusion": "pip install k-diffusion", "torchcfm": "pip install torchcfm"}

#: Names ``flowlab inspect`` understands besides dotted class paths.
ALIASES: dict[str, str] = {
    "hunyuan3d2": "Hunyuan3D-2 shapegen scheduler as its pipeline drives it (sigmas = linspace(0, 1, N)); "
                  "hy3dgen's own class when installed, else flowlab.schedules.hunyuan_compat",
}

#: Scheduler classes flowlab knows (for suggestions).
KNOWN_SCHEDULERS = (
    "diffusers.FlowMatchEulerDiscreteScheduler", "diffusers.FlowMatchHeunDiscreteScheduler",
    "diffusers.DPMSolverMultistepScheduler", "diffusers.UniPCMultistepScheduler",
    "diffusers.DDIMScheduler", "diffusers.EulerDiscreteScheduler",
    "hy3dgen.shapegen.schedulers.FlowMatchEulerDiscreteScheduler",
)

#: Largest integer a constructor option may take (scheduler tables are allocated with that many entries).
MAX_CONFIG_INT = 100_000


def _suggest(name: str, pool: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(pool)), n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _check_dotted(name: object) -> tuple[str, str]:
    if not isinstance(name, str) or "." not in name:
        raise FlowlabError(f"expected a dotted class name such as diffusers.FlowMatchEulerDiscreteScheduler, FILE.py:NAME "
                           f"or one of {', '.join(ALIASES)}, got {name!r}."
                           f"{_suggest(str(name), list(ALIASES) + list(KNOWN_SCHEDULERS))}")
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        raise FlowlabError(f"{name!r} is not a dotted class name: every part of module.Class must be a Python name "
                           "(no empty parts, no leading dot, no relative imports), e.g. "
                           "diffusers.FlowMatchEulerDiscreteScheduler")
    return name.rsplit(".", 1)[0], parts[-1]


def _allowed(module_name: str, allow_import: Sequence[str]) -> bool:
    top = module_name.split(".")[0]
    return top in ALLOWED_PACKAGES or any(module_name == m or module_name.startswith(m + ".") for m in allow_import)


def _import_outside_cwd(module_name: str, opted_in: bool) -> Any:
    """Import ``module_name`` without the working folder on ``sys.path`` (unless the user opted into the module)."""
    cwd = os.path.realpath(os.getcwd())
    saved = list(sys.path)
    if not opted_in:
        sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != cwd]
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path[:] = saved


def _import_module(module_name: str, name: str, allow_import: Sequence[str]) -> Any:
    top = module_name.split(".")[0]
    opted_in = any(module_name == m or module_name.startswith(m + ".") for m in allow_import)
    try:
        return _import_outside_cwd(module_name, opted_in)
    except ModuleNotFoundError as exc:
        if exc.name == top and top in _INSTALL:
            raise FlowlabError(f"{name} needs the package {top}, which is not installed: {_INSTALL[top]}") from None
        raise FlowlabError(f"cannot import module {module_name!r} ({exc}).{_suggest(name, KNOWN_SCHEDULERS)}") from None
    except FlowlabError:
        raise
    except Exception as exc:  # the module itself failed while importing
        raise FlowlabError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None


def _import_file(spec_text: str) -> tuple[Any, str, str]:
    path_text, _, attr = spec_text.rpartition(":")
    path = Path(path_text)
    if not attr.isidentifier():
        raise FlowlabError(f"{spec_text!r}: after FILE.py: comes a class name, got {attr!r}")
    if path.suffix != ".py" or not path.is_file():
        raise FlowlabError(f"{spec_text!r}: {path_text!r} is not a Python file (FILE.py:NAME imports the file you name)")
    mod_name = "_flowlab_user_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
        raise FlowlabError(f"cannot load {path_text!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise FlowlabError(f"importing {path_text!r} failed: {type(exc).__name__}: {exc}") from None
    return module, attr, mod_name


def check_scheduler_class(obj: object, name: str, allowed_modules: Sequence[str] = ()) -> type:
    """Refuse ``obj`` unless it is a scheduler class, judged without calling anything.

    A class (not an instance, not a function), defined in an allow-listed package or in
    ``allowed_modules``, with ``set_timesteps`` and ``step(model_output, timestep, sample, ...)`` as
    plain functions on the class (looked up statically: no descriptor or ``__getattr__`` runs).
    """
    if not isinstance(obj, type):
        raise FlowlabError(f"{name} is a {type(obj).__name__}, not a scheduler class")
    module = getattr(obj, "__module__", "") or ""
    if not _allowed(module, allowed_modules):
        raise FlowlabError(f"{name} is defined in {module!r}, outside the packages flowlab inspect imports from "
                           f"({', '.join(ALLOWED_PACKAGES)}); pass --allow-import {module.split('.')[0]} to opt in")
    for meth in ("set_timesteps", "step"):
        try:
            fn = _inspect.getattr_static(obj, meth)
        except AttributeError:
            fn = None
        if isinstance(fn, (staticmethod, classmethod)):
            fn = fn.__func__
        if not _inspect.isfunction(fn):
            raise FlowlabError(f"{name} is not a scheduler class: it has no method {meth}() (a diffusers-style scheduler "
                               "has set_timesteps(n) and step(model_output, timestep, sample))")
    params = [p for p in _inspect.signature(_inspect.getattr_static(obj, "step")).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) < 4:  # self, model_output, timestep, sample
        raise FlowlabError(f"{name}.step takes {len(params)} positional parameters; a scheduler's step takes "
                           "(self, model_output, timestep, sample, ...)")
    return obj


def resolve_scheduler(name: str, allow_import: Sequence[str] = ()) -> type:
    """The scheduler class named ``"package.module.ClassName"`` (or ``"FILE.py:ClassName"``), checked.

    Dotted names are imported only from :data:`ALLOWED_PACKAGES` or from the modules in
    ``allow_import`` (the user's opt-in); nothing is instantiated here.
    """
    allow_import = tuple(allow_import)
    for m in allow_import:
        if not isinstance(m, str) or not all(p.isidentifier() for p in m.split(".")):
            raise FlowlabError(f"--allow-import takes a module name such as mypackage.schedulers, got {m!r}")
    if isinstance(name, str) and ":" in name and name.split(":")[0].endswith(".py"):
        module, attr, mod_name = _import_file(name)
        obj = getattr(module, attr, None)
        if obj is None:
            raise FlowlabError(f"{name}: the file defines no {attr!r}")
        return check_scheduler_class(obj, name, allow_import + (mod_name,))
    module_name, attr = _check_dotted(name)
    if not _allowed(module_name, allow_import):
        raise FlowlabError(f"{name!r}: flowlab inspect imports scheduler classes only from {', '.join(ALLOWED_PACKAGES)}; "
                           f"to inspect your own class, opt in with --allow-import {module_name} (the module is then "
                           f"imported and may run code) or name its file as FILE.py:{attr}.{_suggest(name, KNOWN_SCHEDULERS)}")
    module = _import_module(module_name, name, allow_import)
    try:  # an allowed (or opted-into) module: its lazy names (diffusers) may import its own submodules
        obj = getattr(module, attr, None)
    except Exception as exc:
        raise FlowlabError(f"looking up {attr!r} in {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    if obj is None:
        try:
            pool = [f"{module_name}.{a}" for a in dir(module) if "Schedul" in a and not a.startswith("_")]
        except Exception:  # lazy modules may fail listing  # pragma: no cover
            pool = []
        raise FlowlabError(f"module {module_name!r} has no attribute {attr!r}.{_suggest(name, pool + list(KNOWN_SCHEDULERS))}")
    return check_scheduler_class(obj, name, allow_import)


# ---- constructor options ------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")


def _literal(key: str, text: str) -> Any:
    low = text.strip()
    if low in ("None", "none", "null"):
        return None
    if low in ("True", "true"):
        return True
    if low in ("False", "false"):
        return False
    if len(low) >= 2 and low[0] == low[-1] and low[0] in "'\"":
        return low[1:-1]
    if _INT.fullmatch(low):
        if len(low) > 12 or abs(int(low)) > MAX_CONFIG_INT:
            raise FlowlabError(f"config {key}={text}: integers above {MAX_CONFIG_INT:,} are refused (a scheduler "
                               "allocates tables of that size)")
        return int(low)
    try:
        value = float(low)
    except ValueError:
        return low  # a bare word: a string such as flow_prediction
    if not math.isfinite(value):
        raise FlowlabError(f"config {key}={text} is not a finite number")
    return value


def parse_config(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values are int / float / bool / str / None literals, never evaluated."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise FlowlabError(f"--config takes key=value (e.g. use_flow_sigmas=true, flow_shift=3.0, "
                               f"prediction_type=flow_prediction), got {item!r}")
        out[key] = _literal(key, value)
    return out


def construct_scheduler(cls: type, options: dict[str, Any], name: str) -> object:
    """``cls(**options)`` after checking each option is a constructor parameter."""
    try:
        params = _inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtin classes are refused before this
        params = {}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params]
    if unknown and not takes_any:
        raise FlowlabError(f"{name} takes no option {unknown[0]!r}.{_suggest(unknown[0], list(params))} Its options: "
                           f"{', '.join(k for k in params if k not in ('self', 'kwargs'))}")
    try:
        return cls(**options)
    except Exception as exc:
        opts = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise FlowlabError(f"{name}({opts}) failed: {type(exc).__name__}: {exc}") from None
