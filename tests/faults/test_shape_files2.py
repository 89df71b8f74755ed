"""Second sweep (issue 22), model folders and training runs: config.yaml values, sizes bounded before any
module is built, manifests checked wherever one exists, exports that could not load refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

yaml = pytest.importorskip("yaml")

from faultkit import run_cli  # noqa: E402

from flowlab.errors import FlowlabError  # noqa: E402
from flowlab.models import MLPConfig, VelocityMLP, load_model, save_model  # noqa: E402
from flowlab.shape import load_pipeline  # noqa: E402
from flowlab.shape.load.mini import MINI_DIR, export_folder, mini_folder  # noqa: E402
from flowlab.shape.verify.tiny import tiny_pipeline, write_checkpoint_folder  # noqa: E402


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "model"
    write_checkpoint_folder(tiny_pipeline(0), root)
    return root


def _edited(tiny_folder: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(tiny_folder, folder)
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    edit(cfg)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def _set(path: str, value):
    def edit(cfg):
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return edit


@pytest.mark.parametrize("path, value, message", [
    ("scheduler.params.shift", "abc", "scheduler.params.shift = 'abc' must be a finite number > 0"),
    ("scheduler.params.shift", -1, "scheduler.params.shift = -1 is out of range: it must be > 0"),
    ("scheduler.params.shift", float("nan"), "scheduler.params.shift = nan must be a finite number > 0"),
    ("scheduler.params.pcm_timesteps", "abc", "scheduler.params.pcm_timesteps = 'abc' must be a whole number"),
    ("image_processor.params.size", "abc", "image_processor.params.size = 'abc' must be a whole number"),
    ("image_processor.params.border_ratio", "abc", "image_processor.params.border_ratio = 'abc' must be a finite"),
    ("flowlab.octree_resolution", "abc", "flowlab.octree_resolution = 'abc' must be a whole number"),
    ("flowlab.octree_resolution", -4, "flowlab.octree_resolution = -4 is out of range"),
    ("model.params.depth", 1_000_000, "needs about"),
    ("vae.params.num_latents", 1_000_000_000, "needs about"),
    ("model.params.time_factor", 1e300, "time_factor = 1e+300 is out of range"),
])
def test_config_values_are_checked_with_the_file_named(tiny_folder, tmp_path, path, value, message) -> None:
    folder = _edited(tiny_folder, tmp_path, _set(path, value))
    with pytest.raises(FlowlabError) as info:
        load_pipeline(folder, dtype=torch.float32)
    assert message in str(info.value)
    assert "config.yaml" in str(info.value)


def test_the_flowlab_section_as_a_list(tiny_folder, tmp_path) -> None:
    folder = _edited(tiny_folder, tmp_path, lambda cfg: cfg.__setitem__("flowlab", [1, 2]))
    with pytest.raises(FlowlabError, match="flowlab must be a mapping of key: value, got list"):
        load_pipeline(folder, dtype=torch.float32)


def test_octree_from_config_is_not_blamed_on_the_flag(tiny_folder, tmp_path) -> None:
    folder = _edited(tiny_folder, tmp_path, _set("flowlab.octree_resolution", -4))
    emb = tmp_path / "cond.safetensors"
    from flowlab.shape.load.embedding import save_embedding
    from flowlab.shape.verify.tiny import tiny_cond

    save_embedding(tiny_cond(0), emb)
    r = run_cli("shape", "--model", str(folder), "--embedding", str(emb), "--steps", "2", "--quiet", "--device", "cpu",
                "--out", str(tmp_path / "m.glb"), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "flowlab.octree_resolution = -4" in r.stderr and "--octree must be" not in r.stderr


@pytest.fixture()
def mini_copy(tmp_path) -> Path:
    folder = tmp_path / "mini"
    shutil.copytree(MINI_DIR, folder)
    return folder


def test_a_copied_mini_folder_with_one_flipped_byte_is_refused(mini_copy) -> None:
    path = mini_copy / "model.fp16.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(FlowlabError, match="model.fp16.safetensors: this file was altered"):
        load_pipeline(mini_copy, dtype=torch.float32)


@pytest.mark.parametrize("files", [None, ["config.yaml"], {"config.yaml": {"bytes": 3}}])
def test_a_damaged_manifest(mini_copy, files) -> None:
    (mini_copy / "manifest.json").write_text(json.dumps({"files": files}))
    with pytest.raises(FlowlabError, match="the manifest is damaged"):
        mini_folder(mini_copy)
    with pytest.raises(FlowlabError, match="the manifest is damaged"):
        load_pipeline(mini_copy, dtype=torch.float32)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    r = run_cli("train-shape", "--smoke", "--out", str(out), "--stages", "vae,dit", cwd=out.parent)
    assert r.returncode == 0, r.stderr
    return out


def _copy_run(smoke_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    return run


def test_export_refuses_a_nan_scale_factor(smoke_run, tmp_path) -> None:
    run = _copy_run(smoke_run, tmp_path)
    log = json.loads((run / "train_log.json").read_text())
    log["scale_factor"] = float("nan")
    (run / "train_log.json").write_text(json.dumps(log))
    with pytest.raises(FlowlabError, match="scale_factor = nan is not a finite number > 0"):
        export_folder(run, tmp_path / "exported")
    assert not (tmp_path / "exported" / "manifest.json").exists()


@pytest.mark.parametrize("text, message", [("not json", "is not a readable JSON training log"),
                                           ("{}", "lacks the 'config' section"), ("[1]", "lacks the 'config'")])
def test_export_and_init_with_a_bad_train_log(smoke_run, tmp_path, text, message) -> None:
    run = _copy_run(smoke_run, tmp_path)
    (run / "train_log.json").write_text(text)
    with pytest.raises(FlowlabError, match=message):
        export_folder(run, tmp_path / "exported")
    r = run_cli("train-shape", "--smoke", "--out", str(tmp_path / "again"), "--init", str(run), "--stages", "vae",
                cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and message in r.stderr, r.stderr


def test_export_with_a_truncated_checkpoint(smoke_run, tmp_path) -> None:
    run = _copy_run(smoke_run, tmp_path)
    data = (run / "dit.safetensors").read_bytes()
    (run / "dit.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FlowlabError, match="dit.safetensors is not a readable safetensors file"):
        export_folder(run, tmp_path / "exported")


def test_export_onto_an_existing_file(smoke_run, tmp_path) -> None:
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(FlowlabError, match="exists and is not a folder"):
        export_folder(smoke_run, tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"


def test_velocity_mlp_metadata_sizes_are_checked_before_building(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_model(VelocityMLP(MLPConfig(dim=2, hidden=8, depth=2), "reversed"), path)
    save_file({"w": torch.zeros(1)}, str(path), metadata={
        "format": "flowlab.VelocityMLP/1", "convention": "reversed",
        "config": json.dumps({"dim": 2, "hidden": 2_000_000, "depth": 4, "time_dim": 16})})
    with pytest.raises(FlowlabError, match="the architecture in its metadata .* needs about"):
        load_model(path)


def test_long_shape_runs_are_estimated_and_refused(tmp_path) -> None:
    base = ["shape", "--model", "mini", "--primitive", "torus", "--quiet", "--device", "cpu",
            "--out", str(tmp_path / "m.glb")]
    # a 60 s limit ($FLOWLAB_WORK_LIMIT_SECONDS): 100000 steps take longer than that on any machine, so the refusal
    # does not depend on how fast this one is today (at the default hour it is 1-3x over, depending on load)
    r = run_cli(*base, "--steps", "100000", cwd=tmp_path, env={"FLOWLAB_WORK_LIMIT_SECONDS": "60"})
    assert r.returncode == 1 and "--steps 100000 would take about" in r.stderr and "--yes" in r.stderr, r.stderr
    assert "more than the 60 s flowlab runs without asking" in r.stderr, r.stderr
    r = run_cli(*base, "--steps", "3", "--chunk-size", "1", "--octree", "384", "--decode", "dense", cwd=tmp_path)
    assert r.returncode == 1 and "decoding --octree 384 with --chunk-size 1 would take about" in r.stderr, r.stderr
    assert not (tmp_path / "m.glb").exists()


@pytest.mark.parametrize("argv", [
    ["sample", "--dist", "eight_gaussians", "--device", "cpu", "--n", "1000000", "--steps", "100000"],
    ["compare", "--dist", "eight_gaussians", "--device", "cpu", "--n", "1000000", "--steps", "100000", "--method", "heun"],
])
def test_long_toy_runs_are_estimated_and_refused(tmp_path, argv) -> None:
    r = run_cli(*argv, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "would take about" in r.stderr and "pass --yes to run it anyway" in r.stderr


def test_weights_retyped_as_int16_are_refused(tiny_folder, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "int16"
    shutil.copytree(tiny_folder, folder)
    weights = next(p for p in folder.iterdir() if p.suffix == ".safetensors")
    tensors = {k: v.to(torch.int16) for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights))
    with pytest.raises(FlowlabError, match="has dtype torch.int16 .* are not floating point"):
        load_pipeline(folder, dtype=torch.float32)


def test_export_with_an_image_width_from_the_log_beyond_memory(smoke_run, tmp_path) -> None:
    run = _copy_run(smoke_run, tmp_path)
    log = json.loads((run / "train_log.json").read_text())
    log["config"]["image"]["width"] = 1_000_000_000
    (run / "train_log.json").write_text(json.dumps(log))
    with pytest.raises(FlowlabError, match="the image encoder in .* needs about"):
        export_folder(run, tmp_path / "exported")


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "inf", "nan"])
def test_a_bad_work_limit_is_refused_by_name(raw, monkeypatch) -> None:
    from flowlab.commands._common import check_work

    monkeypatch.setenv("FLOWLAB_WORK_LIMIT_SECONDS", raw)
    with pytest.raises(FlowlabError, match="FLOWLAB_WORK_LIMIT_SECONDS"):
        check_work(1.0, "x", "y")


def test_the_work_limit_can_be_set_for_a_machine(monkeypatch) -> None:
    from flowlab.commands._common import check_work

    monkeypatch.setenv("FLOWLAB_WORK_LIMIT_SECONDS", "10")
    check_work(9.0, "nine seconds", "hint")
    with pytest.raises(FlowlabError, match="eleven seconds would take about 11 s .* more than the 10 s"):
        check_work(11.0, "eleven seconds", "hint")
