"""The shipped mini model: layout, strict loading, integrity checks, quality, both conventions, the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("yaml")
pytest.importorskip("skimage")
pytest.importorskip("trimesh")

from flowlab.cli import main  # noqa: E402
from flowlab.errors import FlowlabError  # noqa: E402
from flowlab.shape.load import mini  # noqa: E402
from flowlab.shape.load.checkpoint import read_state_dict  # noqa: E402
from flowlab.shape.data.primitives import occupancy_grid, random_shapes, surface_points, volume_iou  # noqa: E402
from flowlab.shape.data.render import render, to_model_input  # noqa: E402
from flowlab.shape.train.loop import EVAL_SEED  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe():
    return mini.load_mini()


def test_shipped_folder_is_complete_small_and_in_the_official_layout() -> None:
    folder = mini.mini_folder()
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert set(sizes) == set(mini.SHIPPED_FILES) | {mini.MANIFEST}
    assert sum(sizes.values()) <= 20_000_000
    import yaml

    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    assert cfg["model"]["target"].endswith("Hunyuan3DDiT") and cfg["vae"]["target"].endswith("ShapeVAE")
    keys = read_state_dict(folder / "model.fp16.safetensors")
    assert {k.split(".", 1)[0] for k in keys} == {"model", "vae", "conditioner"}
    assert all(v.dtype == torch.float16 for v in keys.values())
    log = json.loads((folder / "train_log.json").read_text())
    assert log["runs"][-1]["eval"]["shapes"] == 200


def test_loads_strictly_through_load_pipeline(pipe) -> None:
    assert pipe.dit.config.hidden_size == 256 and pipe.vae.config.num_latents == 128
    assert pipe.conditioner.num_tokens == 65
    n = sum(p.numel() for m in (pipe.dit, pipe.vae, pipe.conditioner) for p in m.parameters())
    assert n < 10_000_000


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "mini"
    shutil.copytree(mini.MINI_DIR, dest)
    for p in dest.iterdir():
        p.chmod(0o644)
    return dest


def test_missing_or_altered_file_is_named(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    mini.mini_folder(folder)  # intact copy passes
    data = bytearray((folder / "model.fp16.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.fp16.safetensors").write_bytes(bytes(data))
    with pytest.raises(FlowlabError, match="model.fp16.safetensors: this file was altered"):
        mini.mini_folder(folder)
    (folder / "config.yaml").unlink()
    with pytest.raises(FlowlabError, match="config.yaml: a file listed in manifest.json is missing"):
        mini.mini_folder(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(FlowlabError, match="manifest.json: the mini model's manifest is missing"):
        mini.mini_folder(folder)


def test_cli_refuses_an_altered_folder_and_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = _copy(tmp_path)
    (folder / "vae_encoder.fp16.safetensors").write_bytes(b"not the weights")
    monkeypatch.setattr(mini, "MINI_DIR", folder)
    out = tmp_path / "m.glb"
    assert main(["shape", "--model", "mini", "--primitive", "torus", "--out", str(out), "--quiet"]) == 1
    assert "vae_encoder.fp16.safetensors" in capsys.readouterr().err and not out.exists()


def test_vae_reconstructs_held_out_shapes(pipe) -> None:
    s = random_shapes(3, EVAL_SEED + 1, families=["sphere", "capsule", "cylinder"], balanced=True)
    enc = mini.load_mini_encoder()
    p, n = surface_points(s, 2048, torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = enc(p, n).mode() * pipe.vae.config.scale_factor
    iou = volume_iou(pipe.decode_volume(z, octree=48) > 0, occupancy_grid(s, 48))
    assert float(iou.min()) > 0.9, iou


def test_image_to_shape_on_held_out_shapes_in_both_conventions(pipe) -> None:
    s = random_shapes(3, EVAL_SEED + 1, families=["sphere", "capsule", "cylinder"], balanced=True)
    cond = pipe.conditioner(to_model_input(render(s, 64)))
    kw = dict(steps=12, guidance=5.0, exact=False, wasted_last_step=False, seed=0)
    rev = pipe.sample_latents(cond, convention="reversed", **kw)
    conv = pipe.sample_latents(cond, convention="conventional", **kw)
    truth = occupancy_grid(s, 48)
    iou = volume_iou(pipe.decode_volume(rev, octree=48) > 0, truth)
    assert float(iou.min()) > 0.8, iou
    # the flipped model sampled along sigma = 1 - t gives the same meshes
    for i in range(3):
        a = pipe.mesh(pipe.decode_volume(rev[i:i + 1], octree=48))
        b = pipe.mesh(pipe.decode_volume(conv[i:i + 1], octree=48))
        assert a.vertices.shape == b.vertices.shape and np.array_equal(a.faces, b.faces)
        assert float(np.abs(a.vertices - b.vertices).max()) < 1e-4


def test_cli_generates_a_torus_from_its_render(tmp_path: Path, capsys) -> None:
    out = tmp_path / "torus.glb"
    assert main(["shape", "--model", "mini", "--primitive", "torus", "--steps", "8", "--octree", "32",
                 "--out", str(out), "--quiet"]) == 0
    import trimesh

    mesh = trimesh.load(out, force="mesh")
    assert len(mesh.faces) > 100
    assert "wrote" in capsys.readouterr().out


def test_unknown_primitive_lists_the_valid_ones(tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.glb"
    assert main(["shape", "--model", "mini", "--primitive", "teapot", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "unknown primitive 'teapot'" in err and "torus" in err and "table" in err and not out.exists()


@pytest.mark.parametrize("kind", ["text", "empty", "1x1", "blank"])
def test_bad_images_are_refused_and_no_mesh_is_written(tmp_path: Path, capsys, kind: str) -> None:
    from PIL import Image

    img = tmp_path / "in.png"
    if kind == "text":
        img.write_text("this is not a picture")
        want = "not an image"
    elif kind == "empty":
        img.write_bytes(b"")
        want = "empty file"
    elif kind == "1x1":
        Image.new("RGB", (1, 1), (255, 0, 0)).save(img)
        want = "1x1 pixels"
    else:
        Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(img)
        want = "the image is empty"
    out = tmp_path / "m.glb"
    assert main(["shape", "--model", "mini", "--image", str(img), "--out", str(out), "--quiet"]) == 1
    assert want in capsys.readouterr().err and not out.exists()


def test_grayscale_image_is_read_as_rgb(pipe, tmp_path: Path) -> None:
    from flowlab.shape.data.primitives import primitive
    from flowlab.shape.data.render import to_pil

    rgb = to_pil(render(primitive("capsule", seed=2), 64)).convert("RGB")
    gray = tmp_path / "g.png"
    rgb.convert("L").save(gray)
    tokens = pipe.encode_image(gray)
    assert tokens.shape == (1, 65, 128) and torch.isfinite(tokens).all()
    assert float((tokens - pipe.encode_image(rgb)).abs().max()) > 0  # a different input, read without error
