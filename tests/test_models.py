"""Tests of flowlab.models: the training target per convention, training, files, bad input."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from flowlab import CONVENTIONAL, REVERSED, FlowlabError
from flowlab.models import (FORMAT, MLPConfig, VelocityMLP, load_model, save_model, time_embedding, train,
                            training_pair)

SMALL = MLPConfig(dim=2, hidden=32, depth=2, time_dim=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one CPU thread (conftest)


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def point_mass_models() -> dict[str, object]:
    """Models trained on a point mass at c = (2, -1), one per convention (a few hundred steps)."""
    data = torch.tensor([[2.0, -1.0]]).repeat(256, 1)
    return {c.name: train(data, c, config=SMALL, steps=200, batch_size=128, lr=1e-2, seed=0)
            for c in (CONVENTIONAL, REVERSED)}


# ---- the regression target ---------------------------------------------------------------------

def test_training_pair_conventional_is_sigma_noise_and_noise_minus_data() -> None:
    d, e, s = _rand(5, 3, seed=1), _rand(5, 3, seed=2), torch.rand(5, dtype=torch.float64)
    x, target = training_pair(CONVENTIONAL, d, e, s)
    torch.testing.assert_close(x, (1 - s[:, None]) * d + s[:, None] * e)
    torch.testing.assert_close(target, e - d)


def test_training_pair_reversed_is_t_data_and_data_minus_noise() -> None:
    d, e, t = _rand(5, 3, seed=1), _rand(5, 3, seed=2), torch.rand(5, dtype=torch.float64)
    x, target = training_pair(REVERSED, d, e, t)
    torch.testing.assert_close(x, t[:, None] * d + (1 - t[:, None]) * e)
    torch.testing.assert_close(target, d - e)


def test_trained_velocity_at_the_noise_end_has_the_convention_sign(point_mass_models) -> None:
    # For a point mass at c the exact velocity at the noise endpoint x = E is E - c (conventional,
    # sigma = 1) and c - E (reversed, t = 0); at x = 0 that is -c and +c.
    c = torch.tensor([[2.0, -1.0]])
    x0 = torch.zeros(1, 2)
    with torch.no_grad():
        v_conv = point_mass_models["conventional"].model(x0, torch.ones(1))
        v_rev = point_mass_models["reversed"].model(x0, torch.zeros(1))
    assert (v_conv - (-c)).abs().max() < 0.6, v_conv  # a wrong sign would be off by 4
    assert (v_rev - c).abs().max() < 0.6, v_rev


def test_loss_decreases(point_mass_models) -> None:
    for result in point_mass_models.values():
        assert result.losses.shape == (200,)
        assert bool(torch.isfinite(result.losses).all())
        assert result.losses[-50:].mean() < 0.2 * result.losses[:10].mean()


# ---- determinism ---------------------------------------------------------------------------------

def test_training_is_deterministic_given_a_seed_and_leaves_the_global_rng_alone() -> None:
    data = _rand(200, 2, seed=3, dtype=torch.float32)
    state = torch.get_rng_state()
    a = train(data, REVERSED, config=SMALL, steps=20, batch_size=32, seed=7)
    b = train(data, REVERSED, config=SMALL, steps=20, batch_size=32, seed=7)
    c = train(data, REVERSED, config=SMALL, steps=20, batch_size=32, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.losses, b.losses)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.model.net[0].weight, c.model.net[0].weight)


# ---- the model ------------------------------------------------------------------------------------

def test_model_follows_the_input_dtype_and_accepts_a_scalar_time() -> None:
    model = VelocityMLP(SMALL, "reversed")
    x = _rand(4, 2, seed=4)
    v64 = model(x, torch.full((4,), 0.3, dtype=torch.float64))
    assert v64.dtype == torch.float64 and v64.shape == (4, 2)
    v_scalar = model(x, torch.tensor(0.3, dtype=torch.float64))
    torch.testing.assert_close(v64, v_scalar)
    torch.testing.assert_close(v64.float(), model(x.float(), torch.full((4,), 0.3)))


def test_time_embedding_values() -> None:
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    emb = time_embedding(t, 4)  # [cos(pi t), cos(2 pi t), sin(pi t), sin(2 pi t)]
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, -1.0, 1.0, 0.0], [-1.0, 1.0, 0.0, 0.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(emb, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("x_shape,t_shape", [((4,), (4,)), ((4, 3), (4,)), ((4, 2), (3,)), ((4, 2), (4, 1))])
def test_model_rejects_bad_shapes(x_shape, t_shape) -> None:
    model = VelocityMLP(SMALL, CONVENTIONAL)
    with pytest.raises(FlowlabError, match="expects"):
        model(torch.zeros(x_shape), torch.zeros(t_shape))


@pytest.mark.parametrize("kwargs", [dict(dim=0), dict(hidden=-1), dict(depth=1.5), dict(time_dim=7),
                                    dict(time_dim=True)])
def test_config_rejects_bad_sizes(kwargs) -> None:
    with pytest.raises(FlowlabError, match="MLPConfig"):
        MLPConfig(**kwargs)


def test_unknown_convention_lists_the_valid_ones() -> None:
    with pytest.raises(FlowlabError, match="conventional.*reversed"):
        VelocityMLP(SMALL, "forward")


@pytest.mark.parametrize("data,kwargs,match", [
    (torch.zeros(10), {}, r"shape \(N, D\)"),
    (torch.zeros(0, 2), {}, r"N >= 1"),
    (torch.zeros(10, 2, dtype=torch.int64), {}, "floating"),
    (torch.tensor([[0.0, float("nan")]]), {}, "NaN"),
    (torch.zeros(10, 3), dict(config=SMALL), "config.dim = 2"),
    (torch.zeros(10, 2), dict(steps=0), "steps"),
    (torch.zeros(10, 2), dict(batch_size=-4), "batch_size"),
    (torch.zeros(10, 2), dict(lr=float("inf")), "lr"),
])
def test_train_rejects_bad_input(data, kwargs, match) -> None:
    with pytest.raises(FlowlabError, match=match):
        train(data, CONVENTIONAL, **kwargs)


# ---- files ----------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path) -> None:
    model = train(_rand(100, 2, seed=5, dtype=torch.float32), REVERSED, config=SMALL, steps=5, batch_size=16).model
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    loaded = load_model(path, convention="reversed", config=SMALL)
    assert loaded.convention is REVERSED and loaded.config == SMALL and not loaded.training
    assert not any(p.requires_grad for p in (*model.parameters(), *loaded.parameters()))  # frozen: no graph
    x, t = _rand(8, 2, seed=6, dtype=torch.float32), torch.rand(8)
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))
    assert load_model(path).convention is REVERSED  # no expectation given: whatever the file says


def test_save_load_keeps_float64(tmp_path) -> None:
    model = VelocityMLP(SMALL, CONVENTIONAL).to(torch.float64)
    save_model(model, tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors").net[0].weight.dtype == torch.float64


def test_load_refuses_another_convention(tmp_path) -> None:
    save_model(VelocityMLP(SMALL, REVERSED), tmp_path / "m.safetensors")
    with pytest.raises(FlowlabError, match="trained in the 'reversed' convention.*flip"):
        load_model(tmp_path / "m.safetensors", convention=CONVENTIONAL)


def test_load_refuses_another_architecture(tmp_path) -> None:
    save_model(VelocityMLP(SMALL, REVERSED), tmp_path / "m.safetensors")
    with pytest.raises(FlowlabError, match="architecture"):
        load_model(tmp_path / "m.safetensors", config=MLPConfig(dim=2, hidden=33, depth=2, time_dim=8))


def test_load_missing_file(tmp_path) -> None:
    with pytest.raises(FlowlabError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("cut", [None, 100])
def test_load_corrupt_file(tmp_path, cut) -> None:
    path = tmp_path / "m.safetensors"
    if cut is None:
        path.write_bytes(b"this is not a safetensors file at all")
    else:  # a truncated real file
        save_model(VelocityMLP(SMALL, REVERSED), path)
        path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(FlowlabError, match="not a readable safetensors file"):
        load_model(path)


def test_load_file_without_flowlab_metadata(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    save_file(VelocityMLP(SMALL, REVERSED).state_dict(), str(path))
    with pytest.raises(FlowlabError, match="not written by flowlab"):
        load_model(path)


@pytest.mark.parametrize("meta,match", [
    ({"format": FORMAT, "convention": "reversed", "config": "{not json"}, "unreadable metadata"),
    ({"format": FORMAT, "convention": "sideways", "config": json.dumps(SMALL.as_dict())}, "unreadable metadata"),
    ({"format": FORMAT, "convention": "reversed",
      "config": json.dumps({**SMALL.as_dict(), "hidden": 16})}, "do not match the architecture"),
])
def test_load_file_with_inconsistent_metadata(tmp_path, meta, match) -> None:
    path = tmp_path / "m.safetensors"
    save_file(VelocityMLP(SMALL, REVERSED).state_dict(), str(path), metadata=meta)
    with pytest.raises(FlowlabError, match=match):
        load_model(path)


def test_save_refuses_unregistered_convention(tmp_path) -> None:
    from flowlab.conventions import Convention
    custom = Convention.affine("my_path", "1 - t", "t", t_noise=1, t_data=0)
    with pytest.raises(FlowlabError, match="not a registered convention"):
        save_model(VelocityMLP(SMALL, custom), tmp_path / "m.safetensors")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_on_cuda_follows_the_data_device() -> None:
    data = torch.randn(100, 2, device="cuda")
    result = train(data, REVERSED, config=SMALL, steps=5, batch_size=16)
    assert result.model.net[0].weight.device.type == "cuda"
    assert result.model(data[:4], torch.rand(4, device="cuda")).device.type == "cuda"
