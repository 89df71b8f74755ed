"""Optional dependencies: import them, or say which flowlab extra (or package) to install.

Every optional import in flowlab goes through :func:`require`, e.g. ``yaml = require("yaml")``; when
the module is missing, :class:`MissingDependency` says ``pip install 'flowlab[shape]'``. It is a
:class:`~flowlab.errors.FlowlabError` (the CLI prints it and exits 1) and a ``ModuleNotFoundError``
(code that falls back when a module is absent keeps working). :func:`missing_message` words the same
advice for a ``ModuleNotFoundError`` raised elsewhere (the CLI uses it as a last resort).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import FlowlabError

__all__ = ["OPTIONAL", "NO_DEPS_PINS", "MissingDependency", "install_hint", "missing_message", "require"]

#: Top-level import name -> (pip distribution, flowlab extra that installs it, or None).
OPTIONAL: dict[str, tuple[str, str | None]] = {
    "yaml": ("pyyaml", "shape"),
    "skimage": ("scikit-image", "shape"),
    "scipy": ("scipy", "shape"),
    "trimesh": ("trimesh", "shape"),
    "huggingface_hub": ("huggingface_hub", "shape"),
    "PIL": ("pillow", "shape"),
    "transformers": ("transformers", "shape"),
    "jupyterlab": ("jupyterlab", "notebooks"),
    "ipywidgets": ("ipywidgets", "notebooks"),
    "websocket": ("websocket-client", "test"),
    "pytest": ("pytest", "test"),
    "nbval": ("nbval", "test"),
    "hypothesis": ("hypothesis", "test"),
    "diffusers": ("diffusers", "atlas"),
    "flow_matching": ("flow-matching", "atlas"),
    "torchdiffeq": ("torchdiffeq", "atlas"),
    "ot": ("POT", "atlas"),
    "torchsde": ("torchsde", "atlas"),
    "torchcfm": ("torchcfm", None),
    "k_diffusion": ("k-diffusion", None),
}

#: Installed with ``pip install --no-deps`` (their declared dependencies pull a CUDA torch and torchvision);
#: the same pins as requirements-nodeps.txt (a test checks).
NO_DEPS_PINS: dict[str, str] = {"torchcfm": "1.0.7", "k-diffusion": "0.1.1.post1"}


class MissingDependency(ModuleNotFoundError, FlowlabError):
    """An optional module is not installed; the message names the extra or package to install."""


def install_hint(module: str) -> str:
    """``pip install 'flowlab[shape]'`` (or the package to install) for an import name such as ``yaml``."""
    top = module.split(".")[0]
    pip, extra = OPTIONAL.get(top, (top, None))
    if extra is not None:
        return f"install flowlab[{extra}]: pip install 'flowlab[{extra}]'"
    if pip in NO_DEPS_PINS:
        return (f"install it without its dependencies: pip install --no-deps {pip}=={NO_DEPS_PINS[pip]} "
                "(its declared dependencies would pull a CUDA torch and torchvision)")
    return f"install it: pip install {pip}"


def missing_message(module: str, purpose: str | None = None, detail: str | None = None) -> str:
    """The sentence for a missing ``module``: what needs it, which package it is, what to install."""
    top = module.split(".")[0]
    pip, _ = OPTIONAL.get(top, (top, None))
    what = f"{purpose} needs" if purpose else "this needs"
    named = f"the Python package {pip!r}" + (f" (imported as {top!r})" if pip.lower() != top.lower() else "")
    because = f" [{detail}]" if detail else ""
    return f"{what} {named}, which is not installed{because}; {install_hint(top)}"


def require(module: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"yaml"``, ``"skimage.measure"``, ``"PIL.Image"``) and return it.

    Raises :class:`MissingDependency` naming the extra to install when the module, or a module it
    imports, is missing; ``purpose`` (e.g. ``"reading config.yaml"``) says what needed it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        raise MissingDependency(missing_message(missing, purpose, detail=str(exc)), name=missing) from None
    except ImportError as exc:  # installed but broken: a wrong version, a missing compiled part
        top = module.split(".")[0]
        pip = OPTIONAL.get(top, (top, None))[0]
        raise FlowlabError(f"{purpose or 'this'} needs {module!r}, which is installed but cannot be imported "
                           f"({exc}); reinstall it (pip install --force-reinstall {pip}), or {install_hint(top)}") from None
