"""Load a released model folder (config.yaml + weights) into a :class:`~flowlab.shape.pipeline.ShapePipeline`."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ...errors import FlowlabError
from ..models.dit import ShapeDiT
from ..models.vae import ShapeVAE
from ..pipeline import ShapePipeline
from .checkpoint import ModelFolder, find_model_folder, load_strict, read_state_dict, split_prefixed, target_kind
from .config import check_config_values, dit_config_from_params, octree_default, vae_config_from_params

__all__ = ["load_pipeline", "load_conditioner"]


def _init_buffers(module: nn.Module) -> None:
    """Recompute non-persistent buffers of modules built on the meta device."""
    from ..models.conditioner import DinoImageEncoder, IMAGENET_MEAN, IMAGENET_STD
    from ..models.vae import FourierEmbedder

    for m in module.modules():
        if isinstance(m, FourierEmbedder) and m.frequencies.is_meta:
            f = 2.0 ** torch.arange(m.frequencies.shape[0], dtype=torch.float32)
            m.frequencies = f * torch.pi if m.include_pi else f
        if isinstance(m, DinoImageEncoder) and m.mean.is_meta:
            m.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            m.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        for name, buf in list(m.named_buffers(recurse=False)):
            if buf is not None and buf.is_meta:
                raise FlowlabError(f"internal: buffer {name} of {type(m).__name__} was not materialised")


def _build_dit(params: dict, state: dict, source: Path) -> ShapeDiT:
    with torch.device("meta"):
        dit = ShapeDiT(dit_config_from_params(params))
    return load_strict(dit, state, what="DiT ('model.')", source=source)


def _build_vae(params: dict, state: dict, source: Path, what: str = "VAE ('vae.')") -> ShapeVAE:
    with torch.device("meta"):
        vae = ShapeVAE(vae_config_from_params(params))
    load_strict(vae, state, what=what, source=source)
    _init_buffers(vae)
    return vae


def load_conditioner(folder: ModelFolder) -> nn.Module:
    from ..models.conditioner import ImageConditioner

    section = folder.config.get("conditioner")
    if not isinstance(section, dict):
        raise FlowlabError(f"{folder.path}/config.yaml has no conditioner section; pass a precomputed embedding")
    state = split_prefixed(read_state_dict(folder.weights, ("conditioner.",))).get("conditioner")
    if not state:
        raise FlowlabError(f"{folder.weights}: the checkpoint has no 'conditioner.' weights; pass a precomputed "
                           "embedding (sample_latents(cond=...)) instead of an image")
    with torch.device("meta"):
        cond = ImageConditioner.from_config(section)
    load_strict(cond, cond.load_checkpoint_state(state), what="conditioner ('conditioner.')", source=folder.weights)
    _init_buffers(cond)
    return cond


def load_pipeline(model: str | os.PathLike, *, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float16, download: bool = False, variant: str | None = "fp16",
                  vae: str | os.PathLike | None = None, with_conditioner: bool = False) -> ShapePipeline:
    """Load a DiT model folder (path, $HY3DGEN_MODELS, HF cache; ``download`` to fetch) into a pipeline.

    ``vae`` optionally names a standalone VAE folder (e.g. hunyuan3d-vae-v2-0-turbo) replacing the
    folder's own VAE. The conditioner (DINOv2, needs transformers) is loaded now only when
    ``with_conditioner``; otherwise on first :meth:`ShapePipeline.encode_image`.
    """
    from ...device import resolve_device

    device = resolve_device(device)
    folder = find_model_folder(model, download=download, variant=variant)
    if (folder.path / "manifest.json").is_file():  # wherever a manifest exists, the files must match it
        from .mini import verify_manifest

        verify_manifest(folder.path, "copy the folder again from its source (or delete manifest.json if you changed "
                        "the files on purpose)")
    cfg = folder.config
    check_config_values(cfg, folder.path / "config.yaml")
    if folder.is_standalone_vae:
        raise FlowlabError(f"{folder.path} is a standalone VAE folder; model= needs a DiT folder such as "
                           f"hunyuan3d-dit-v2-0 (pass the VAE folder as vae= instead)")
    cfg_path = folder.path / "config.yaml"
    octree = octree_default(cfg, cfg_path)
    state = split_prefixed(read_state_dict(folder.weights, ("model.", "vae.")))
    for section in ("model", "vae"):
        if section not in state:
            found = ", ".join(sorted(state)) or "nothing"
            raise FlowlabError(f"{folder.weights}: no '{section}.' weights in the checkpoint (found: {found}); "
                               f"use the release's model file")
    dit = _build_dit(cfg["model"].get("params") or {}, state["model"], folder.weights)
    if vae is None:
        vae_mod = _build_vae(cfg["vae"].get("params") or {}, state["vae"], folder.weights)
    else:
        vf = find_model_folder(vae, download=download, variant=variant)
        check_config_values(vf.config, vf.path / "config.yaml")
        if not vf.is_standalone_vae:
            raise FlowlabError(f"{vf.path} is not a standalone VAE folder (its config.yaml has model/vae sections)")
        vstate = read_state_dict(vf.weights)
        vae_mod = _build_vae(vf.config.get("params") or {}, vstate, vf.weights, what="standalone VAE")
    sched = cfg.get("scheduler") or {}
    kind = target_kind("scheduler", sched.get("target", "FlowMatchEulerDiscreteScheduler"), cfg_path)
    sp = sched.get("params") or {}
    proc = (cfg.get("image_processor") or {}).get("params") or {}
    pipe = ShapePipeline(
        dit=dit, vae=vae_mod, conditioner=None,
        scheduler="consistency" if kind.startswith("Consistency") else "flow",
        pcm_timesteps=int(sp.get("pcm_timesteps", 50)), shift=float(sp.get("shift", 1.0)),
        device=torch.device(device), dtype=dtype, folder=folder,
        image_size=int(proc.get("size", 512)),
        border_ratio=float(proc.get("border_ratio", 0.15) if proc.get("border_ratio") is not None else 0.15),
        octree=octree)
    if with_conditioner:
        pipe.load_conditioner()
    return pipe
