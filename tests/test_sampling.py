"""The sampler: update rule, orders of accuracy, convention flip, callback, churn, syncs, bad input.

The reference model is a hand-derived exact velocity for a single Gaussian target D ~ N(mu, s^2 I):
x_t = a D + b E is Gaussian, E[D | x] = mu + a s^2 / c (x - a mu), E[E | x] = b / c (x - a mu) with
c = a^2 s^2 + b^2, v = a' E[D | x] + b' E[E | x]; the exact flow maps noise z to
x(t) = a(t) mu + sqrt(c(t)) z, so every ODE solver's error can be measured exactly.
"""
from __future__ import annotations

import math

import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED, VP_COSINE, FlowlabError
from flowlab import functional as F
from flowlab import schedules as S
from flowlab.sampling import (METHODS, CallCounter, StepInfo, Trajectory, flip, guided, sample,
                              trajectory)

MU = torch.tensor([1.5, -0.5])
STD = 0.3


class Gaussian:
    """Exact marginal velocity of the straight / affine path to N(MU, STD^2 I) (written by hand)."""

    def __init__(self, conv):
        self.conv = conv

    def __call__(self, x, t):
        a, b, da, db = self.conv.coefficients(t.to(x.dtype))
        a, b, da, db = (c[:, None] for c in (a, b, da, db))
        mu = MU.to(x)
        c = a * a * STD**2 + b * b
        r = x - a * mu
        return da * (mu + a * STD**2 / c * r) + db * (b / c * r)

    def __repr__(self):
        return f"Gaussian({self.conv.name})"


def exact_endpoint(z):
    return MU.to(z) + STD * z


def noise(n=256, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g, dtype=dtype)


def test_euler_is_the_one_line_update():
    x0 = noise(dtype=torch.float32)
    ts = S.uniform(5, CONVENTIONAL)
    model = Gaussian(CONVENTIONAL)
    x = x0.clone()
    for i in range(5):
        x = F.euler_step(x, model(x, ts[i].expand(x.shape[0])), ts[i], ts[i + 1])
    assert torch.equal(sample(model, x0, ts, CONVENTIONAL), x)


def test_fp16_update_is_hunyuan_arithmetic():
    x0 = noise(dtype=torch.float16)
    ts = S.hunyuan_compat(6)
    model = lambda x, t: (torch.sin(3 * x.float()) * 7.3).to(x.dtype)  # noqa: E731
    x = x0.clone()
    for i in range(6):
        v = model(x, ts[i].expand(x.shape[0]))
        dt = ts[i + 1] - ts[i]
        x = (x.to(torch.float32) + dt * v).to(torch.float16)  # hy3dgen: sample upcast, dt * v in fp16
    out = sample(model, x0, ts, REVERSED)
    assert out.dtype == torch.float16
    assert torch.equal(out, x)


def test_dtype_and_device_follow_x():
    out = sample(Gaussian(REVERSED), noise(dtype=torch.float64), S.uniform(3, REVERSED), REVERSED)
    assert out.dtype == torch.float64 and out.device.type == "cpu"
    seen = []
    sample(lambda x, t: (seen.append(t), torch.zeros_like(x))[1], noise(4, dtype=torch.float64),
           S.uniform(2, REVERSED), REVERSED)
    assert seen[0].shape == (4,) and seen[0].dtype == torch.float32  # t in the schedule's dtype, (B,)


@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE])
@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("midpoint", 2)])
def test_order_of_accuracy_against_exact_flow(conv, method, order):
    z = noise(64)
    errs = []
    for n in (16, 32, 64):
        out = sample(Gaussian(conv), z, S.uniform(n, conv, dtype=torch.float64), conv, method=method)
        errs.append((out - exact_endpoint(z)).abs().max().item())
    rates = [math.log2(errs[k] / errs[k + 1]) for k in range(2)]
    assert errs[-1] < (0.04 if order == 1 else 3e-3)
    # at least the nominal order (midpoint is 3rd order on this particular straight-path field)
    assert all(r > order - 0.35 for r in rates), (errs, rates)
    if method == "euler":
        assert all(r < 1.35 for r in rates), (errs, rates)


@pytest.mark.parametrize("method", list(METHODS))
def test_conventions_agree_through_flip(method):
    z = noise(128)
    out_c = sample(Gaussian(CONVENTIONAL), z, S.uniform(20, CONVENTIONAL, dtype=torch.float64), CONVENTIONAL,
                   method=method)
    out_r = sample(flip(Gaussian(CONVENTIONAL)), z, S.uniform(20, REVERSED, dtype=torch.float64), REVERSED,
                   method=method)
    native_r = sample(Gaussian(REVERSED), z, S.uniform(20, REVERSED, dtype=torch.float64), REVERSED,
                      method=method)
    assert (out_c - out_r).abs().max().item() < 1e-12
    assert (out_c - native_r).abs().max().item() < 1e-12


def test_flip_repr_and_involution():
    m = Gaussian(CONVENTIONAL)
    f = flip(m)
    assert repr(f) == "flip(Gaussian(conventional))"
    assert flip(f) is m
    x, t = noise(8), torch.full((8,), 0.3, dtype=torch.float64)
    assert torch.equal(f(x, t), -m(x, 1 - t))
    # the flipped conventional model IS the reversed model (same distribution, mirrored time)
    assert (f(x, t) - Gaussian(REVERSED)(x, t)).abs().max().item() < 1e-14
    with pytest.raises(FlowlabError, match="callable"):
        flip(3)


def test_guided_scale_convention():
    cond, uncond = Gaussian(CONVENTIONAL), (lambda x, t: 0.5 * x)
    x, t = noise(8), torch.full((8,), 0.6, dtype=torch.float64)
    assert torch.allclose(guided(cond, uncond, 1.0)(x, t), cond(x, t), atol=1e-14)  # g = 1: no guidance
    assert torch.allclose(guided(cond, uncond, 0.0)(x, t), uncond(x, t), atol=1e-14)
    g = guided(cond, uncond, 4.0)(x, t)
    assert torch.allclose(g, uncond(x, t) + 4.0 * (cond(x, t) - uncond(x, t)))
    # CFG commutes with the convention flip
    assert torch.allclose(flip(guided(cond, uncond, 4.0))(x, t), guided(flip(cond), flip(uncond), 4.0)(x, t))
    assert "scale=4.0" in repr(guided(cond, uncond, 4.0))
    with pytest.raises(FlowlabError, match="finite number"):
        guided(cond, uncond, float("inf"))


@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED])
def test_callback_predictions_are_the_derived_formulas(conv):
    infos: list[StepInfo] = []
    ts = S.uniform(6, conv, dtype=torch.float64)
    sample(Gaussian(conv), noise(32), ts, conv, callback=infos.append)
    assert [i.i for i in infos] == list(range(6))
    for info in infos:
        t = info.t[:, None]
        if conv is CONVENTIONAL:
            want_d, want_e = info.x - t * info.v, info.x + (1 - t) * info.v
        else:
            want_d, want_e = info.x + (1 - t) * info.v, info.x - t * info.v
        assert torch.allclose(info.pred_data, want_d, atol=1e-14)
        assert torch.allclose(info.pred_noise, want_e, atol=1e-14)
        assert info.t_next.ndim == 0
    with pytest.raises(AttributeError):
        infos[0].i = 3  # frozen
    # at the first step x is pure noise: the noise prediction is x itself for the exact model
    assert torch.allclose(infos[0].pred_noise, infos[0].x, atol=1e-12)


def test_trajectory_recorder_shapes():
    rec = trajectory(Gaussian(REVERSED), noise(10), S.uniform(4, REVERSED), REVERSED, method="heun")
    assert isinstance(rec, Trajectory)
    assert rec.xs.shape == (5, 10, 2) and rec.ts.shape == (5,) and rec.vs.shape == (4, 10, 2)
    assert rec.pred_data.shape == rec.pred_noise.shape == (4, 10, 2)
    assert rec.ts[0].item() == 0.0 and rec.ts[-1].item() == 1.0


@pytest.mark.parametrize("method, calls", [("euler", 8), ("heun", 15), ("midpoint", 16)])
def test_model_call_counts(method, calls):
    counter = CallCounter(Gaussian(REVERSED))
    sample(counter, noise(4), S.uniform(8, REVERSED), REVERSED, method=method)
    assert counter.calls == calls


def test_hunyuan_noop_step_costs_a_call_and_moves_nothing():
    counter = CallCounter(Gaussian(REVERSED))
    rec = Trajectory()
    out = sample(counter, noise(16), S.hunyuan_compat(5), REVERSED, callback=rec)
    rec.finish(out)
    assert counter.calls == 5
    assert torch.equal(rec.xs[-1], rec.xs[-2])  # the 1.0 -> 1.0 step
    assert S.n_effective_steps(S.hunyuan_compat(5)) == 4


def test_churn_renoising_preserves_the_marginal():
    """Re-noising x_t to the noisier t_hat must give exactly the path's marginal at t_hat."""
    from flowlab.sampling import _renoise

    g = torch.Generator().manual_seed(1)
    n = 200_000
    for conv, t, t_hat in [(CONVENTIONAL, 0.3, 0.55), (REVERSED, 0.7, 0.45), (VP_COSINE, 0.2, 0.5)]:
        d = MU + STD * torch.randn(n, 2, generator=g, dtype=torch.float64)
        e = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x = conv.interpolate(d, e, t)
        xh = _renoise(conv, x, torch.tensor(t, dtype=torch.float64), torch.tensor(t_hat, dtype=torch.float64), g,
                      torch.float64)
        a, b, _, _ = conv.coefficients(torch.tensor(t_hat, dtype=torch.float64))
        want_mean, want_std = a * MU, torch.sqrt(a**2 * STD**2 + b**2)
        assert (xh.mean(0) - want_mean).abs().max().item() < 0.01
        assert (xh.std(0) - want_std).abs().max().item() < 0.01


def test_churn_is_deterministic_given_generator_and_still_samples_the_target():
    z = noise(8_000)
    ts = S.uniform(40, CONVENTIONAL, dtype=torch.float64)
    run = lambda seed: sample(Gaussian(CONVENTIONAL), z, ts, CONVENTIONAL, method="heun", churn=0.5,  # noqa: E731
                              generator=torch.Generator().manual_seed(seed))
    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a.mean(0) - MU.double()).abs().max().item() < 0.03  # 8000 samples: std error ~0.003
    assert (a.std(0) - STD).abs().max().item() < 0.03
    det = sample(Gaussian(CONVENTIONAL), z, ts, CONVENTIONAL, method="heun", churn=0.0)
    assert not torch.equal(a, det)


def test_works_under_inference_mode():
    with torch.inference_mode():
        out = sample(Gaussian(REVERSED), noise(8), S.uniform(4, REVERSED), REVERSED, method="midpoint",
                     churn=0.2, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()


def test_loop_makes_no_host_sync(monkeypatch):
    """With the two optional checks off, nothing in the loop converts a tensor to a Python value."""
    x, ts = noise(8), S.uniform(6, REVERSED)
    events = []

    def trap(name):
        def f(self, *args, **kwargs):
            events.append(name)
            raise AssertionError(f"host sync: Tensor.{name}")
        return f

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, trap(name))
    for method in METHODS:
        sample(Gaussian(REVERSED), x, ts, REVERSED, method=method, check_finite=False, check_schedule=False,
               churn=0.3, generator=torch.Generator().manual_seed(0), callback=lambda info: None)
    assert events == []
    monkeypatch.undo()


def test_check_finite_syncs_once_after_the_loop(monkeypatch):
    calls = []
    orig = torch.Tensor.__bool__

    def counting(self):
        calls.append(1)
        return orig(self)

    monkeypatch.setattr(torch.Tensor, "__bool__", counting)
    sample(Gaussian(REVERSED), noise(8), S.uniform(10, REVERSED), REVERSED, check_schedule=False)
    monkeypatch.undo()
    assert len(calls) == 1


# --- bad input ---------------------------------------------------------------------------------------

def test_wrong_output_shape_names_step_and_shapes():
    def bad(x, t):
        return x[:, :1] if bool((t > 0.4).all()) else x

    with pytest.raises(FlowlabError, match=r"step 2 \(t = 0\.5\).*shape \(4, 1\), expected \(4, 2\)"):
        sample(bad, noise(4), S.uniform(4, REVERSED), REVERSED)


def test_nan_velocity_names_first_bad_step_and_time():
    def bad(x, t):
        v = -x
        return torch.where(t[:, None] > 0.55, torch.full_like(x, float("nan")), v)

    for method in METHODS:
        with pytest.raises(FlowlabError, match=r"NaN or inf at step 3 \(t = 0\.6 -> 0\.8"):
            sample(bad, noise(4), S.uniform(5, REVERSED, dtype=torch.float64), REVERSED,
                   method="euler" if method == "heun" else method)
    with pytest.raises(FlowlabError, match=r"NaN or inf at step 2 \(sigma = 0\.6"):  # Heun: t_next of step 2 is 0.4
        sample(lambda x, t: torch.where(t[:, None] < 0.45, x / 0.0, x), noise(4),
               S.uniform(5, CONVENTIONAL, dtype=torch.float64), CONVENTIONAL, method="heun")


def test_inf_velocity_and_overflowing_state_and_bad_start():
    with pytest.raises(FlowlabError, match=r"step 0 \(sigma = 1"):
        sample(lambda x, t: torch.full_like(x, float("inf")), noise(4), S.uniform(3, CONVENTIONAL), CONVENTIONAL)
    with pytest.raises(FlowlabError, match="state x became NaN or inf at step 0.*overflowed"):
        sample(lambda x, t: torch.full_like(x, 60000.0), noise(4, dtype=torch.float16) + 60000,
               S.uniform(2, REVERSED), REVERSED)
    bad = noise(4)
    bad[1, 0] = float("nan")
    with pytest.raises(FlowlabError, match="initial x"):
        sample(Gaussian(REVERSED), bad, S.uniform(3, REVERSED), REVERSED)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(FlowlabError, match="unknown method 'rk4'.*euler, heun, midpoint"):
        sample(Gaussian(REVERSED), noise(4), S.uniform(3, REVERSED), REVERSED, method="rk4")


@pytest.mark.parametrize("ts, match", [
    (torch.tensor([0.0, 0.5, 1.0]), "wrong way"),
    (torch.tensor([1.0, 0.2, 0.5, 0.0]), "not monotone"),
    (torch.tensor([1.0, 0.5, 0.1]), "data endpoint"),
    (torch.tensor([0.8, 0.5, 0.0]), "noise endpoint"),
])
def test_bad_schedule_is_rejected_before_any_model_call(ts, match):
    counter = CallCounter(Gaussian(CONVENTIONAL))
    with pytest.raises(FlowlabError, match=match):
        sample(counter, noise(4), ts, CONVENTIONAL)
    assert counter.calls == 0


def test_bad_scalars():
    with pytest.raises(FlowlabError, match="churn"):
        sample(Gaussian(REVERSED), noise(4), S.uniform(3, REVERSED), REVERSED, churn=-1.0)
    with pytest.raises(FlowlabError, match="floating tensor"):
        sample(Gaussian(REVERSED), torch.zeros(4, 2, dtype=torch.long), S.uniform(3, REVERSED), REVERSED)
    with pytest.raises(FlowlabError, match="returned int"):
        sample(lambda x, t: 0, noise(4), S.uniform(3, REVERSED), REVERSED)
    with pytest.raises(FlowlabError, match="unknown convention"):
        sample(Gaussian(REVERSED), noise(4), S.uniform(3, REVERSED), "upside-down")


@pytest.mark.parametrize("kind", ["compat", "turbo"])
def test_bitwise_parity_with_hy3dgen_scheduler_fp16(kind):
    """Runs only where hy3dgen is importable (e.g. its own venv): same fp16 states as its scheduler loop."""
    import numpy as np

    sm = pytest.importorskip("hy3dgen.shapegen.schedulers")

    def model(x, t):
        return (torch.sin(3 * x.float() + t.float()[:, None, None]) * 2.3 - x.float()).to(x.dtype)

    n = 12
    if kind == "compat":
        ref = sm.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
        ref.set_timesteps(sigmas=np.linspace(0, 1, n))
        ts, sig = S.hunyuan_compat(n), ref.sigmas
    else:
        ref = sm.ConsistencyFlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, pcm_timesteps=100)
        ref.set_timesteps(n)
        ts, sig = S.hunyuan_turbo(n, dtype=torch.float64), ref.sigmas_
    x0 = torch.randn(2, 64, 8, generator=torch.Generator().manual_seed(0)).half()
    x = x0.clone()
    for i, t in enumerate(ref.timesteps):
        x = ref.step(model(x, sig[i].expand(x.shape[0])), t, x).prev_sample
    assert torch.equal(sample(model, x0, ts, REVERSED), x)
