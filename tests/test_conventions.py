"""Convention objects: invariants at construction, registry errors, tensor maps on real paths."""
from __future__ import annotations

import pytest
import sympy as sp
import torch

from flowlab import CONVENTIONAL, REVERSED, VP_COSINE, Convention, FlowlabError, get_convention
from flowlab import functional as F
from flowlab.conventions import T

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def _batch(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(64, 3, generator=g, dtype=dtype)
    noise = torch.randn(64, 3, generator=g, dtype=dtype)
    t = torch.rand(64, generator=g, dtype=dtype) * 0.98 + 0.01
    return data, noise, t


def test_builtin_endpoints_and_direction() -> None:
    assert (CONVENTIONAL.t_noise, CONVENTIONAL.t_data, CONVENTIONAL.direction) == (1, 0, -1)
    assert (REVERSED.t_noise, REVERSED.t_data, REVERSED.direction) == (0, 1, 1)
    assert CONVENTIONAL.data_endpoint_name == "pred_x0"
    assert REVERSED.data_endpoint_name == "pred_x1"
    assert CONVENTIONAL.is_straight and REVERSED.is_straight and not VP_COSINE.is_straight


def test_velocity_target_signs() -> None:
    data, noise = torch.ones(2, 2), torch.zeros(2, 2)
    t = torch.tensor([0.3, 0.7])
    # conventional v = E - D, reversed v = D - E (conventions.md, trap 7)
    assert torch.equal(CONVENTIONAL.velocity_target(data, noise, t), noise - data)
    assert torch.equal(REVERSED.velocity_target(data, noise, t), data - noise)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE], ids=lambda c: c.name)
def test_predictions_recover_data_and_noise(conv: Convention, dtype: torch.dtype) -> None:
    data, noise, t = _batch(dtype)
    x = conv.interpolate(data, noise, t)
    v = conv.velocity_target(data, noise, t)
    assert (conv.pred_data(x, v, t) - data).abs().max() < TOL[dtype]
    assert (conv.pred_noise(x, v, t) - noise).abs().max() < TOL[dtype]
    assert (conv.velocity_from_data(x, data, t) - v).abs().max() < 50 * TOL[dtype]
    assert (conv.velocity_from_noise(x, noise, t) - v).abs().max() < 50 * TOL[dtype]
    b = conv.coefficients(t)[1][:, None]
    assert (conv.score(x, v, t) - (-noise / b)).abs().max() < 200 * TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_straight_predictions_match_the_hand_written_formulas(dtype: torch.dtype) -> None:
    data, noise, t = _batch(dtype, seed=1)
    v = torch.randn_like(data)
    x = torch.randn_like(data)
    tt = t[:, None]
    assert torch.allclose(CONVENTIONAL.pred_x0(x, v, t), x - tt * v)
    assert torch.allclose(CONVENTIONAL.pred_x1(x, v, t), x + (1 - tt) * v)
    assert torch.allclose(REVERSED.pred_x1(x, v, t), x + (1 - tt) * v)
    assert torch.allclose(REVERSED.pred_x0(x, v, t), x - tt * v)
    # the map: t = 1 - sigma, v_rev = -v_conv gives the same data prediction
    sigma = 1 - t
    assert torch.allclose(REVERSED.pred_data(x, F.flip_velocity(v), t), CONVENTIONAL.pred_data(x, v, sigma),
                          atol=TOL[dtype])


def test_get_convention_lists_valid_names() -> None:
    assert get_convention("reversed") is REVERSED
    assert get_convention(CONVENTIONAL) is CONVENTIONAL
    with pytest.raises(FlowlabError, match="conventional, reversed, vp_cosine"):
        get_convention("hunyuan")


def test_custom_affine_path() -> None:
    quad = Convention.affine("quadratic", T**2, 1 - T**2, t_noise=0, t_data=1)
    data, noise, t = _batch(torch.float64, seed=2)
    x, v = quad.interpolate(data, noise, t), quad.velocity_target(data, noise, t)
    assert not quad.is_straight
    assert (quad.pred_data(x, v, t) - data).abs().max() < 1e-10
    from_string = Convention.affine("quadratic-str", "t**2", "1 - t**2", t_noise=0, t_data=1)
    assert sp.simplify(from_string.alpha - quad.alpha) == 0


@pytest.mark.parametrize(
    "alpha, beta, t_noise, t_data, message",
    [
        (T, 1 - T, 0.5, 0.5, "endpoints must differ"),
        (T / 2, 1 - T, 0, 1, r"alpha\(t_data\) = 1/2"),
        (T, 1 - T / 2, 0, 1, r"beta\(t_data\) = 1/2"),
        (4 * T**3 - 6 * T**2 + 3 * T, 1 - (4 * T**3 - 6 * T**2 + 3 * T), 0, 1, "does not determine"),
    ],
    ids=["coincident-endpoints", "not-data-at-t_data", "noise-left-at-t_data", "singular-at-t=1/2"],
)
def test_bad_custom_paths_are_refused(alpha, beta, t_noise, t_data, message) -> None:
    with pytest.raises(FlowlabError, match=message):
        Convention.affine("bad", alpha, beta, t_noise=t_noise, t_data=t_data)


def test_coefficients_depending_on_other_symbols_are_refused() -> None:
    with pytest.raises(FlowlabError, match="depend on t only"):
        Convention.affine("bad", sp.Symbol("s") * T, 1 - T, t_noise=0, t_data=1)


def test_cfg_scale_conventions() -> None:
    g = torch.Generator().manual_seed(3)
    c, u = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    assert torch.allclose(F.cfg(c, u, 1.0), c, atol=1e-6)  # g = 1: no guidance
    assert not torch.allclose(F.cfg(c, u, 2.0), c, atol=1e-3)
    w = 2.5  # flow_matching's (1 + w) cond - w uncond is g = 1 + w
    assert torch.allclose(F.cfg(c, u, 1 + w), (1 + w) * c - w * u, atol=1e-6)


def test_cfg_per_sample_scale_broadcasts_over_samples() -> None:
    g = torch.Generator().manual_seed(4)
    c, u = torch.randn(3, 3, generator=g), torch.randn(3, 3, generator=g)  # B == N: a wrong axis would pass silently
    scale = torch.tensor([1.0, 2.0, 3.0])
    out = F.cfg(c, u, scale)
    for i in range(3):
        assert torch.allclose(out[i], u[i] + scale[i] * (c[i] - u[i]), atol=1e-6)


def test_python_float_time_keeps_float64_precision() -> None:
    g = torch.Generator().manual_seed(5)
    x, v = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    exact = x - 0.2 * v  # 0.2 as a float64, as Python holds it
    assert (CONVENTIONAL.pred_data(x, v, 0.2) - exact).abs().max() < 1e-15
