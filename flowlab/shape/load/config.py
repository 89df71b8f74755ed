"""config.yaml of a model folder: value checks and the DiT / VAE configs built from its ``params`` sections."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ...errors import FlowlabError
from ..models.dit import DiTConfig
from ..models.vae import VAEConfig

__all__ = ["check_config_values", "dit_config_from_params", "vae_config_from_params", "estimate_model_bytes",
           "check_model_fits", "octree_default"]

#: Sections besides model / vae whose values flowlab reads: key -> (type, low, high) with high None = no bound.
_OTHER_SECTIONS = {
    "scheduler.params": {"shift": (float, 0.0, None), "pcm_timesteps": (int, 1, 100_000)},
    "image_processor.params": {"size": (int, 16, 4096), "border_ratio": (float, 0.0, 0.49)},
    "flowlab": {"octree_resolution": (int, 1, None)},
}
_PATCH_KWARGS = {"image_size": (int, 1, 4096), "patch_size": (int, 1, 4096), "width": (int, 1, None),
                 "layers": (int, 0, None), "heads": (int, 1, None)}


def _config_types(cls: type) -> dict[str, type]:
    names = {"int": int, "float": float, "bool": bool, "str": str}
    return {f.name: names[f.type if isinstance(f.type, str) else f.type.__name__] for f in fields(cls)}


#: config values that may be 0 (block counts); every other int must be >= 1
_MAY_BE_ZERO = {"depth": 0, "depth_single_blocks": 0, "num_decoder_layers": 0, "num_freqs": 0}


def check_config_values(cfg: dict, source: Path | str) -> None:
    """Types and ranges of config.yaml's model.params / vae.params (or a standalone VAE's params), named
    with the file, the key and the value, before any module is built or weight read."""
    from .checkpoint import check_params

    if "target" in cfg and "model" not in cfg:
        check_params(cfg.get("params"), _config_types(VAEConfig), section="params", source=source,
                     minimum=_MAY_BE_ZERO)
        return
    check_params(cfg["model"].get("params"), _config_types(DiTConfig), section="model.params", source=source,
                 minimum=_MAY_BE_ZERO)
    check_params(cfg["vae"].get("params"), _config_types(VAEConfig), section="vae.params", source=source,
                 minimum=_MAY_BE_ZERO)
    for dotted, spec in _OTHER_SECTIONS.items():
        _check_section(cfg, dotted, spec, source)
    enc = _section(cfg, "conditioner.params.main_image_encoder", source) or {}
    if enc.get("type") == "PatchImageEncoder":
        _check_section(cfg, "conditioner.params.main_image_encoder.kwargs", _PATCH_KWARGS, source)


def _section(cfg: dict, dotted: str, source: Path | str):
    node = cfg
    for i, key in enumerate(dotted.split(".")):
        if node is None:
            return None
        if not isinstance(node, dict):
            where = ".".join(dotted.split(".")[:i])
            raise FlowlabError(f"{source}: {where} must be a mapping of key: value, got {type(node).__name__}")
        node = node.get(key)
    if node is not None and not isinstance(node, dict):
        raise FlowlabError(f"{source}: {dotted} must be a mapping of key: value, got {type(node).__name__} {node!r:.60}")
    return node


def _check_section(cfg: dict, dotted: str, spec: dict, source: Path | str) -> None:
    """Values of one section: type and range, the message naming the file, the key and the value."""
    import math

    values = _section(cfg, dotted, source) or {}
    for key, (kind, low, high) in spec.items():
        if key not in values or values[key] is None:
            continue
        value = values[key]
        where = f"{source}: {dotted}.{key} = {value!r}"
        bounds = "> 0" if key == "shift" else f">= {low}" if high is None else f"from {low} to {high}"
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise FlowlabError(f"{where} must be a whole number {bounds}; fix config.yaml")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FlowlabError(f"{where} must be a finite number {bounds}; fix config.yaml")
        if (key == "shift" and value <= 0) or value < low or (high is not None and value > high):
            raise FlowlabError(f"{where} is out of range: it must be {bounds}; fix config.yaml")


def estimate_model_bytes(dit: DiTConfig | None, vae: VAEConfig | None, bytes_per_weight: int = 4) -> float:
    """A generous estimate of the memory the DiT and VAE need once built (weights plus Python objects per
    block), from their configs alone: checked before any module is built."""
    total = 0.0
    if dit is not None:
        h = dit.hidden_size
        per_block = (4 + 2 * dit.mlp_ratio) * h * h * bytes_per_weight + 32_000
        total += (2 * dit.depth + dit.depth_single_blocks) * per_block
        total += (dit.context_in_dim + dit.in_channels + 256) * h * bytes_per_weight
    if vae is not None:
        w = vae.width
        total += (vae.num_decoder_layers + 2) * (12 * w * w * bytes_per_weight + 32_000)
        total += vae.num_latents * max(vae.embed_dim, w) * bytes_per_weight * 8  # latents and their activations
    return total


def check_model_fits(dit: DiTConfig | None, vae: VAEConfig | None, source: Path | str, device="cpu") -> None:
    """Refuse a config whose modules cannot fit in memory, with the estimate, before building them."""
    from ...limits import check_memory

    check_memory(estimate_model_bytes(dit, vae), f"the model of {source}",
                 "check its sizes (depth, hidden_size, width, num_latents): this is not a released configuration",
                 device)


_DIT_KEYS = {f.name for f in fields(DiTConfig)}
_VAE_KEYS = {f.name for f in fields(VAEConfig)}


def dit_config_from_params(params: dict) -> DiTConfig:
    """``model.params`` of config.yaml -> :class:`DiTConfig` (axes_dim, theta, ckpt_path are unused there)."""
    kw = {k: v for k, v in (params or {}).items() if k in _DIT_KEYS}
    unknown = sorted(set(params or {}) - _DIT_KEYS - {"axes_dim", "theta", "ckpt_path"})
    if unknown:
        raise FlowlabError(f"config.yaml model.params has keys flowlab does not know: {unknown}")
    try:
        cfg = DiTConfig(**kw)
    except (TypeError, ValueError) as e:
        raise FlowlabError(f"config.yaml model.params: {e}") from None
    if not 0 < cfg.time_factor <= 1e6:
        raise FlowlabError(f"config.yaml model.params.time_factor = {cfg.time_factor!r} is out of range (1000 in the "
                           "release; at most 1e6, beyond which the time embedding overflows float16)")
    check_model_fits(cfg, None, "config.yaml model.params")
    return cfg


def vae_config_from_params(params: dict) -> VAEConfig:
    """``vae.params`` of config.yaml -> :class:`VAEConfig` (missing keys take the reference class defaults)."""
    params = dict(params or {})
    unknown = sorted(set(params) - _VAE_KEYS - {"drop_path_rate"})
    if unknown:
        raise FlowlabError(f"config.yaml vae.params has keys flowlab does not know: {unknown}")
    # the reference class's own defaults where the config is silent
    defaults = dict(include_pi=True, qkv_bias=True, qk_norm=False, scale_factor=1.0)
    kw = {**defaults, **{k: v for k, v in params.items() if k in _VAE_KEYS}}
    try:
        cfg = VAEConfig(**kw)
        check_model_fits(None, cfg, "config.yaml vae.params")
        return cfg
    except TypeError as e:
        raise FlowlabError(f"config.yaml vae.params is incomplete: {e}") from None
    except ValueError as e:
        raise FlowlabError(f"config.yaml vae.params: {e}") from None


def octree_default(cfg: dict, source: Path | str) -> int:
    """The octree resolution a model folder decodes at: ``flowlab.octree_resolution`` of its config.yaml
    (the mini model's: 128), else the release's :data:`~flowlab.shape.decode.volume.RELEASE_OCTREE` (384).

    The one source of that default for the library and the CLI alike."""
    from ..decode.volume import RELEASE_OCTREE

    hints = cfg.get("flowlab") or {}
    if not isinstance(hints, dict) or "octree_resolution" not in hints:
        return RELEASE_OCTREE
    value = hints["octree_resolution"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FlowlabError(f"{source}: flowlab.octree_resolution = {value!r} must be a whole number >= 1 "
                           f"(the release's is {RELEASE_OCTREE})")
    return value
