"""Tests for flowlab.symbolic: every derived identity, symbolically and numerically.

Expected formulas are typed here from the convention table (shared/reference/conventions.md), never
produced by the code under test. Numeric checks run float64 (tol 1e-12) and float32 (tol 1e-5) on
random tensors x: (B, N) with per-sample times t: (B,).
"""
from __future__ import annotations

import json

import pytest
import sympy as sp
import torch

from flowlab import functional as F
from flowlab import symbolic as Y
from flowlab.conventions import CONVENTIONAL, REVERSED, VP_COSINE, Convention, T
from flowlab.errors import FlowlabError
from flowlab.symbolic import (A, ABAR_S, ABAR_T, B, D, DA, DB, DHAT, E, EPS, S, S_NEXT, SIGMA, SCORE, T_NEXT, V,
                              V_COND, V_UNCOND, W, X)

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]

#: A curved custom path (data at t = 0, noise at t = 1): alpha = 1 - t^2, beta = 2t - t^2.
QUADRATIC = Convention.affine("quadratic", 1 - T**2, 2 * T - T**2, t_noise=1, t_data=0)
#: A curved custom path in the reversed direction (noise at t = 0, data at t = 1).
QUADRATIC_REV = Convention.affine("quadratic_rev", 2 * T - T**2, 1 - T**2, t_noise=0, t_data=1)
#: A straight custom path given as strings.
STRAIGHT_STR = Convention.affine("straight_from_strings", "1 - t", "t", t_noise=1, t_data=0, symbol="sigma")

REGISTRY = Y.identity_registry()
PROOFS = Y.proofs()
CUSTOM_IDENTITIES = Y.convention_identities(QUADRATIC) + Y.convention_identities(QUADRATIC_REV)


# ---- 1. endpoint predictions from the update rule alone ---------------------------------------

def test_jumps_come_from_the_update_rule():
    assert sp.expand(Y.euler_update() - (X + (S_NEXT - S) * V)) == 0
    assert sp.expand(Y.jump_to(0) - (X - S * V)) == 0
    assert sp.expand(Y.jump_to(1) - (X + (1 - S) * V)) == 0


@pytest.mark.parametrize("conv, endpoint, formula, lives, target", [
    (CONVENTIONAL, 0, X - T * V, "data", D),
    (CONVENTIONAL, 1, X + (1 - T) * V, "noise", E),
    (REVERSED, 0, X - T * V, "noise", E),
    (REVERSED, 1, X + (1 - T) * V, "data", D),
], ids=["conventional-x0", "conventional-x1", "reversed-x0", "reversed-x1"])
def test_endpoint_facts(conv, endpoint, formula, lives, target):
    fact = Y.endpoint_fact(conv, endpoint)
    assert sp.expand(fact.formula - formula) == 0
    assert fact.lives_there == lives
    assert fact.on_path == target
    assert fact.exact


def test_hunyuan_pred_x0_is_the_noise_not_the_data():
    # the maintainers' "pred_x0 = sample - sigma * model_output" in the reversed convention
    hunyuan = X - T * V
    on_path = Y.on_path(hunyuan, REVERSED, T)
    assert on_path == E
    assert not Y.vanishes(on_path - D)


def test_velocity_targets():
    assert sp.expand(Y.velocity_target(CONVENTIONAL) - (E - D)) == 0
    assert sp.expand(Y.velocity_target(REVERSED) - (D - E)) == 0
    half_pi = sp.pi / 2
    want = half_pi * (sp.cos(half_pi * T) * E - sp.sin(half_pi * T) * D)
    assert Y.vanishes(Y.velocity_target(VP_COSINE) - want)


def test_velocity_target_matches_autograd():
    gen = torch.Generator().manual_seed(3)
    d, e = torch.randn(4, 8, generator=gen, dtype=torch.float64), torch.randn(4, 8, generator=gen, dtype=torch.float64)
    t = torch.rand(4, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    for conv in (CONVENTIONAL, REVERSED, VP_COSINE, QUADRATIC):
        _, jvp = torch.autograd.functional.jvp(lambda tt: conv.interpolate(d, e, tt), t, torch.ones_like(t))
        derived = Y.to_torch(Y.velocity_target(conv), (D, E, T))(d, e, t.reshape(-1, 1))
        assert (derived - jvp).abs().max() < 1e-12, conv.name


def test_jump_exact_on_straight_paths_only():
    assert Y.jump_remainder(CONVENTIONAL) == 0
    assert Y.jump_remainder(REVERSED) == 0
    assert Y.jump_remainder(STRAIGHT_STR) == 0
    rem = Y.jump_remainder(VP_COSINE)
    assert rem != 0
    # at t = 1/2 the remainder's coefficient of D is cos(pi/4) + (pi/4) sin(pi/4) - 1 != 0
    coeff_d = sp.expand(rem).coeff(D).subs(T, sp.Rational(1, 2))
    assert sp.N(coeff_d - (sp.sqrt(2) / 2 + sp.pi * sp.sqrt(2) / 8 - 1)) == 0
    assert abs(float(coeff_d)) > 0.1
    assert not Y.endpoint_fact(VP_COSINE, 0).exact


def test_endpoint_fact_rejects_non_endpoints():
    with pytest.raises(FlowlabError, match="endpoint must be 0 or 1"):
        Y.endpoint_fact(CONVENTIONAL, 2)
    odd = Convention.affine("shifted", (2 - T) / 2, T / 2, t_noise=2, t_data=0)
    with pytest.raises(FlowlabError, match="no endpoint at t = 1"):
        Y.endpoint_fact(odd, 1)


# ---- 2. the map -------------------------------------------------------------------------------

def test_map_remainders_vanish():
    assert Y.euler_map_remainder() == 0
    assert Y.prediction_map_remainder() == 0
    assert Y.path_map_remainders() == (0, 0)


def test_map_without_velocity_flip_fails():
    wrong = Y.euler_update(X, V, T, T_NEXT) - Y.euler_update(X, V, 1 - T, 1 - T_NEXT)
    assert not Y.vanishes(wrong)
    path_rem, vel_rem = Y.path_map_remainders(CONVENTIONAL, VP_COSINE)
    assert path_rem != 0 and vel_rem != 0


# ---- every exact claim --------------------------------------------------------------------------

@pytest.mark.parametrize("proof", PROOFS, ids=[p.statement for p in PROOFS])
def test_proof_holds(proof):
    assert proof.holds, f"{proof.statement}: remainder {Y.reduce(proof.remainder)}"


def test_proofs_cover_every_topic():
    text = " ".join(p.statement for p in PROOFS)
    for word in ("pred_x0", "pred_x1", "map", "round trip", "DDIM", "CFG", "vp_cosine", "score"):
        assert word in text


# ---- 3. affine conversions ------------------------------------------------------------------------

@pytest.mark.parametrize("src, dst, hand", [
    ("velocity", "data", lambda: F.velocity_to_data(X, V, A, B, DA, DB)),
    ("velocity", "noise", lambda: F.velocity_to_noise(X, V, A, B, DA, DB)),
    ("data", "velocity", lambda: F.data_to_velocity(X, DHAT, A, B, DA, DB)),
    ("noise", "velocity", lambda: F.noise_to_velocity(X, EPS, A, B, DA, DB)),
    ("data", "noise", lambda: F.data_to_noise(X, DHAT, A, B)),
    ("noise", "data", lambda: F.noise_to_data(X, EPS, A, B)),
    ("noise", "score", lambda: F.noise_to_score(EPS, B)),
    ("score", "noise", lambda: F.score_to_noise(SCORE, B)),
])
def test_solved_conversions_equal_functional_symbolically(src, dst, hand):
    # flowlab.functional is plain arithmetic, so it accepts SymPy symbols too
    assert Y.vanishes(Y.conversion(src, dst) - hand())


@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE, QUADRATIC, QUADRATIC_REV, STRAIGHT_STR],
                         ids=lambda c: c.name)
def test_conversions_recover_truth_on_path(conv):
    on = {X: Y.interpolant(conv)}
    truth = {"velocity": Y.velocity_target(conv), "data": D, "noise": E, "score": -E / conv.beta}
    for src, sym in Y.PARAMETRISATIONS.items():
        for dst in Y.PARAMETRISATIONS:
            if src == dst:
                continue
            got = Y.conversion(src, dst, conv).subs(on).subs(sym, truth[src])
            assert Y.vanishes(got - truth[dst]), (conv.name, src, dst)


@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE, QUADRATIC, QUADRATIC_REV], ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_numeric_round_trips_through_convention_methods(conv, dtype):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(8, 16, generator=gen, dtype=torch.float64).to(dtype)
    v = torch.randn(8, 16, generator=gen, dtype=torch.float64).to(dtype)
    lo, hi = sorted([float(conv.t_noise), float(conv.t_data)])
    t = (lo + 0.1 + (hi - lo - 0.2) * torch.rand(8, generator=gen, dtype=torch.float64)).to(dtype)
    via_data = conv.velocity_from_data(x, conv.pred_data(x, v, t), t)
    via_noise = conv.velocity_from_noise(x, conv.pred_noise(x, v, t), t)
    _, b, _, _ = conv.coefficients(F.bcast(t, x))
    via_score = conv.velocity_from_noise(x, F.score_to_noise(conv.score(x, v, t), b), t)
    for name, back in (("data", via_data), ("noise", via_noise), ("score", via_score)):
        assert back.dtype == dtype
        assert (back - v).abs().max().item() <= TOL[dtype] * 10, (conv.name, name)


def test_conversion_errors():
    with pytest.raises(FlowlabError, match="unknown parametrisation 'x0'"):
        Y.conversion("x0", "data")
    with pytest.raises(FlowlabError, match="to itself"):
        Y.conversion("data", "data")
    with pytest.raises(FlowlabError, match="valid names"):
        Y.conversion("velocity", "data", "no_such_convention")
    with pytest.raises(FlowlabError, match="unknown parametrisation"):
        Y.quantity("epsilon")


# ---- 4. DDPM / DDIM ---------------------------------------------------------------------------------

def test_ddim_is_euler_in_sigma():
    assert Y.ddim_euler_remainder() == 0
    y, dy = Y.ddim_reparametrised_path()
    assert sp.expand(y - (D + SIGMA * E)) == 0
    assert dy == E


def test_ddim_is_not_euler_in_abar():
    # the naive reading "step abar with eps as velocity" is wrong
    naive = Y.euler_update(X, EPS, ABAR_T, ABAR_S)
    assert not Y.vanishes(Y.ddim_step() - naive)


def test_ddim_matches_diffusers_style_formula_numerically():
    # DDIM (Song et al. eq. 12, eta = 0) typed independently, against the derived step
    gen = torch.Generator().manual_seed(5)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    x = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    eps = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    at, as_ = abar[999], abar[979]
    pred_x0 = (x - (1 - at).sqrt() * eps) / at.sqrt()
    want = as_.sqrt() * pred_x0 + (1 - as_).sqrt() * eps
    got = Y.to_torch(Y.ddim_step(), (X, EPS, ABAR_T, ABAR_S))(x, eps, at, as_)
    assert (got - want).abs().max() < 1e-12


def test_ddim_remix_is_euler_only_on_straight_paths():
    assert Y.ddim_minus_euler_affine(CONVENTIONAL) == 0
    assert Y.ddim_minus_euler_affine(REVERSED) == 0
    assert Y.ddim_minus_euler_affine(VP_COSINE) != 0
    assert Y.ddim_minus_euler_affine(QUADRATIC) != 0


# ---- 5. CFG -------------------------------------------------------------------------------------------

def test_cfg_identities():
    assert sp.expand(Y.cfg(scale=1) - V_COND) == 0  # g = 1: no guidance
    assert sp.expand(Y.cfg(scale=0) - V_UNCOND) == 0
    assert Y.cfg_flip_remainder() == 0
    assert Y.cfg_scale_remainder() == 0
    for conv in (None, CONVENTIONAL, REVERSED, VP_COSINE, QUADRATIC):
        assert Y.cfg_data_remainder(conv) == 0


def test_cfg_with_w_used_as_g_is_caught():
    wrong = (1 + W) * V_COND - W * V_UNCOND - Y.cfg(scale=W)
    assert not Y.vanishes(wrong)


# ---- closing the loop: lambdified derived vs hand-written ----------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("identity", REGISTRY + CUSTOM_IDENTITIES, ids=lambda i: i.name)
def test_derived_equals_hand_written(identity, dtype):
    err = Y.compare(identity, dtype, seed=0)
    assert err <= TOL[dtype], f"{identity.name}: {err:.3e}"


def test_registry_covers_the_sampler_functions():
    names = " ".join(i.name for i in REGISTRY)
    for fn in ("conventional_pred_x0", "conventional_pred_x1", "reversed_pred_x0", "reversed_pred_x1"):
        assert fn in names
    for topic in ("Euler update", "map:", "affine (generic a, b)", "vp_cosine", "DDIM", "CFG"):
        assert topic in names
    assert len({i.name for i in REGISTRY}) == len(REGISTRY)


def test_float32_inputs_stay_float32_and_per_sample_shapes_work():
    fact = Y.endpoint_fact(REVERSED, 1)
    fn = Y.to_torch(fact.formula, (X, V, T))
    x = torch.randn(5, 3, dtype=torch.float32)
    v = torch.randn(5, 3, dtype=torch.float32)
    t = torch.linspace(0, 1, 5, dtype=torch.float32)
    out = fn(x, v, t.reshape(-1, 1))
    assert out.dtype == torch.float32 and out.shape == (5, 3)
    assert torch.equal(out, F.reversed_pred_x1(x, v, t))
    # a scalar (python float) time against the Convention method
    assert (fn(x, v, torch.tensor(0.25)) - REVERSED.pred_x1(x, v, 0.25)).abs().max() <= 1e-6


def test_to_torch_constant_expression_broadcasts():
    fn = Y.to_torch(Y.velocity_target(CONVENTIONAL).subs({D: 1, E: 0}), (T,))
    t = torch.rand(4, dtype=torch.float32)
    out = fn(t)
    assert out.shape == (4,) and out.dtype == torch.float32 and torch.all(out == -1)


def test_torch_source_shows_generated_code():
    src = Y.torch_source(Y.endpoint_fact(CONVENTIONAL, 0).formula, (X, V, T))
    assert src.startswith("def _lambdifygenerated(x, v, t):") and "return" in src


# ---- failure cases: the comparison must catch wrong formulas ------------------------------------------

def test_wrong_formula_is_caught():
    # the mixed-up derivation of Hunyuan3D-2 #124: treat x - t v as the data in the reversed convention
    wrong = Y.Identity("reversed data taken as x - t v", Y.endpoint_fact(REVERSED, 1).formula, (X, V, T),
                       F.reversed_pred_x0, (Y.TENSOR, Y.TENSOR, Y.Domain("per_sample", 0.0, 1.0)))
    for dtype in DTYPES:
        assert Y.compare(wrong, dtype) > 0.1


def test_sign_slip_is_caught():
    slipped = Y.Identity("conventional pred_x0 with +sigma", X + T * V, (X, V, T), F.conventional_pred_x0,
                         (Y.TENSOR, Y.TENSOR, Y.Domain("per_sample", 0.1, 1.0)))
    assert Y.compare(slipped, torch.float64) > 0.1


def test_identity_and_compare_errors():
    with pytest.raises(FlowlabError, match="not among its args"):
        Y.Identity("missing arg", X + T * V, (X, V), F.conventional_pred_x0, (Y.TENSOR, Y.TENSOR))
    with pytest.raises(FlowlabError, match="domains"):
        Y.Identity("domain count", X, (X,), F.flip_velocity, ())
    ok = REGISTRY[0]
    with pytest.raises(FlowlabError, match="float32 or float64"):
        Y.compare(ok, torch.float16)
    bad_kind = Y.Identity("bad kind", X, (X,), F.flip_velocity, (Y.Domain("matrix"),))
    with pytest.raises(FlowlabError, match="unknown domain kind"):
        Y.compare(bad_kind)


# ---- report -------------------------------------------------------------------------------------------

def test_convention_report_contents():
    conv = Y.convention_report("conventional")
    rev = Y.convention_report(REVERSED)
    json.dumps([conv, rev])
    assert conv["pred_x0"] == "x - sigma*v" and conv["pred_x0_is"] == "data"
    assert conv["pred_x1"] == "x + (1 - sigma)*v" and conv["pred_x1_is"] == "noise"
    assert conv["update_rule"] == "x' = x + (sigma' - sigma)*v"
    assert conv["interpolant"] == "x = (1 - sigma)*D + sigma*E"
    assert conv["data_prediction"] == "pred_x0" and conv["jump_is_exact"] is True
    assert rev["pred_x0"] == "x - t*v" and rev["pred_x0_is"] == "noise"
    assert rev["pred_x1"] == "x + (1 - t)*v" and rev["pred_x1_is"] == "data"
    assert rev["velocity_target"] == "v = D - E"
    assert rev["data_prediction"] == "pred_x1" and rev["noise_prediction"] == "pred_x0"
    assert "data_formula" not in rev


def test_report_of_curved_path_gives_exact_formulas():
    rep = Y.convention_report(QUADRATIC)
    json.dumps(rep)
    assert rep["jump_is_exact"] is False
    data = sp.sympify(rep["data_formula"], locals={"t": T, "x": X, "v": V})
    on = data.subs({X: Y.interpolant(QUADRATIC), V: Y.velocity_target(QUADRATIC)})
    assert Y.vanishes(on - D)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compare_on_cuda():
    for identity in REGISTRY:
        assert Y.compare(identity, torch.float32, device="cuda") <= TOL[torch.float32], identity.name
