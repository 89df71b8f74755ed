"""Checkpoint folders in the official layout, built here from tiny random-weight models; every bad input."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("yaml")
pytest.importorskip("skimage")
pytest.importorskip("trimesh")

from flowlab.errors import FlowlabError  # noqa: E402
from flowlab.shape.load import checkpoint as ck  # noqa: E402
from flowlab.shape.models.conditioner import load_image  # noqa: E402
from flowlab.shape.models.dit import ShapeDiT  # noqa: E402
from flowlab.shape.load.embedding import load_embedding, save_embedding  # noqa: E402
from flowlab.shape.decode.mesh import export_mesh, marching_cubes  # noqa: E402
from flowlab.shape.load.folder import load_pipeline  # noqa: E402
from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline, write_checkpoint_folder  # noqa: E402
from flowlab.shape.models.vae import ShapeVAE  # noqa: E402



pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one CPU thread (conftest)

DATA = Path(__file__).parent / "data" / "hy3dgen"


@pytest.fixture(scope="module")
def tiny():
    return tiny_pipeline(0)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, dtype: torch.dtype) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].to(dtype).float(), sb[k].float()) for k in sa)


@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
@pytest.mark.parametrize("variant", ["fp16", None])
def test_official_layout_round_trip(tiny, tmp_path: Path, fmt: str, variant: str | None) -> None:
    folder = tmp_path / "hunyuan3d-dit-v2-0"
    weights = write_checkpoint_folder(tiny, folder, fmt=fmt, variant=variant)
    assert weights.name == f"model{'.fp16' if variant else ''}.{fmt}"
    pipe = load_pipeline(folder, dtype=torch.float32, variant=variant)
    dtype = torch.float16 if variant else torch.float32
    assert pipe.folder.weights == weights
    assert _same_weights(tiny.dit, pipe.dit, dtype) and _same_weights(tiny.vae, pipe.vae, dtype)
    assert torch.equal(pipe.vae.geo_decoder.fourier_embedder.frequencies, torch.tensor([1.0, 2.0]))
    assert not any(p.is_meta for p in pipe.dit.parameters())


def test_lookup_through_models_env_and_repo_id(tiny, tmp_path: Path, monkeypatch) -> None:
    write_checkpoint_folder(tiny, tmp_path / "tencent" / "Hunyuan3D-2" / "hunyuan3d-dit-v2-0")
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path))
    assert load_pipeline("tencent/Hunyuan3D-2").folder.path == tmp_path / "tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0"
    assert load_pipeline("tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0").folder.weights.name == "model.fp16.safetensors"


def test_standalone_vae_folder(tiny, tmp_path: Path) -> None:
    turbo = tiny_pipeline(1, turbo_vae=True)
    vf = tmp_path / "hunyuan3d-vae-v2-0-turbo"
    vf.mkdir()
    import yaml
    from dataclasses import asdict
    from safetensors.torch import save_file

    (vf / "config.yaml").write_text(yaml.safe_dump({"target": "hy3dgen.shapegen.models.ShapeVAE",
                                                    "params": asdict(turbo.vae.config)}))
    save_file({k: v.half().contiguous() for k, v in turbo.vae.state_dict().items()}, str(vf / "model.fp16.safetensors"))
    write_checkpoint_folder(tiny, tmp_path / "dit")
    pipe = load_pipeline(tmp_path / "dit", vae=vf)
    assert pipe.vae.config.geo_decoder_downsample_ratio == 2
    assert _same_weights(turbo.vae, pipe.vae, torch.float16)
    with pytest.raises(FlowlabError, match="standalone VAE folder"):
        load_pipeline(vf)


def test_loaded_pipeline_reproduces_latents(tiny, tmp_path: Path) -> None:
    write_checkpoint_folder(tiny, tmp_path / "m", variant=None)
    pipe = load_pipeline(tmp_path / "m", variant=None, dtype=torch.float32)
    a = tiny.sample_latents(tiny_cond(0), steps=3, seed=1)
    b = pipe.sample_latents(tiny_cond(0), steps=3, seed=1)
    assert torch.equal(a, b)


# ---- bad inputs ------------------------------------------------------------------------------------

def test_weights_not_found_lists_paths_and_how_to_get_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FlowlabError) as e:
        load_pipeline(tmp_path / "nowhere")
    assert "nowhere" in str(e.value) and "huggingface-cli download" in str(e.value)
    with pytest.raises(FlowlabError) as e:
        load_pipeline("tencent/Hunyuan3D-2")
    msg = str(e.value)
    assert str(tmp_path / "models" / "tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0") in msg
    assert "Hugging Face cache" in msg and "download=True" in msg and "--download" not in msg


def test_config_missing(tiny, tmp_path: Path) -> None:
    write_checkpoint_folder(tiny, tmp_path / "m")
    (tmp_path / "m" / "config.yaml").unlink()
    with pytest.raises(FlowlabError, match="config.yaml is missing"):
        load_pipeline(tmp_path / "m")


def test_config_unknown_target(tiny, tmp_path: Path) -> None:
    write_checkpoint_folder(tiny, tmp_path / "m")
    cfg = tmp_path / "m" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("models.Hunyuan3DDiT", "models.Hunyuan3DDiTPlus"))
    with pytest.raises(FlowlabError, match="Hunyuan3DDiTPlus.*Hunyuan3DDiT"):
        load_pipeline(tmp_path / "m")


def test_weight_file_missing(tiny, tmp_path: Path) -> None:
    write_checkpoint_folder(tiny, tmp_path / "m").unlink()
    with pytest.raises(FlowlabError, match="no weight file"):
        load_pipeline(tmp_path / "m")


def _rewrite(weights: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    d = load_file(str(weights))
    edit(d)
    save_file(d, str(weights))


def test_missing_unexpected_misshaped_keys_are_reported(tiny, tmp_path: Path) -> None:
    w = write_checkpoint_folder(tiny, tmp_path / "m")

    def edit(d):
        del d["model.latent_in.weight"]
        d["model.extra.weight"] = torch.zeros(1)
        d["model.cond_in.weight"] = torch.zeros(3, 3, dtype=torch.float16)
    _rewrite(w, edit)
    with pytest.raises(FlowlabError) as e:
        load_pipeline(tmp_path / "m")
    msg = str(e.value)
    assert "1 missing key(s): latent_in.weight" in msg and "1 unexpected key(s): extra.weight" in msg
    assert "cond_in.weight (checkpoint (3, 3), model (32, 16))" in msg


def test_report_shows_first_few_keys_only() -> None:
    with torch.device("meta"):
        dit = ShapeDiT()
    report = ck.check_state_dict(dit, {})
    text = report.describe()
    assert text.startswith(f"{len(dit.state_dict())} missing key(s)") and text.endswith(", ...")


def test_pickle_that_needs_code_is_refused(tiny, tmp_path: Path) -> None:
    w = write_checkpoint_folder(tiny, tmp_path / "m", fmt="ckpt", variant=None)
    obj = torch.load(str(w), weights_only=True)
    obj["args"] = argparse.Namespace(lr=1.0)  # a training script's pickled object
    torch.save(obj, str(w))
    with pytest.raises(FlowlabError, match="holds more than tensors: its pickle refers to argparse.Namespace") as e:
        load_pipeline(tmp_path / "m", variant=None)
    assert "will not unpickle" in str(e.value) and "weights_only set to False" not in str(e.value)


def test_damaged_safetensors(tiny, tmp_path: Path) -> None:
    w = write_checkpoint_folder(tiny, tmp_path / "m")
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(FlowlabError, match="download it again"):
        load_pipeline(tmp_path / "m")


def test_unreadable_image(tmp_path: Path) -> None:
    p = tmp_path / "photo.png"
    p.write_text("not an image")
    with pytest.raises(FlowlabError, match="cannot read image"):
        load_image(p)
    with pytest.raises(FlowlabError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_unsupported_image_mode(tmp_path: Path) -> None:
    from PIL import Image

    p = tmp_path / "depth.tif"
    Image.fromarray(np.zeros((8, 8), np.float32), "F").save(p)
    with pytest.raises(FlowlabError, match="mode 'F' is not supported"):
        load_image(p)


def test_empty_image(tmp_path: Path) -> None:
    from PIL import Image

    p = tmp_path / "empty.png"
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(p)
    with pytest.raises(FlowlabError, match="empty"):
        load_image(p)


def test_load_image_recentres_on_white() -> None:
    from PIL import Image

    img = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (40, 8, 56, 24))
    t = load_image(img, size=64)
    assert t.shape == (1, 3, 64, 64)
    assert torch.allclose(t[0, :, 0, 0], torch.ones(3))  # white background, in [-1, 1]
    assert t[0, 0, 32, 32] > 0.9 and t[0, 1, 32, 32] < -0.9  # the red object is now centred


def test_no_surface_is_an_error() -> None:
    with pytest.raises(FlowlabError, match="no surface"):
        marching_cubes(torch.full((5, 5, 5), 2.0))


def test_export_is_atomic_and_checks_the_path(tmp_path: Path) -> None:
    mesh = marching_cubes(torch.linspace(-1, 1, 6)[:, None, None].expand(6, 6, 6).clone())
    for suffix in (".glb", ".obj", ".ply"):
        out = export_mesh(mesh, tmp_path / f"m{suffix}")
        import trimesh

        loaded = trimesh.load(out, force="mesh")
        assert len(loaded.faces) == len(mesh.faces)
    with pytest.raises(FlowlabError, match="does not exist"):
        export_mesh(mesh, tmp_path / "no" / "m.glb")
    with pytest.raises(FlowlabError, match="unknown mesh format"):
        export_mesh(mesh, tmp_path / "m.stl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.glb", "m.obj", "m.ply"]  # no temp files left


def test_cuda_oom_suggests_smaller_octree(tiny, monkeypatch) -> None:
    import flowlab.shape.pipeline as pl

    def boom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(pl, "decode_dense", boom)
    with pytest.raises(FlowlabError, match="smaller octree"):
        tiny.decode_volume(torch.zeros(1, *tiny.vae.latent_shape), octree=384, decode="dense")


def test_embedding_files(tmp_path: Path, tiny) -> None:
    c = tiny_cond(0)
    assert torch.equal(load_embedding(save_embedding(c, tmp_path / "c.safetensors")), c)
    np.save(tmp_path / "c.npy", c.numpy())
    assert torch.equal(load_embedding(tmp_path / "c.npy"), c)
    torch.save(c, tmp_path / "c.pt")
    assert torch.equal(load_embedding(tmp_path / "c.pt"), c)
    with pytest.raises(FlowlabError, match="expected \\(B, L, 16\\)"):
        tiny.check_embedding(torch.zeros(1, 10, 7))
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(FlowlabError, match="cannot read embedding"):
        load_embedding(tmp_path / "bad.pt")


# ---- conditioner (needs transformers) -------------------------------------------------------------

@pytest.mark.parametrize("names", ["4.x", "5.x"])
def test_conditioner_checkpoint_with_either_transformers_names(tmp_path: Path, names: str) -> None:
    pytest.importorskip("transformers")
    pipe = tiny_pipeline(0, with_conditioner=True)
    w = write_checkpoint_folder(pipe, tmp_path / "m", variant=None, dinov2_names=names)
    from safetensors.torch import load_file

    keys = load_file(str(w)).keys()
    assert any(".mlp.weights_in." in k for k in keys) == (names == "4.x")
    loaded = load_pipeline(tmp_path / "m", variant=None, with_conditioner=True, dtype=torch.float32)
    from PIL import Image

    img = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    img.paste((200, 120, 10, 255), (5, 5, 30, 25))
    a, b = pipe.encode_image(img), loaded.encode_image(img)
    assert a.shape == (1, 1370, 16)
    assert torch.equal(a, b)


def test_conditioner_unconditional_is_zeros() -> None:
    pytest.importorskip("transformers")
    pipe = tiny_pipeline(0, with_conditioner=True)
    u = pipe.conditioner.unconditional(2)
    assert u.shape == (2, 1370, 16) and not u.any()


# ---- manifest of the released configurations -----------------------------------------------------

MANIFEST = json.loads((DATA / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_full_size_modules_match_manifest(name: str) -> None:
    from flowlab.shape.load.config import dit_config_from_params, vae_config_from_params

    entry = MANIFEST[name]
    with torch.device("meta"):
        if entry["kind"] == "dit":
            m = ShapeDiT(dit_config_from_params(entry["params"]))
        else:
            m = ShapeVAE(vae_config_from_params(entry["params"]))
    got = {k: list(v.shape) for k, v in m.state_dict().items()}
    assert got == entry["keys"]
    assert sum(p.numel() for p in m.parameters()) == entry["n_params"]


def test_released_parameter_counts() -> None:
    assert MANIFEST["dit-v2-0"]["n_params"] == 1_113_274_432
    assert MANIFEST["dit-v2-0-guidance"]["n_params"] == 1_114_587_200
    assert MANIFEST["dit-v2-mini"]["n_params"] == 559_196_224
    assert MANIFEST["dit-v2-mini-guidance"]["n_params"] == 560_508_992
    assert MANIFEST["vae-v2-0"]["n_params"] == 214_212_865
    assert MANIFEST["vae-v2-0-turbo"]["n_params"] == 203_690_497
