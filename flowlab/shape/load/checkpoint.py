"""Find, read and strictly load Hunyuan3D-2 checkpoints in the official folder layout.

A model folder holds ``config.yaml`` (``target`` / ``params`` for ``model``, ``vae``,
``conditioner``, ``scheduler``, ``image_processor``) and ``model{.fp16}.{safetensors|ckpt}``:

* safetensors: one flat dict whose keys are prefixed ``model.``, ``vae.``, ``conditioner.``
  (split at the first dot);
* .ckpt: a torch pickle of ``{'model': ..., 'vae': ..., 'conditioner': ...}``, read only with
  ``torch.load(weights_only=True)`` (a pickle that needs more than tensors is refused).

A standalone VAE folder (``hunyuan3d-vae-v2-0``, ``-turbo``) holds a config.yaml with a top-level
``target`` / ``params`` and an unprefixed flat state dict.

Where folders are looked up (:func:`find_model_folder`): the path itself; then
``$HY3DGEN_MODELS/<repo>/<subfolder>`` (default ``~/.cache/hy3dgen``); then the Hugging Face
cache; a download through huggingface_hub happens only when ``download=True``.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..._optional import MissingDependency, missing_message, require
from ...errors import FlowlabError

__all__ = [
    "MODELS_ENV", "DEFAULT_SUBFOLDER", "KNOWN_TARGETS", "ModelFolder", "find_model_folder", "read_config",
    "read_state_dict", "split_prefixed", "check_state_dict", "load_strict", "weight_file", "target_kind",
    "load_tensors_only", "check_params",
]

MODELS_ENV = "HY3DGEN_MODELS"
DEFAULT_MODELS_DIR = "~/.cache/hy3dgen"
#: The subfolder a bare repo id means (tencent/Hunyuan3D-2 -> its v2-0 DiT).
DEFAULT_SUBFOLDER = {
    "tencent/Hunyuan3D-2": "hunyuan3d-dit-v2-0",
    "tencent/Hunyuan3D-2mini": "hunyuan3d-dit-v2-mini",
    "tencent/Hunyuan3D-2mv": "hunyuan3d-dit-v2-mv",
}

#: Class names (last component of ``target``) flowlab knows, by config section.
KNOWN_TARGETS: dict[str, tuple[str, ...]] = {
    "model": ("Hunyuan3DDiT",),
    "vae": ("ShapeVAE",),
    "conditioner": ("SingleImageEncoder",),
    "scheduler": ("FlowMatchEulerDiscreteScheduler", "ConsistencyFlowMatchEulerDiscreteScheduler"),
    "image_processor": ("ImageProcessorV2", "MVImageProcessorV2"),
}


def target_kind(section: str, target: Any, config_path: Path) -> str:
    """The class name of ``target`` if flowlab knows it for ``section``, else a FlowlabError."""
    name = str(target).rsplit(".", 1)[-1] if target else ""
    known = KNOWN_TARGETS[section]
    if name not in known:
        raise FlowlabError(f"{config_path}: section {section!r} names target {target!r}, which flowlab does not "
                           f"implement; known: {', '.join(known)}. Use a released Hunyuan3D-2 shape config.yaml")
    return name


@dataclass
class ModelFolder:
    """A located checkpoint folder: its config and the weight file chosen in it."""

    path: Path
    config: dict
    weights: Path
    tried: list[str] = field(default_factory=list)

    @property
    def is_standalone_vae(self) -> bool:
        return "target" in self.config and "model" not in self.config


def _split_repo(spec: str) -> tuple[str, str] | None:
    """'owner/name' -> (repo, default subfolder); 'owner/name/subfolder' -> (repo, subfolder)."""
    parts = [p for p in spec.strip("/").split("/") if p]
    if len(parts) == 2:
        repo = "/".join(parts)
        return repo, DEFAULT_SUBFOLDER.get(repo, "hunyuan3d-dit-v2-0")
    if len(parts) == 3:
        return "/".join(parts[:2]), parts[2]
    return None


def _how_to_get(repo: str | None, subfolder: str | None) -> str:
    r = repo or "tencent/Hunyuan3D-2"
    s = subfolder or "hunyuan3d-dit-v2-0"
    return (f"Get the weights with `huggingface-cli download {r} --include '{s}/*'` (or pass download=True to "
            f"fetch them now), or put the folder under ${MODELS_ENV}/{r}/{s}, or pass model= /path/to/{s}")


def _hf_cached(repo: str, subfolder: str, download: bool) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        if download:
            raise MissingDependency(missing_message("huggingface_hub", "downloading a model"),
                                    name="huggingface_hub") from None
        return None
    try:
        root = snapshot_download(repo_id=repo, allow_patterns=[f"{subfolder}/*"], local_files_only=not download)
    except Exception as e:  # not cached / offline / no such repo
        if download:
            raise FlowlabError(f"download of {repo}/{subfolder} failed: {type(e).__name__}: {e}") from None
        return None
    p = Path(root) / subfolder
    return p if p.is_dir() else None


def weight_candidates(variant: str | None = "fp16", prefer_safetensors: bool = True) -> list[str]:
    """The file names :func:`weight_file` tries, in order."""
    exts = ("safetensors", "ckpt") if prefer_safetensors else ("ckpt", "safetensors")
    variants = [f".{variant}", ""] if variant else ["", ".fp16"]
    return [f"model{v}.{ext}" for v in variants for ext in exts]


def _variant_of(name: str) -> str:
    """'model.fp16.safetensors' -> 'fp16', 'model.ckpt' -> 'none'."""
    parts = name.split(".")
    return parts[1] if len(parts) == 3 else "none"


def weight_file(folder: Path, *, variant: str | None = "fp16", prefer_safetensors: bool = True) -> Path | None:
    """The weight file of ``folder``: model{.variant}.safetensors first, then the .ckpt, then no variant."""
    for name in weight_candidates(variant, prefer_safetensors):
        p = folder / name
        if p.is_file():
            return p
    return None


def find_model_folder(spec: str | os.PathLike, *, subfolder: str | None = None, download: bool = False,
                      variant: str | None = "fp16") -> ModelFolder:
    """Locate a checkpoint folder from a path or a repo id ('tencent/Hunyuan3D-2[/subfolder]').

    Raises FlowlabError naming every place tried and how to get the weights.
    """
    spec_s = str(spec)
    tried: list[str] = []
    candidates: list[Path] = []
    p = Path(spec_s).expanduser()
    if subfolder:
        candidates.append(p / subfolder)
    candidates.append(p)
    repo_sub = None if p.exists() else _split_repo(spec_s)
    if subfolder and repo_sub:
        repo_sub = (repo_sub[0], subfolder)
    if repo_sub:
        base = os.environ.get(MODELS_ENV, DEFAULT_MODELS_DIR)
        candidates.append(Path(base).expanduser() / repo_sub[0] / repo_sub[1])
    folder = None
    for c in candidates:
        tried.append(str(c))
        if c.is_dir() and (c / "config.yaml").is_file():
            folder = c
            break
        if c.is_dir() and weight_file(c, variant=variant) is not None:
            folder = c  # config.yaml missing: reported by read_config below
            break
    if folder is None and repo_sub:
        tried.append(f"Hugging Face cache of {repo_sub[0]} (subfolder {repo_sub[1]})")
        folder = _hf_cached(repo_sub[0], repo_sub[1], download)
    if folder is None:
        if p.is_file():
            raise FlowlabError(f"model= {spec_s!r} is a file; pass the folder that holds config.yaml and "
                               f"model{{.fp16}}.{{safetensors,ckpt}}")
        raise FlowlabError(f"weights not found for {spec_s!r}; tried: " + "; ".join(tried) + ". "
                           + _how_to_get(*(repo_sub or (None, None))))
    config = read_config(folder)
    weights = weight_file(folder, variant=variant)
    if weights is None:
        looked = ", ".join(weight_candidates(variant))
        present = sorted(p.name for p in folder.glob("model*") if p.is_file())
        hint = (f" The folder has {', '.join(present)}: pick its variant with variant= "
                f"({', '.join(sorted({_variant_of(n) for n in present}))})." if present else " ")
        raise FlowlabError(f"{folder}: no weight file for variant {variant!r} (looked for {looked}).{hint} "
                           + _how_to_get(*(repo_sub or (None, None))))
    return ModelFolder(path=folder, config=config, weights=weights, tried=tried)


def read_config(folder: Path) -> dict:
    """config.yaml of a model folder, checked for the sections flowlab needs and known targets."""
    yaml = require("yaml", "reading the model's config.yaml")

    path = Path(folder) / "config.yaml"
    if not path.is_file():
        raise FlowlabError(f"{folder}: config.yaml is missing; a Hunyuan3D-2 model folder holds config.yaml and "
                           f"model{{.fp16}}.{{safetensors,ckpt}}. Download the whole subfolder again")
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FlowlabError(f"{path}: not valid YAML ({e}); download the file again") from None
    if not isinstance(config, dict):
        raise FlowlabError(f"{path}: expected a mapping with model / vae / conditioner sections, got "
                           f"{type(config).__name__}")
    if "target" in config and "model" not in config:  # standalone VAE folder
        target_kind("vae", config.get("target"), path)
        return config
    for section in ("model", "vae"):
        if not isinstance(config.get(section), dict):
            raise FlowlabError(f"{path}: section {section!r} is missing; this is not a Hunyuan3D-2 shape config")
    for section in KNOWN_TARGETS:
        if isinstance(config.get(section), dict):
            target_kind(section, config[section].get("target"), path)
    return config


def read_state_dict(path: Path, prefixes: tuple[str, ...] | None = None) -> dict[str, Tensor]:
    """The tensors of a .safetensors file (only keys starting with one of ``prefixes`` when given: the
    others are never read), or the dict of a weights-only .ckpt (always read whole)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                keys = [k for k in f.keys() if prefixes is None or k.startswith(prefixes)]
                return {k: f.get_tensor(k) for k in keys}
        except (SafetensorError, OSError, ValueError) as e:
            raise FlowlabError(f"{path}: cannot read safetensors ({e}); the file is damaged or incomplete, "
                               f"download it again") from None
    obj = load_tensors_only(path, what="checkpoint", instead="the release's model.fp16.safetensors")
    if not isinstance(obj, dict):
        raise FlowlabError(f"{path}: expected a dict of state dicts, got {type(obj).__name__}")
    return obj


#: Globals a weights-only torch pickle may name (what torch.save writes for tensors and plain containers).
_SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset",
                         "_codecs.encode", "numpy.core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray")
_MAX_SCAN = 64 << 20  # bytes of a pickle stream scanned for the globals it names


def _pickle_globals(path: Path) -> list[str] | None:
    """The ``module.name`` globals the pickle in ``path`` refers to, read with :mod:`pickletools` (which only
    decodes opcodes and never imports or calls anything). ``None`` when the file is neither a torch zip
    archive holding a pickle nor a pickle stream (random bytes, another format, a truncated download)."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkls = [n for n in z.namelist() if n.endswith(".pkl")]
                if not pkls:
                    return None
                with z.open(pkls[0]) as fh:
                    data = fh.read(_MAX_SCAN)
        else:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_SCAN)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return None
    if not data or data[0] != 0x80:  # every pickle of protocol >= 2 starts with PROTO
        return None
    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - malformed or truncated stream: keep what was decoded so far
        if not found:
            return None
    return found


def load_tensors_only(path: str | os.PathLike, *, what: str, instead: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with flowlab's own error messages.

    A pickle that names classes or functions beyond tensors and plain containers is refused (flowlab never
    unpickles it: that would run code from the file); random bytes or another format are called damaged,
    not "needs more than tensors". ``what`` names the file kind, ``instead`` what to use instead.
    """
    path = Path(path)
    if path.is_dir():
        raise FlowlabError(f"{str(path)!r} is a directory; pass the {what} file itself")
    if not path.is_file():
        raise FlowlabError(f"{what} file {str(path)!r} not found")
    import warnings

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the user's business
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError) as e:
        if isinstance(e, OSError) and not isinstance(e, EOFError) and getattr(e, "errno", None) is not None:
            raise FlowlabError(f"cannot read {what} {str(path)!r} ({e.strerror}); check the path and its "
                               f"permissions") from None
        names = _pickle_globals(path)
        extra = sorted({n for n in (names or []) if not n.startswith(_SAFE_GLOBAL_PREFIXES)})
        if extra:
            shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
            raise FlowlabError(
                f"cannot read {what} {str(path)!r}: the file holds more than tensors: its pickle refers to {shown}, "
                f"and loading it would run code from the file. flowlab will not unpickle it (it reads {what} files "
                f"only as plain tensors, which runs no code). Use {instead}, or, only if you trust the file's "
                f"source, convert it yourself into a plain dict of tensors saved with safetensors") from None
        if names is None:
            raise FlowlabError(f"cannot read {what} {str(path)!r}: not a PyTorch file (neither a torch zip archive "
                               f"nor a pickle: damaged, truncated or another format); download it again or use "
                               f"{instead}") from None
        raise FlowlabError(f"cannot read {what} {str(path)!r} as plain tensors (it is damaged or was written in a "
                           f"format this torch does not read); download it again or use {instead}") from None


def check_params(params: Any, types: dict[str, type], *, section: str, source: Path | str,
                 minimum: dict[str, int] | None = None) -> dict:
    """Check the values of a config.yaml ``params`` mapping before any module is built.

    ``types`` maps each known key to ``int``, ``float``, ``bool`` or ``str``. ints must be integers
    (not booleans) ``>= minimum.get(key, 1)``; floats finite numbers ``> 0``; bools ``true`` / ``false``.
    Unknown keys are left to the caller. Raises :class:`FlowlabError` naming the file, the key and its value.
    """
    import math

    if params is None:
        return {}
    if not isinstance(params, dict):
        raise FlowlabError(f"{source}: {section} must be a mapping of key: value, got {type(params).__name__} "
                           f"{params!r}")
    minimum = minimum or {}
    for key, kind in types.items():
        if key not in params:
            continue
        value = params[key]
        where = f"{source}: {section}.{key} = {value!r}"
        if kind is bool:
            if not isinstance(value, bool):
                raise FlowlabError(f"{where} must be true or false")
        elif kind is int:
            low = minimum.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int):
                raise FlowlabError(f"{where} must be a whole number >= {low}, got {type(value).__name__}")
            if value < low:
                raise FlowlabError(f"{where} must be >= {low}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FlowlabError(f"{where} must be a number, got {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise FlowlabError(f"{where} must be a finite number > 0")
        elif kind is str and not isinstance(value, str):
            raise FlowlabError(f"{where} must be a string")
    return params


def split_prefixed(flat: dict[str, Any]) -> dict[str, dict[str, Tensor]]:
    """{'model.a.b': x, 'vae.c': y} -> {'model': {'a.b': x}, 'vae': {'c': y}}; nested dicts pass through."""
    out: dict[str, dict[str, Tensor]] = {}
    for key, value in flat.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
            continue
        head, _, rest = key.partition(".")
        out.setdefault(head, {})[rest] = value
    return out


@dataclass
class KeyReport:
    """What differs between a module's state dict and a checkpoint's."""

    missing: list[str]
    unexpected: list[str]
    mis_shaped: list[tuple[str, tuple, tuple]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped)

    def describe(self, first: int = 5) -> str:
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                shown = ", ".join(items[:first]) + (", ..." if len(items) > first else "")
                parts.append(f"{len(items)} {label} key(s): {shown}")
        if self.mis_shaped:
            shown = ", ".join(f"{k} (checkpoint {tuple(a)}, model {tuple(b)})" for k, a, b in self.mis_shaped[:first])
            parts.append(f"{len(self.mis_shaped)} mis-shaped key(s): {shown}" + (", ..." if len(self.mis_shaped) > first else ""))
        return "; ".join(parts)


def check_state_dict(module: nn.Module, state: dict[str, Tensor]) -> KeyReport:
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    shaped = sorted((k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
                    if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    return KeyReport(missing, unexpected, shaped)


def load_strict(module: nn.Module, state: dict[str, Tensor], *, what: str, source: Path | str) -> nn.Module:
    """Strict ``load_state_dict`` with a readable FlowlabError (missing / unexpected / mis-shaped keys).

    ``module`` may live on the meta device: tensors are then assigned, not copied.
    """
    report = check_state_dict(module, state)
    if not report.ok:
        raise FlowlabError(f"{source}: the {what} weights do not match the architecture in config.yaml: "
                           f"{report.describe()}. Check that config.yaml and the weight file come from the same "
                           f"release folder")
    own = module.state_dict()
    retyped = sorted(k for k, v in state.items() if k in own and own[k].is_floating_point()
                     and not v.is_floating_point())
    if retyped:
        raise FlowlabError(f"{source}: the {what} weight {retyped[0]!r} has dtype {state[retyped[0]].dtype} "
                           f"({len(retyped)} weight(s) are not floating point); released weights are float16, "
                           "bfloat16 or float32: the file is damaged or was converted wrongly, download it again")
    on_meta = any(p.is_meta for p in module.parameters())
    module.load_state_dict(state, strict=True, assign=on_meta)
    return module
