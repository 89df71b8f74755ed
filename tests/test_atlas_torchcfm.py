"""torchcfm's conditional flow matchers next to flowlab (card torchcfm).

Reversed convention: t runs 0 -> 1, x0 = source noise, x1 = data, target u_t = x1 - x0.
"""
from __future__ import annotations

import pytest
import sympy as sp
import torch

pytest.importorskip("torchcfm", reason="card test dependency: pip install --no-deps torchcfm==1.0.7; pip install POT==0.9.7.post1")

from torchcfm.conditional_flow_matching import (  # noqa: E402
    ConditionalFlowMatcher,
    VariancePreservingConditionalFlowMatcher,
)

from flowlab import REVERSED, Convention  # noqa: E402
from flowlab.conventions import T  # noqa: E402

DT = torch.float64


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(32, 3, generator=g, dtype=DT), torch.randn(32, 3, generator=g, dtype=DT),
            torch.rand(32, generator=g, dtype=DT))


def test_cfm_sigma0_is_the_reversed_straight_path():
    x0, x1, t = _inputs(0)
    t_out, xt, ut = ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x0, x1, t=t)
    assert torch.equal(t_out, t)
    assert (xt - REVERSED.interpolate(x1, x0, t)).abs().max() < 1e-12
    assert (ut - REVERSED.velocity_target(x1, x0, t)).abs().max() < 1e-12
    # and NOT the conventional reading of the same numbers (x0 is the noise, not the data)
    assert (xt - REVERSED.interpolate(x0, x1, t)).abs().max() > 0.1


def test_cfm_sigma_adds_a_constant_width_of_noise():
    x0, x1, t = _inputs(1)
    t_out, xt, ut, eps = ConditionalFlowMatcher(sigma=0.1).sample_location_and_conditional_flow(
        x0, x1, t=t, return_noise=True)
    assert (xt - 0.1 * eps - REVERSED.interpolate(x1, x0, t_out)).abs().max() < 1e-12
    assert (ut - REVERSED.velocity_target(x1, x0, t_out)).abs().max() < 1e-12


def test_variance_preserving_cfm_is_a_trigonometric_affine_path():
    conv = Convention.affine("vp_rev", sp.sin(sp.pi * T / 2), sp.cos(sp.pi * T / 2), t_noise=0, t_data=1)
    x0, x1, t = _inputs(2)
    t_out, xt, ut = VariancePreservingConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x0, x1, t=t)
    assert (xt - conv.interpolate(x1, x0, t_out)).abs().max() < 1e-12
    assert (ut - conv.velocity_target(x1, x0, t_out)).abs().max() < 1e-12
