"""Constraint guidance on the data prediction (Hunyuan3D-2 #124) and CFG on v vs on pred_data."""
from __future__ import annotations

import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED, VP_COSINE, FlowlabError
from flowlab import functional as F
from flowlab.gmm import eight_gaussians_gmm
from flowlab.guidance import HalfPlane, cfg_data_gap, constraint_guided, guidance_demo
from flowlab.sampling import sample
from flowlab.schedules import hunyuan_compat

REGION = HalfPlane((1.0, 0.0), 1.0)
SMALL = dict(n=800, steps=30)


@pytest.fixture(scope="module")
def runs():
    return {ep: guidance_demo("reversed", ep, **SMALL) for ep in (None, "data", "noise")}


def test_right_endpoint_meets_the_constraint_and_approaches_the_target(runs):
    plain, right = runs[None], runs["data"]
    assert 0.25 < plain.fraction_inside < 0.5  # 3 of 8 modes lie in the region
    assert right.fraction_inside >= 0.99
    assert right.distance < 0.5 * plain.distance


def test_wrong_endpoint_fails(runs):
    plain, wrong = runs[None], runs["noise"]
    assert wrong.fraction_inside < plain.fraction_inside
    assert wrong.distance > plain.distance


@pytest.mark.parametrize("endpoint", ["data", "noise"])
def test_both_conventions_give_the_same_samples(endpoint):
    rev = guidance_demo("reversed", endpoint, n=200, steps=20)
    conv = guidance_demo("conventional", endpoint, n=200, steps=20)
    assert rev.fraction_inside == conv.fraction_inside
    if endpoint == "data":
        assert (rev.samples - conv.samples).abs().max() < 1e-3


@pytest.mark.parametrize("conv", [REVERSED, CONVENTIONAL], ids=["reversed", "conventional"])
@pytest.mark.parametrize("endpoint", ["data", "noise"])
def test_guided_velocity_jumps_to_the_corrected_prediction(conv, endpoint):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.9 + 0.05
    base = eight_gaussians_gmm().velocity_model(conv)
    guided = constraint_guided(base, conv, REGION.penalty, 0.5, endpoint=endpoint)
    s = float(conv.t_data if endpoint == "data" else conv.t_noise)
    pred = F.jump(x, base(x, t), t, s)
    want = pred.clone()
    want[:, 0] = torch.maximum(pred[:, 0], torch.ones_like(pred[:, 0]))  # scale 0.5: projection onto x0 >= 1
    got = F.jump(x, guided(x, t), t, s)
    assert (got - want).abs().max() < 1e-10
    # the right endpoint is the convention's data prediction, the wrong one its noise prediction
    ref = conv.pred_data(x, base(x, t), t) if endpoint == "data" else conv.pred_noise(x, base(x, t), t)
    assert (pred - ref).abs().max() < 1e-12


def test_scale_zero_is_the_model():
    base = eight_gaussians_gmm().velocity_model(REVERSED)
    x, t = torch.randn(16, 2), torch.rand(16)
    assert torch.equal(constraint_guided(base, REVERSED, REGION.penalty, 0.0)(x, t), base(x, t))


def test_a_call_at_the_endpoint_is_left_alone():
    """Hunyuan3D-2's no-op last step calls the model at t = 1 = t_data: no correction, no NaN."""
    base = eight_gaussians_gmm().velocity_model(REVERSED)
    guided = constraint_guided(base, REVERSED, REGION.penalty, 0.5)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    t1 = torch.ones(32)
    assert torch.equal(guided(x, t1), base(x, t1))
    out = sample(guided, x, hunyuan_compat(20), REVERSED)
    assert bool(torch.isfinite(out).all())


def test_bad_inputs():
    base = eight_gaussians_gmm().velocity_model(REVERSED)
    with pytest.raises(FlowlabError, match="endpoint must be one of"):
        constraint_guided(base, REVERSED, REGION.penalty, 0.5, endpoint="pred_x0")
    with pytest.raises(FlowlabError, match="scale must be"):
        constraint_guided(base, REVERSED, REGION.penalty, -1.0)
    with pytest.raises(FlowlabError, match="not straight"):
        constraint_guided(base, VP_COSINE, REGION.penalty, 0.5)
    with pytest.raises(FlowlabError, match="penalty must be"):
        constraint_guided(base, REVERSED, "x0 > 1", 0.5)
    with pytest.raises(FlowlabError, match="model must be"):
        constraint_guided(None, REVERSED, REGION.penalty, 0.5)
    with pytest.raises(FlowlabError, match="non-zero"):
        HalfPlane((0.0, 0.0), 1.0)
    with pytest.raises(FlowlabError, match="shape"):
        REGION.penalty(torch.zeros(4, 3))


@pytest.mark.parametrize("conv", ["reversed", "conventional"])
@pytest.mark.parametrize("g", [0.0, 1.0, 4.5])
def test_cfg_on_v_equals_cfg_on_pred_data(conv, g):
    assert cfg_data_gap(conv, g) < 1e-12


def test_cfg_scale_conventions():
    g = torch.Generator().manual_seed(2)
    vc, vu = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    w = 3.5
    assert (F.cfg(vc, vu, 1 + w) - ((1 + w) * vc - w * vu)).abs().max() < 1e-12
    assert (F.cfg(vc, vu, 1.0) - vc).abs().max() < 1e-12  # g = 1: no guidance
