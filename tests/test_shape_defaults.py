"""One source per default: the octree resolution comes from the model folder (library and CLI alike), one
``decode`` parameter, the CLI maps library terms to its flags, NaN is recognised by type."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from flowlab.cli import in_flags, main
from flowlab.errors import FlowlabError, NonFiniteError
from flowlab.shape import load_pipeline
from flowlab.shape.decode.volume import RELEASE_OCTREE
from flowlab.shape.load.mini import resolve_model
from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline, write_checkpoint_folder


@pytest.fixture(scope="module")
def tiny():
    return tiny_pipeline(seed=0)


def _folder(tiny, tmp_path: Path, hints: dict | None) -> Path:
    folder = tmp_path / "m"
    write_checkpoint_folder(tiny, folder, variant=None)
    if hints is not None:
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        cfg["flowlab"] = hints
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def test_the_mini_model_decodes_at_its_folders_resolution_for_library_users() -> None:
    pipe = load_pipeline(resolve_model("mini"), dtype=torch.float32)
    assert pipe.octree == 128 != RELEASE_OCTREE


def test_a_folder_without_a_hint_decodes_at_the_release_resolution(tiny, tmp_path: Path) -> None:
    assert load_pipeline(_folder(tiny, tmp_path, None), dtype=torch.float32).octree == RELEASE_OCTREE == 384


def test_decode_volume_takes_the_pipelines_octree_by_default(tiny, tmp_path: Path) -> None:
    pipe = load_pipeline(_folder(tiny, tmp_path, {"octree_resolution": 12}), dtype=torch.float32)
    z = pipe.sample_latents(tiny_cond(0), steps=2, seed=0)
    assert pipe.octree == 12
    assert tuple(pipe.decode_volume(z).shape) == (1, 13, 13, 13)
    assert tuple(pipe.decode_volume(z, octree=10).shape) == (1, 11, 11, 11)  # an explicit value wins
    # one decode parameter: hierarchical by default, the same mesh sign as dense
    hier, dense = pipe.decode_volume(z), pipe.decode_volume(z, decode="dense")
    assert torch.equal(hier > 0, dense > 0)
    with pytest.raises(TypeError):
        pipe.decode_volume(z, hierarchical=True)  # the legacy bool is gone


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "128"])
def test_a_bad_octree_hint_is_refused_naming_the_file(tiny, tmp_path: Path, bad) -> None:
    with pytest.raises(FlowlabError, match=r"config.yaml: flowlab.octree_resolution = .*>= 1"):
        load_pipeline(_folder(tiny, tmp_path, {"octree_resolution": bad}), dtype=torch.float32)


def test_the_cli_uses_the_folder_default_too(tiny, tmp_path: Path, capsys) -> None:
    folder = _folder(tiny, tmp_path, {"octree_resolution": 100_000})  # too large for memory: refused, not decoded
    emb = tmp_path / "cond.pt"
    torch.save(tiny_cond(0), emb)
    rc = main(["shape", "--model", str(folder), "--embedding", str(emb), "--steps", "2", "--quiet",
               "--device", "cpu", "--out", str(tmp_path / "m.glb")])
    err = capsys.readouterr().err
    assert rc == 1 and "octree 100000 (100001^3" in err and "use a smaller octree" in err


def test_library_errors_speak_library_terms_and_the_cli_maps_them_to_flags(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("HY3DGEN_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FlowlabError) as e:
        load_pipeline("tencent/Hunyuan3D-2")
    assert "download=True" in str(e.value) and "--download" not in str(e.value)
    emb = tmp_path / "cond.pt"
    torch.save(tiny_cond(0), emb)
    assert main(["shape", "--model", "tencent/Hunyuan3D-2", "--embedding", str(emb), "--quiet",
                 "--out", str(tmp_path / "m.glb")]) == 1
    err = capsys.readouterr().err
    assert "--download" in err and "download=True" not in err and "--model /path/to/" in err


def test_in_flags_replaces_longest_spellings_first() -> None:
    flags = {"dtype=torch.float32": "--dtype fp32", "dtype=": "--dtype "}
    assert in_flags("try dtype=torch.float32 or dtype=bf16", flags) == "try --dtype fp32 or --dtype bf16"
    assert in_flags("nothing to map", flags) == "nothing to map"


def test_nan_is_recognised_by_type_not_by_message(tiny, monkeypatch) -> None:
    """A FlowlabError that merely mentions NaN is passed through; a NonFiniteError makes the pipeline check its inputs."""
    import flowlab.shape.pipeline as pl

    blamed = []
    monkeypatch.setattr(type(tiny), "_blame_inputs", lambda self, cond, latents, guidance=None: blamed.append(True))

    def raise_plain(*a, **k):
        raise FlowlabError("a message that says NaN or inf but is about something else")
    monkeypatch.setattr(pl, "sample", raise_plain)
    with pytest.raises(FlowlabError, match="something else"):
        tiny.sample_latents(tiny_cond(0), steps=2)
    assert blamed == []

    def raise_nonfinite(*a, **k):
        raise NonFiniteError("the model returned non-finite values at step 0")
    monkeypatch.setattr(pl, "sample", raise_nonfinite)
    with pytest.raises(NonFiniteError):
        tiny.sample_latents(tiny_cond(0), steps=2)
    assert blamed == [True]
