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

from ..errors import FlowlabError

__all__ = [
    "MODELS_ENV", "DEFAULT_SUBFOLDER", "KNOWN_TARGETS", "ModelFolder", "find_model_folder", "read_config",
    "read_state_dict", "split_prefixed", "check_state_dict", "load_strict", "weight_file", "target_kind",
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
    return (f"Get the weights with `huggingface-cli download {r} --include '{s}/*'` (or pass --download to fetch "
            f"them now), or put the folder under ${MODELS_ENV}/{r}/{s}, or pass --model /path/to/{s}")


def _hf_cached(repo: str, subfolder: str, download: bool) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        if download:
            raise FlowlabError("downloading needs huggingface_hub: pip install huggingface_hub") from None
        return None
    try:
        root = snapshot_download(repo_id=repo, allow_patterns=[f"{subfolder}/*"], local_files_only=not download)
    except Exception as e:  # not cached / offline / no such repo
        if download:
            raise FlowlabError(f"download of {repo}/{subfolder} failed: {type(e).__name__}: {e}") from None
        return None
    p = Path(root) / subfolder
    return p if p.is_dir() else None


def weight_file(folder: Path, *, variant: str | None = "fp16", prefer_safetensors: bool = True) -> Path | None:
    """The weight file of ``folder``: model{.variant}.safetensors first, then the .ckpt, then no variant."""
    exts = ("safetensors", "ckpt") if prefer_safetensors else ("ckpt", "safetensors")
    variants = [f".{variant}", ""] if variant else ["", ".fp16"]
    for v in variants:
        for ext in exts:
            p = folder / f"model{v}.{ext}"
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
            raise FlowlabError(f"--model {spec_s!r} is a file; pass the folder that holds config.yaml and "
                               f"model{{.fp16}}.{{safetensors,ckpt}}")
        raise FlowlabError(f"weights not found for {spec_s!r}; tried: " + "; ".join(tried) + ". "
                           + _how_to_get(*(repo_sub or (None, None))))
    config = read_config(folder)
    weights = weight_file(folder, variant=variant)
    if weights is None:
        raise FlowlabError(f"{folder}: no weight file (looked for model.fp16.safetensors, model.safetensors, "
                           f"model.fp16.ckpt, model.ckpt). " + _how_to_get(*(repo_sub or (None, None))))
    return ModelFolder(path=folder, config=config, weights=weights, tried=tried)


def read_config(folder: Path) -> dict:
    """config.yaml of a model folder, checked for the sections flowlab needs and known targets."""
    import yaml

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
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FlowlabError(
            f"{path}: this .ckpt needs more than tensors to unpickle ({first[:200]}). flowlab reads .ckpt files "
            f"only with torch.load(weights_only=True), which runs no code. Use the .safetensors file of the "
            f"release, or convert the checkpoint to a plain dict of tensors") from None
    except (RuntimeError, OSError, EOFError) as e:
        raise FlowlabError(f"{path}: cannot read this .ckpt ({str(e)[:200]}); download it again") from None
    if not isinstance(obj, dict):
        raise FlowlabError(f"{path}: expected a dict of state dicts, got {type(obj).__name__}")
    return obj


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
    on_meta = any(p.is_meta for p in module.parameters())
    module.load_state_dict(state, strict=True, assign=on_meta)
    return module
