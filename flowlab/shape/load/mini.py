"""The mini model that ships with flowlab: a trained Hunyuan3D-2-architecture shape model, offline.

``flowlab/shape/weights/mini/`` is laid out like a released hunyuan3d-dit folder: ``config.yaml`` (model,
vae, conditioner, scheduler sections) and ``model.fp16.safetensors`` (keys prefixed ``model.``, ``vae.``,
``conditioner.``), loaded by :func:`flowlab.shape.load.folder.load_pipeline` with its strict key checks. Beside
them: ``vae_encoder.fp16.safetensors`` (the ShapeVAE encoder, not needed to generate), the training log
(``train_log.json`` and ``training_log.png``) and ``manifest.json`` (the SHA-256 of every file), which
:func:`mini_folder` checks before anything is loaded, so a missing or altered file is named and
nothing is generated from it.

Architecture (the released classes at small widths, see :data:`flowlab.shape.train.loop.MINI`): DiT hidden 256,
4 heads, 1 double + 2 single blocks; VAE 128 latents x 64 channels, width 256, 3 decoder layers, a
downsampled geometry decoder; a 64 px patch-transformer image encoder (65 tokens x 128) in place of DINOv2.
Trained by ``flowlab train-shape`` on flowlab's procedural shapes (:mod:`flowlab.shape.data.primitives`),
in the REVERSED convention as Hunyuan3D-2.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from ..._optional import require
from ...errors import FlowlabError

__all__ = ["MINI_NAME", "MINI_DIR", "MANIFEST", "SHIPPED_FILES", "mini_folder", "load_mini", "load_mini_encoder",
           "export_folder", "resolve_model", "plot_training_log"]

MINI_NAME = "mini"
MINI_DIR = Path(__file__).resolve().parents[1] / "weights" / "mini"
MANIFEST = "manifest.json"
SHIPPED_FILES = ("config.yaml", "model.fp16.safetensors", "vae_encoder.fp16.safetensors", "train_log.json",
                 "training_log.png")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path, how: str) -> dict:
    """``manifest.json``'s ``files`` mapping, every entry ``{"sha256": 64 hex digits, "bytes": int}``; a
    FlowlabError naming the manifest when it is not that (null, a list, an entry without its hash)."""
    man = Path(folder) / MANIFEST
    try:
        entries = json.loads(man.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, OSError):
        raise FlowlabError(f"{man}: the manifest is damaged (not the JSON flowlab wrote); {how}") from None
    if not isinstance(entries, dict) or not entries:
        raise FlowlabError(f"{man}: the manifest is damaged ('files' is {type(entries).__name__}, not a mapping of "
                           f"file names to hashes); {how}")
    for name, entry in entries.items():
        ok = (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
              and isinstance(entry.get("bytes"), int) and not isinstance(entry.get("bytes"), bool))
        if not ok or not isinstance(name, str) or "/" in name or name.startswith("."):
            raise FlowlabError(f"{man}: the manifest is damaged (the entry for {name!r} needs a 'sha256' of 64 hex "
                               f"digits and a 'bytes' count); {how}")
    return entries


def verify_manifest(folder: Path, how: str, required: tuple[str, ...] = ()) -> None:
    """Every file listed in ``folder``'s manifest (and every ``required`` name) is present and unaltered."""
    folder = Path(folder)
    man = folder / MANIFEST
    entries = read_manifest(folder, how)
    for name in (*required, *(n for n in entries if n not in required)):
        path = folder / name
        if name not in entries:
            raise FlowlabError(f"{man}: no entry for {name}; the manifest is damaged; {how}")
        if not path.is_file():
            raise FlowlabError(f"{path}: a file listed in {MANIFEST} is missing; {how}")
        if path.stat().st_size != entries[name]["bytes"] or _sha256(path) != entries[name]["sha256"]:
            raise FlowlabError(f"{path}: this file was altered (its SHA-256 or size differs from {MANIFEST}); {how}")


def mini_folder(folder: Path | None = None, *, verify: bool = True) -> Path:
    """The shipped folder, every file checked against ``manifest.json`` (FlowlabError naming the first
    missing or altered file)."""
    folder = Path(folder) if folder is not None else MINI_DIR
    how = ("reinstall flowlab or restore the folder from git (`git checkout -- flowlab/shape/weights/mini`)")
    man = folder / MANIFEST
    if not man.is_file():
        raise FlowlabError(f"{man}: the mini model's manifest is missing; {how}")
    if not verify:
        read_manifest(folder, how)
        return folder
    verify_manifest(folder, how, SHIPPED_FILES)
    return folder


def resolve_model(spec: str) -> str:
    """``'mini'`` -> the verified shipped folder; anything else unchanged."""
    return str(mini_folder()) if spec == MINI_NAME else spec


def load_mini(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, folder: Path | None = None):
    """The shipped model (or an exported mini-layout ``folder`` with its manifest) as a
    :class:`~flowlab.shape.pipeline.ShapePipeline` (image conditioner loaded)."""
    from .folder import load_pipeline

    return load_pipeline(mini_folder(folder), device=device, dtype=dtype, with_conditioner=True)


def load_mini_encoder(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                      folder: Path | None = None):
    """The ShapeVAE encoder trained with the mini model (strict load)."""
    yaml = require("yaml", "the mini model's config.yaml")

    from .checkpoint import load_strict, read_state_dict
    from ..models.encoder import EncoderConfig, ShapeVAEEncoder

    folder = mini_folder(folder)
    cfg = yaml.safe_load((folder / "config.yaml").read_text())["flowlab"]["encoder"]
    enc = ShapeVAEEncoder(EncoderConfig(**cfg["params"]))
    path = folder / cfg["weights"]
    load_strict(enc, {k: v.float() for k, v in read_state_dict(path).items()}, what="ShapeVAE encoder", source=path)
    return enc.to(device=device, dtype=dtype).eval()


# ---- export (from a train-shape run) -------------------------------------------------------------------

def _config_yaml(log: dict, conditioner_section: dict) -> dict:
    from ..models.dit import DiTConfig
    from ..models.vae import VAEConfig

    dit = DiTConfig(**log["config"]["dit"])
    vae = VAEConfig(**{**log["config"]["vae"], "scale_factor": float(log["scale_factor"])})
    dit_params = dit.as_dict()
    dit_params.update(axes_dim=[dit.hidden_size // dit.num_heads], theta=10000)
    return {
        "model": {"target": "hy3dgen.shapegen.models.denoisers.hunyuan3ddit.Hunyuan3DDiT", "params": dit_params},
        "vae": {"target": "hy3dgen.shapegen.models.autoencoders.ShapeVAE", "params": vae.as_dict()},
        "conditioner": conditioner_section,
        "scheduler": {"target": "hy3dgen.shapegen.schedulers.FlowMatchEulerDiscreteScheduler",
                      "params": {"num_train_timesteps": 1000}},
        "flowlab": {
            "about": "flowlab's mini model: the Hunyuan3D-2 architecture at small widths, trained on flowlab's "
                     "procedural shapes (flowlab train-shape), reversed convention. Images: a fixed front camera, "
                     "no recentring (flowlab.shape.data.render); the conditioner reads them with load_mini_image.",
            "octree_resolution": 128,
            "hierarchical": True,
            "encoder": {"weights": "vae_encoder.fp16.safetensors", "params": log["config"]["encoder"]},
        },
    }


def plot_training_log(logs: list[dict], path: Path) -> None:
    """Loss curves of one or more consecutive runs (VAE loss and accuracy, DiT flow-matching loss) -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...io import write_atomic

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    offs = {"vae": 0, "dit": 0}
    for i, log in enumerate(logs):
        for key, ax_loss in (("vae", axes[0]), ("dit", axes[2])):
            h = log.get(key)
            if not h:
                continue
            steps = [offs[key] + s for s in h["step"]]
            ax_loss.plot(steps, h["loss"], lw=1, label=f"GPU run {i + 1}")
            if key == "vae":
                axes[1].plot(steps, h["acc"], lw=1, label=f"GPU run {i + 1}")
            offs[key] = steps[-1]
    axes[0].set(title="ShapeVAE: BCE + 1e-3 KL", xlabel="step", ylabel="loss", yscale="log")
    axes[1].set(title="ShapeVAE: occupancy accuracy (training queries)", xlabel="step")
    axes[2].set(title="DiT: flow-matching MSE, target D - E", xlabel="step", ylabel="loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def read_train_log(run: Path) -> dict:
    """``run/train_log.json`` as a dict with a ``config`` mapping; a FlowlabError naming the file otherwise."""
    path = Path(run) / "train_log.json"
    try:
        log = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlowlabError(f"{path} is not a readable JSON training log ({type(exc).__name__}); pass the --out folder "
                           "of a finished `flowlab train-shape` run") from None
    if not isinstance(log, dict) or not isinstance(log.get("config"), dict):
        raise FlowlabError(f"{path} lacks the 'config' section flowlab train-shape writes; pass the --out folder of "
                           "a finished run")
    return log


def read_checkpoint(path: Path) -> dict:
    """The tensors of one training checkpoint; a FlowlabError for a truncated or damaged file."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise FlowlabError(f"{path} is not a readable safetensors file ({exc}); it may be truncated: run the stage "
                           "that writes it again") from None
    bad = sorted(k for k, v in tensors.items() if not v.is_floating_point())
    if bad:
        raise FlowlabError(f"{path}: {bad[0]} has dtype {tensors[bad[0]].dtype}; checkpoints hold floating weights, "
                           "so the file is damaged")
    return tensors


def _check_export_dest(dest: Path) -> None:
    import os

    if dest.exists() and not dest.is_dir():
        raise FlowlabError(f"--export {str(dest)!r} exists and is not a folder; give a folder name")
    if dest.is_dir() and not os.access(dest, os.W_OK | os.X_OK):
        raise FlowlabError(f"--export {str(dest)!r} is not writable; choose another folder")
    if not dest.exists() and not (dest.parent if str(dest.parent) else Path(".")).is_dir():
        raise FlowlabError(f"--export {str(dest)!r}: folder {str(dest.parent)!r} does not exist; create it first")


def export_folder(run: Path, dest: Path, previous: list[Path] = ()) -> Path:
    """Write the shipped layout to ``dest`` from a ``flowlab train-shape`` output folder ``run``
    (``previous``: folders of the runs it was initialised from, oldest first, for the log)."""
    yaml = require("yaml", "the mini model's config.yaml")
    from safetensors.torch import save_file

    from ...io import write_atomic
    from ..models.image_encoder import PatchConditioner

    run, dest = Path(run), Path(dest)
    need = ["dit.safetensors", "vae.safetensors", "conditioner.safetensors", "encoder.safetensors", "train_log.json"]
    for n in need:
        if not (run / n).is_file():
            raise FlowlabError(f"{run / n} is missing; pass the --out folder of a finished `flowlab train-shape` run")
    log = read_train_log(run)
    logs = [read_train_log(Path(p)) for p in previous] + [log]
    _check_export_dest(dest)
    try:
        _config_yaml(log, {})
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowlabError(f"{run / 'train_log.json'}: its 'config' section cannot describe the model ({exc}); pass "
                           "the --out folder of a finished `flowlab train-shape` run") from None
    scale = log.get("scale_factor")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise FlowlabError(f"{run / 'train_log.json'}: scale_factor = {scale!r} is not a finite number > 0 (the VAE "
                           "stage diverged or did not finish), so the exported model could not be loaded; run the "
                           "vae stage again")
    image = log["config"].get("image")
    if not isinstance(image, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                              for v in image.values()):
        raise FlowlabError(f"{run / 'train_log.json'}: config.image = {image!r:.80} must map the image encoder's "
                           "sizes to whole numbers >= 1; pass the --out folder of a finished run")
    from ...limits import check_memory

    check_memory(16.0 * image.get("width", 1) ** 2 * (image.get("layers", 1) + 1)
                 + 4.0 * image.get("image_size", 1) ** 2 * image.get("width", 1),
                 f"the image encoder in {run / 'train_log.json'} ({image})",
                 "the training log is damaged: pass the --out folder of a finished run")
    tensors = {name: read_checkpoint(run / f"{name}.safetensors") for name in ("dit", "vae", "conditioner", "encoder")}
    dest.mkdir(parents=True, exist_ok=True)
    cond = PatchConditioner(**log["config"]["image"])
    flat = {}
    for prefix, name in (("model", "dit"), ("vae", "vae"), ("conditioner", "conditioner")):
        for k, v in tensors[name].items():
            flat[f"{prefix}.{k}"] = v.to(torch.float16).contiguous()
    enc = {k: v.to(torch.float16).contiguous() for k, v in tensors["encoder"].items()}
    import tempfile

    for name, tensors in (("model.fp16.safetensors", flat), ("vae_encoder.fp16.safetensors", enc)):
        with tempfile.TemporaryDirectory() as tmp:
            save_file(tensors, f"{tmp}/x")
            write_atomic(dest / name, Path(f"{tmp}/x").read_bytes())
    write_atomic(dest / "config.yaml", yaml.safe_dump(_config_yaml(log, cond.config_section()), sort_keys=False))
    write_atomic(dest / "train_log.json", json.dumps({"runs": logs}, indent=1))
    plot_training_log(logs, dest / "training_log.png")
    files = {n: {"sha256": _sha256(dest / n), "bytes": (dest / n).stat().st_size} for n in SHIPPED_FILES}
    write_atomic(dest / MANIFEST, json.dumps({"files": files}, indent=1))
    return dest


def evaluate_shipped(shapes: int = 20, steps: int = 50, resolution: int = 32, guidance: float = 5.0,
                     device: str = "cpu", *, folder: Path | None = None, offset: int = 0) -> dict:
    """:func:`flowlab.shape.train.evaluate.evaluate` on the shipped fp16 weights (or an exported ``folder``):
    a smaller check than the training run's (fewer shapes; ``offset`` 1 draws them from another seed than
    the training run's 200), so that it runs on a CPU."""
    from ..train.loop import TrainOptions, evaluate

    pipe = load_mini(device=device, folder=folder)
    opts = TrainOptions(device=device, eval_shapes=shapes, eval_steps=steps, eval_resolution=resolution,
                        eval_guidance=guidance, guidance_sweep=(guidance,), eval_offset=offset)
    return evaluate(load_mini_encoder(device=device, folder=folder), pipe.vae, pipe.dit, pipe.conditioner,
                    float(pipe.vae.config.scale_factor), opts)
