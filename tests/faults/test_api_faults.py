"""API misuse: every entry point answers with a FlowlabError that says what to do, never a raw
TypeError / AttributeError / AssertionError / SafetensorError, and never a misleading cause."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED, FlowlabError
from flowlab.conventions import Convention
from flowlab.models import FORMAT, MLPConfig, VelocityMLP, load_model, save_model
from flowlab.sampling import sample
from flowlab.schedules import shifted, uniform

pytestmark = pytest.mark.usefixtures("one_thread")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")


def raises(match: str):
    return pytest.raises(FlowlabError, match=match)


@pytest.fixture(scope="module")
def mlp() -> VelocityMLP:
    torch.manual_seed(0)
    return VelocityMLP(MLPConfig(dim=2, hidden=8, depth=1), REVERSED).eval()


def _write_mlp_file(path: Path, tensors: dict, config: MLPConfig = MLPConfig(dim=2, hidden=8, depth=1)) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": FORMAT, "convention": "reversed",
                                            "config": json.dumps(config.as_dict(), sort_keys=True)})
    return path


# ---- item 8: raw exceptions from misuse -----------------------------------------------------------------

def test_sample_with_a_non_callable_model() -> None:
    with raises("model must be a callable model\\(x, t\\) -> v"):
        sample(5, torch.zeros(3, 2), uniform(4, REVERSED), REVERSED)


@pytest.mark.parametrize("bad", [[1, 2], None, {"t": 1}, b"t", True])
def test_affine_with_a_coefficient_that_is_no_expression(bad) -> None:
    with raises("expected a SymPy expression in flowlab.conventions.T, a number or a string"):
        Convention.affine("c", bad, "1 - t", t_noise=0, t_data=1)


@pytest.mark.parametrize("bad", [None, [0], float("nan"), float("inf"), "t"])
def test_affine_with_a_bad_endpoint(bad) -> None:
    with raises("t_noise"):
        Convention.affine("c", "t", "1 - t", t_noise=bad, t_data=1)


@NO_CUDA
def test_load_model_on_cuda_without_cuda(mlp, tmp_path: Path) -> None:
    save_model(mlp, tmp_path / "m.safetensors")
    with raises("this torch sees no CUDA GPU; use device='cpu' \\(--device cpu on the command line\\)"):
        load_model(tmp_path / "m.safetensors", device="cuda")


def test_load_model_of_integer_weights(mlp, tmp_path: Path) -> None:
    ints = {k: v.to(torch.int64) for k, v in mlp.state_dict().items()}
    with raises("holds torch.int64 tensors; a VelocityMLP has floating weights"):
        load_model(_write_mlp_file(tmp_path / "int.safetensors", ints))


def test_save_model_into_a_missing_folder(mlp, tmp_path: Path) -> None:
    with raises("folder .* does not exist; create it first"):
        save_model(mlp, tmp_path / "no" / "such" / "m.safetensors")
    assert not (tmp_path / "no").exists()


@NO_CUDA
def test_load_pipeline_on_cuda_without_cuda(files) -> None:
    from flowlab.shape.load.folder import load_pipeline

    with raises("no CUDA GPU"):
        load_pipeline(files["model"], device="cuda")


@pytest.fixture(scope="module")
def pipe(files):
    from flowlab.shape.load.folder import load_pipeline

    return load_pipeline(files["model"], device="cpu", dtype=torch.float32)


def test_sample_latents_with_latents_of_the_wrong_shape(pipe) -> None:
    from flowlab.shape.verify.tiny import tiny_cond

    with raises("latents has shape \\(1, 3, 3\\); expected \\(1, "):
        pipe.sample_latents(tiny_cond(0), steps=2, latents=torch.zeros(1, 3, 3))


def test_decode_volume_of_the_wrong_shape(pipe) -> None:
    with raises("latents has shape \\(4,\\); expected \\(B, "):
        pipe.decode_volume(torch.zeros(4), octree=8)


def test_uniform_with_a_huge_step_count() -> None:
    with raises("n_steps = 1000000000000 is more than the 10,000,000 steps"):
        uniform(10**12, CONVENTIONAL)
    with raises("more than the 10,000,000 steps"):
        shifted(10**12, REVERSED, 3.0)


# ---- item 9: nonsense accepted silently -------------------------------------------------------------------

@pytest.mark.parametrize("g", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_guidance(pipe, g) -> None:
    from flowlab.shape.pipeline import DiTVelocity
    from flowlab.shape.verify.tiny import tiny_cond

    with raises("guidance .* is not a finite number"):
        pipe.sample_latents(tiny_cond(0), steps=2, guidance=g)
    with raises("is not a finite number"):
        DiTVelocity(pipe.dit, tiny_cond(0), guidance=g)


def test_mesh_of_a_batch_is_refused(pipe) -> None:
    with raises("mesh\\(\\) takes one volume; got a batch of 2"):
        pipe.mesh(torch.zeros(2, 5, 5, 5))


def test_export_refuses_a_face_past_the_last_vertex(tmp_path: Path) -> None:
    from flowlab.shape.decode.mesh import Mesh, export_mesh

    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float64)
    bad = Mesh(vertices=verts, faces=np.array([[0, 1, 3]]))
    with raises("1 mesh faces index vertices outside \\[0, 2\\]"):
        export_mesh(bad, tmp_path / "m.glb")
    assert not (tmp_path / "m.glb").exists()
    with raises("NaN or inf"):
        export_mesh(Mesh(vertices=verts * np.nan, faces=np.array([[0, 1, 2]])), tmp_path / "m.obj")


def test_load_model_refuses_nan_weights(mlp, tmp_path: Path) -> None:
    nan = {k: torch.full_like(v, float("nan")) for k, v in mlp.state_dict().items()}
    with raises("contain NaN or inf, so every velocity would be NaN"):
        load_model(_write_mlp_file(tmp_path / "nan.safetensors", nan))


# ---- item 11: messages that point at the wrong cause ---------------------------------------------------------

def test_nan_weights_are_named_not_the_time_convention(mlp) -> None:
    broken = VelocityMLP(mlp.config, REVERSED).eval()
    with torch.no_grad():
        broken.net[0].weight.fill_(float("nan"))
    with pytest.raises(FlowlabError) as e:
        sample(broken, torch.randn(4, 2), uniform(3, REVERSED), REVERSED)
    assert "VelocityMLP.net.0.weight contains NaN or inf" in str(e.value)
    assert "time convention" not in str(e.value)


def test_nan_embedding_and_nan_shape_weights_are_named(pipe, files) -> None:
    from flowlab.shape.load.folder import load_pipeline
    from flowlab.shape.verify.tiny import tiny_cond

    with pytest.raises(FlowlabError) as e:
        pipe.sample_latents(torch.full_like(tiny_cond(0), float("nan")), steps=2)
    assert "image tokens are NaN or inf" in str(e.value) and "time convention" not in str(e.value)
    nan_pipe = load_pipeline(files["model_nan"], device="cpu", dtype=torch.float32)
    with pytest.raises(FlowlabError) as e:
        nan_pipe.sample_latents(tiny_cond(0), steps=2)
    assert "the DiT weight" in str(e.value) and "time convention" not in str(e.value)


def test_a_directory_is_called_a_directory(files, mlp) -> None:
    from flowlab.shape.models.conditioner import load_image
    from flowlab.shape.load.embedding import load_embedding

    for call in (lambda: load_model(files["folder"]), lambda: load_embedding(files["folder"]),
                 lambda: load_image(files["folder"], 64, 0.15)):
        with pytest.raises(FlowlabError) as e:
            call()
        assert "is a directory" in str(e.value) and "not found" not in str(e.value)


def test_float16_schedule_with_too_many_steps_names_the_dtype() -> None:
    with pytest.raises(FlowlabError) as e:
        uniform(5000, REVERSED, dtype=torch.float16)
    assert "too many for torch.float16" in str(e.value) and "allow_noop" not in str(e.value)


def test_bogus_variant_lists_what_was_tried(files) -> None:
    from flowlab.shape.load.checkpoint import find_model_folder

    with pytest.raises(FlowlabError) as e:
        find_model_folder(files["model"], variant="bogus")
    msg = str(e.value)
    assert "looked for model.bogus.safetensors, model.bogus.ckpt, model.safetensors, model.ckpt" in msg
    assert "The folder has model.fp16.safetensors" in msg


# ---- item 6 (first half): an embedding without tokens -----------------------------------------------------

def test_embedding_without_tokens(pipe, files) -> None:
    from flowlab.shape.load.embedding import load_embedding

    with raises("image tokens have shape \\(1, 0, 16\\)"):
        pipe.check_embedding(torch.zeros(1, 0, 16))
    with raises("at least one token"):
        load_embedding(files["cond_empty"])


# ---- item 5: config values, at the API ------------------------------------------------------------------

def test_config_values_are_checked_before_building(files) -> None:
    from flowlab.shape.load.folder import load_pipeline

    with raises("config.yaml: model.params.hidden_size = 'thirty-two' must be a whole number"):
        load_pipeline(files["model_typed"], device="cpu")
    with raises("config.yaml: model.params.depth = -1 must be >= 0"):
        load_pipeline(files["model_depth"], device="cpu")
