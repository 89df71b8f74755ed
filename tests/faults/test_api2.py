"""Second sweep (issue 22), the tensor API: silent nonsense and raw tracebacks, each refused with the reason.

Every case uses inputs where a wrong answer would differ from the right one (times away from 0, 1/2, 1,
asymmetric data), and checks the right inputs still give the documented values."""
from __future__ import annotations

import pytest
import torch

from flowlab import functional as F
from flowlab.conventions import CONVENTIONAL, REVERSED
from flowlab.errors import FlowlabError
from flowlab.gmm import eight_gaussians_gmm, fit_gmm
from flowlab.metrics import energy_distance, sliced_wasserstein
from flowlab.models import MLPConfig, VelocityMLP, train
from flowlab.sampling import guided, sample, trajectory
from flowlab.schedules import uniform, validate
from flowlab.toys import sample_toy

X = torch.tensor([[0.3, -1.2], [2.0, 0.7], [-0.4, 0.1]], dtype=torch.float64)
V = torch.tensor([[1.1, 0.2], [-0.5, 0.9], [0.3, -2.0]], dtype=torch.float64)


@pytest.mark.parametrize("t", [1.5, -0.25, float("nan"), torch.tensor([0.3, 1.2, 0.1])])
@pytest.mark.parametrize("conv", [REVERSED, CONVENTIONAL])
def test_pred_data_refuses_times_outside_the_interval(conv, t) -> None:
    with pytest.raises(FlowlabError, match="outside the .* time interval|NaN"):
        conv.pred_data(X, V, t)


def test_pred_data_still_extrapolates_nothing_inside() -> None:
    t = 0.3
    assert torch.allclose(REVERSED.pred_data(X, V, t), X + (1 - t) * V)
    assert torch.allclose(CONVENTIONAL.pred_data(X, V, t), X - t * V)


@pytest.mark.parametrize("x, kind", [(X.to(torch.complex128), "complex"), (X > 0, "boolean"),
                                     (X.to(torch.int64), "dtype torch.int64"), (X.to("meta"), "'meta' device")])
def test_pred_data_refuses_non_real_tensors(x, kind: str) -> None:
    with pytest.raises(FlowlabError, match=kind):
        REVERSED.pred_data(x, V, 0.3)


@pytest.mark.parametrize("conv, method, t, endpoint", [
    (REVERSED, "score", 1.0, "t_data"), (CONVENTIONAL, "score", 0.0, "t_data"),
    (REVERSED, "velocity_from_data", 1.0, "t_data"), (CONVENTIONAL, "velocity_from_data", 0.0, "t_data"),
    (REVERSED, "velocity_from_noise", 0.0, "t_noise"), (CONVENTIONAL, "velocity_from_noise", 1.0, "t_noise"),
])
def test_singular_endpoints_raise_with_the_reason(conv, method: str, t: float, endpoint: str) -> None:
    with pytest.raises(FlowlabError, match=f"{conv.name}.{method} is undefined at t = {t:g} \\({endpoint}\\)"):
        getattr(conv, method)(X, V, t)
    with pytest.raises(FlowlabError, match="undefined"):  # one entry of a batch at the endpoint is enough
        getattr(conv, method)(X, V, torch.tensor([0.3, t, 0.7], dtype=torch.float64))
    near = 0.999 if t == 1.0 else 0.001
    assert torch.isfinite(getattr(conv, method)(X, V, near)).all()


def test_velocity_mlp_refuses_integer_x() -> None:
    model = VelocityMLP(MLPConfig(dim=2), "reversed")
    with pytest.raises(FlowlabError, match="dtype torch.int64; pass a floating tensor"):
        model(torch.tensor([[3, -1], [0, 2]]), torch.tensor([0.3, 0.7]))
    with pytest.raises(FlowlabError, match="'meta' device"):
        model(torch.zeros(2, 2, device="meta"), torch.tensor([0.3, 0.7]))


def test_train_on_huge_data_raises_instead_of_returning_inf_losses() -> None:
    data = torch.tensor([[1e30, -2e29], [3e29, 1e30]]).repeat(32, 1)
    with pytest.raises(FlowlabError, match=r"the loss became (inf|nan) at step \d+ of 5 .* Standardise the data"):
        train(data, "reversed", steps=5, batch_size=16)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": True}, "lr must be a positive finite number"),
    ({"batch_size": 10 ** 11}, "batch_size = 100000000000 needs about"),
])
def test_train_arguments(kwargs, message: str) -> None:
    with pytest.raises(FlowlabError, match=message):
        train(torch.randn(64, 2), "reversed", steps=2, **kwargs)


def test_train_refuses_meta_data() -> None:
    with pytest.raises(FlowlabError, match="'meta' device"):
        train(torch.randn(64, 2, device="meta"), "reversed", steps=2)


@pytest.mark.parametrize("t", [1.5, -0.1, float("nan")])
def test_gmm_velocity_refuses_times_outside_the_interval(t: float) -> None:
    with pytest.raises(FlowlabError, match="outside the reversed convention's time interval|NaN"):
        eight_gaussians_gmm().velocity(X.float(), t, "reversed")


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), torch.tensor(float("nan")), torch.tensor([1.0, float("nan"), 2.0])])
def test_cfg_refuses_a_non_finite_scale(scale) -> None:
    with pytest.raises(FlowlabError, match="finite"):
        F.cfg(X, V, scale)


def test_guided_accepts_a_tensor_scale_and_refuses_nan() -> None:
    g = guided(lambda x, t: 2 * x, lambda x, t: x, torch.tensor(3.0))
    assert torch.allclose(g(X, torch.full((3,), 0.3)), X + 3.0 * X)
    with pytest.raises(FlowlabError, match="guidance scale contains NaN"):
        guided(lambda x, t: x, lambda x, t: x, torch.tensor(float("nan")))


@pytest.mark.parametrize("metric", [sliced_wasserstein, energy_distance])
def test_metrics_refuse_nan_samples(metric) -> None:
    x = torch.randn(50, 2)
    x[7, 1] = float("nan")
    with pytest.raises(FlowlabError, match="1 of its 50 samples contain NaN or inf"):
        metric(x, torch.randn(50, 2))


def test_fit_gmm_blames_the_samples_not_the_means() -> None:
    x = torch.randn(60, 2, dtype=torch.float64)
    x[3, 0] = float("nan")
    with pytest.raises(FlowlabError, match="fit_gmm: 1 of the 60 samples contain NaN or inf"):
        fit_gmm(x, 2)


def test_sample_and_validate_refuse_meta_tensors() -> None:
    model = eight_gaussians_gmm().velocity_model("reversed")
    with pytest.raises(FlowlabError, match="sample: x is on the 'meta' device"):
        sample(model, torch.randn(4, 2, device="meta"), uniform(4, "reversed"), "reversed")
    with pytest.raises(FlowlabError, match="validate: schedule is on the 'meta' device"):
        validate(uniform(4, "reversed").to("meta"), "reversed")


def test_complex_model_output_is_refused() -> None:
    with pytest.raises(FlowlabError, match="has dtype torch.complex64; a velocity model must return a real"):
        sample(lambda x, t: (x * 1j).to(torch.complex64), torch.randn(4, 2), uniform(4, "reversed"), "reversed")


def test_trajectory_with_no_samples() -> None:
    with pytest.raises(FlowlabError, match="x holds 0 samples"):
        trajectory(eight_gaussians_gmm().velocity_model("reversed"), torch.randn(0, 2), uniform(4, "reversed"),
                   "reversed")


def test_sample_toy_with_more_samples_than_memory() -> None:
    with pytest.raises(FlowlabError, match="sample_toy: n = 1000000000000 samples of eight_gaussians needs about"):
        sample_toy("eight_gaussians", 10 ** 12)
