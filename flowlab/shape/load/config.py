"""config.yaml of a model folder: value checks and the DiT / VAE configs built from its ``params`` sections."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ...errors import FlowlabError
from ..models.dit import DiTConfig
from ..models.vae import VAEConfig

__all__ = ["check_config_values", "dit_config_from_params", "vae_config_from_params"]


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


_DIT_KEYS = {f.name for f in fields(DiTConfig)}
_VAE_KEYS = {f.name for f in fields(VAEConfig)}


def dit_config_from_params(params: dict) -> DiTConfig:
    """``model.params`` of config.yaml -> :class:`DiTConfig` (axes_dim, theta, ckpt_path are unused there)."""
    kw = {k: v for k, v in (params or {}).items() if k in _DIT_KEYS}
    unknown = sorted(set(params or {}) - _DIT_KEYS - {"axes_dim", "theta", "ckpt_path"})
    if unknown:
        raise FlowlabError(f"config.yaml model.params has keys flowlab does not know: {unknown}")
    try:
        return DiTConfig(**kw)
    except (TypeError, ValueError) as e:
        raise FlowlabError(f"config.yaml model.params: {e}") from None


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
        return VAEConfig(**kw)
    except TypeError as e:
        raise FlowlabError(f"config.yaml vae.params is incomplete: {e}") from None
    except ValueError as e:
        raise FlowlabError(f"config.yaml vae.params: {e}") from None
