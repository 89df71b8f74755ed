"""``flowlab shape`` on tiny random-weight checkpoint folders in the official layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("yaml")
pytest.importorskip("skimage")
trimesh = pytest.importorskip("trimesh")

from flowlab.cli import main  # noqa: E402
from flowlab.shape.load.embedding import save_embedding  # noqa: E402
from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline, write_checkpoint_folder  # noqa: E402



pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one CPU thread (conftest)

ARGS = ["--steps", "6", "--octree", "24", "--quiet"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    write_checkpoint_folder(tiny_pipeline(0), root / "hunyuan3d-dit-v2-0")
    save_embedding(tiny_cond(0), root / "cond.safetensors")
    return root


def _run(folder: Path, out: Path, *extra: str) -> int:
    return main(["shape", "--model", str(folder / "hunyuan3d-dit-v2-0"), "--embedding",
                 str(folder / "cond.safetensors"), "--out", str(out), *ARGS, *extra])


def test_writes_a_valid_glb_and_the_same_mesh_in_both_conventions(folder: Path, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "rev.glb", tmp_path / "conv.glb"
    assert _run(folder, a, "--convention", "reversed") == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "6 model calls, 6 effective steps" in out  # default schedule: no wasted call
    assert _run(folder, b, "--convention", "conventional") == 0
    ma, mb = trimesh.load(a, force="mesh"), trimesh.load(b, force="mesh")
    assert len(ma.faces) > 0
    assert ma.vertices.shape == mb.vertices.shape and np.array_equal(ma.faces, mb.faces)
    assert np.abs(ma.vertices - mb.vertices).max() < 1e-4


def test_reference_schedule_wastes_the_last_call(folder: Path, tmp_path: Path, capsys) -> None:
    assert _run(folder, tmp_path / "ref.glb", "--schedule", "reference") == 0
    assert "6 model calls, 5 effective steps" in capsys.readouterr().out


def test_other_formats_and_options(folder: Path, tmp_path: Path) -> None:
    for suffix in (".obj", ".ply"):
        assert _run(folder, tmp_path / f"m{suffix}", "--decode", "dense", "--chunk-size", "999",
                    "--time-rounding", "none") == 0
        assert len(trimesh.load(tmp_path / f"m{suffix}", force="mesh").faces) > 0


def test_progress_goes_to_stderr(folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["shape", "--model", str(folder / "hunyuan3d-dit-v2-0"), "--embedding", str(folder / "cond.safetensors"),
                 "--out", str(tmp_path / "m.glb"), "--steps", "3", "--octree", "16"]) == 0
    cap = capsys.readouterr()
    assert "sampling" in cap.err and "decoding" in cap.err and "sampling" not in cap.out


def test_image_input_with_tiny_conditioner(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from PIL import Image

    write_checkpoint_folder(tiny_pipeline(0, with_conditioner=True), tmp_path / "m")
    img = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    img.paste((30, 160, 90, 255), (10, 8, 50, 40))
    img.save(tmp_path / "in.png")
    assert main(["shape", "--model", str(tmp_path / "m"), "--image", str(tmp_path / "in.png"),
                 "--out", str(tmp_path / "m.glb"), *ARGS]) == 0
    assert (tmp_path / "m.glb").stat().st_size > 0


@pytest.mark.parametrize("case, expect", [
    ("missing-model", "weights not found"),
    ("missing-folder", "does not exist"),
    ("bad-suffix", "unknown mesh format"),
    ("bad-embedding", "expected (B, L, 16)"),
    ("unreadable-image", "cannot read image"),
    ("bad-steps", "--steps must be >= 1"),
])
def test_bad_inputs_exit_1_with_a_message(folder: Path, tmp_path: Path, capsys, case: str, expect: str) -> None:
    model = str(folder / "hunyuan3d-dit-v2-0")
    src = ["--embedding", str(folder / "cond.safetensors")]
    out = tmp_path / "m.glb"
    extra: list[str] = []
    if case == "missing-model":
        model = str(tmp_path / "nothing-here")
    elif case == "missing-folder":
        out = tmp_path / "no" / "m.glb"
    elif case == "bad-suffix":
        out = tmp_path / "m.stl"
    elif case == "bad-embedding":
        save_embedding(torch.zeros(1, 4, 7), tmp_path / "bad.safetensors")
        src = ["--embedding", str(tmp_path / "bad.safetensors")]
    elif case == "unreadable-image":
        (tmp_path / "x.png").write_text("text")
        src = ["--image", str(tmp_path / "x.png")]
    elif case == "bad-steps":
        extra = ["--steps", "0"]
    code = main(["shape", "--model", model, *src, "--out", str(out), *ARGS, *extra])
    err = capsys.readouterr().err
    assert code == 1 and expect in err and err.startswith("flowlab shape: error:")
    assert not out.exists()


def test_no_surface_writes_nothing(tmp_path: Path, capsys) -> None:
    pipe = tiny_pipeline(0)
    with torch.no_grad():
        pipe.vae.geo_decoder.output_proj.bias += 1000.0  # everything inside: no iso-surface
    write_checkpoint_folder(pipe, tmp_path / "m")
    save_embedding(tiny_cond(0), tmp_path / "c.safetensors")
    code = main(["shape", "--model", str(tmp_path / "m"), "--embedding", str(tmp_path / "c.safetensors"),
                 "--out", str(tmp_path / "m.glb"), *ARGS])
    assert code == 1 and "no surface" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors", "m"]


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["shape", "--image", "x.png"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["shape", "--model", "m", "--image", "x.png", "--embedding", "e.pt"])
    assert e.value.code == 2
