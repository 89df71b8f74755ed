"""The corpus that proves flowlab.testing.check_sampler is sharp: RIGHT loops that must pass and WRONG loops
(each a plausible mistake, in several coding styles) that must be diagnosed with their own finding code.

Styles: "plain" (a hand-written loop), "diffusers" (a diffusers scheduler drives the loop), "kdiff" (k-diffusion's
own samplers on the flow parameterisation D = x - sigma v), "flow_matching" (facebookresearch/flow_matching's
ODESolver), "torchdiffeq" (odeint as torchcfm's examples use it), "hy3dgen" (a reproduction of hy3dgen 2.0.2's
FlowMatchEulerDiscreteScheduler, see :class:`HunyuanFlowMatchEuler`), float64 and CUDA variants.
Every loop has the signature fn(model, x, steps) that check_sampler calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from flowlab.schedules import shift_noise_level


@dataclass(frozen=True)
class Case:
    name: str
    style: str
    fn: Callable[..., Any]
    expect: str | None  # the finding code, None = must pass
    kwargs: dict = field(default_factory=dict)
    also: frozenset = frozenset()  # other codes the mistake also (truly) produces
    cuda: bool = False


def _sd3(u: torch.Tensor, s: float) -> torch.Tensor:
    return shift_noise_level(u, s)


# ---- plain loops ------------------------------------------------------------------------------------------

def plain_euler_conv(model, x, steps):
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s)
    return x


def plain_euler_rev(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype, device=x.device)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


def plain_euler_rev_batched_t(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for t, t_next in zip(ts[:-1].tolist(), ts[1:].tolist()):
        tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        x = x + (t_next - t) * model(x, tb)
    return x


def plain_euler_conv_1000(model, x, steps):
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s * 1000)
    return x


def plain_heun_conv(model, x, steps):
    sigmas = torch.linspace(1.0, 0.0, steps // 2 + 1).tolist()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        v = model(x, s)
        x_pred = x + (s_next - s) * v
        x = x + (s_next - s) * 0.5 * (v + model(x_pred, s_next))
    return x


def plain_midpoint_rev(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps // 2 + 1).tolist()
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        x_mid = x + 0.5 * h * model(x, t)
        x = x + h * model(x_mid, t + 0.5 * h)
    return x


def plain_euler_shift3_conv(model, x, steps):
    sigmas = _sd3(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), 3.0).float()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s)
    return x


def plain_euler_shift3_rev(model, x, steps):
    ts = 1 - _sd3(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), 3.0)  # shift on the noise level 1 - t
    for t, t_next in zip(ts[:-1].tolist(), ts[1:].tolist()):
        x = x + (t_next - t) * model(x, t)
    return x


def plain_hunyuan_corrected(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)  # the fix for hy3dgen's wasted step
    cond = {"main": torch.zeros(x.shape[0], 4, 8)}
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t.expand(x.shape[0]), cond)
    return x


# wrong plain loops
def plain_wrong_direction(model, x, steps):
    sigmas = torch.linspace(0.0, 1.0, steps + 1)  # runs data -> noise
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s)
    return x


def plain_wrong_direction_rev(model, x, steps):
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=x.dtype)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


def plain_returns_noise_pred(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        v = model(x, t)
        if i == steps - 1:
            return x - t * v  # "pred_x0" as Hunyuan names it: the NOISE
        x = x + (t_next - t) * v
    return x


def issue124_guidance(model, x, steps):
    """The #124 code: the guidance hook works on 'pred_x0 = x - t v' taken as the data and steps through it."""
    ts = torch.linspace(0.0, 1.0, steps + 1)
    cond = {"main": torch.zeros(x.shape[0], 4, 8)}

    def guide(x0):  # the user's guidance on the clean sample (identity at zero strength)
        return x0

    for t, t_next in zip(ts[:-1], ts[1:]):
        v = model(x, t.expand(x.shape[0]), cond)
        pred_x0 = guide(x - t * v)  # meant as the data: it is the noise
        pred_noise = x + (1 - t) * v
        x = t_next * pred_x0 + (1 - t_next) * pred_noise
    return x


def plain_appended_one(model, x, steps):
    ts = torch.cat([torch.linspace(0.0, 1.0, steps), torch.ones(1)])  # hy3dgen's schedule, by hand
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


def plain_double_shift(model, x, steps):
    sigmas = _sd3(_sd3(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), 3.0), 3.0).float()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s)
    return x


def plain_double_shift_rev(model, x, steps):
    u = _sd3(_sd3(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), 3.0), 3.0)
    ts = (1 - u).to(x.dtype)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


def plain_time_scale_01(model, x, steps):  # model wants 0-1000, given sigma in 0-1
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s)
    return x


def plain_t_vs_sigma(model, x, steps):  # reversed model, the loop passes sigma = 1 - t
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, 1 - t)
    return x


def plain_t_vs_sigma_conv(model, x, steps):  # conventional model, the loop passes t where sigma is meant
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x - (t_next - t) * model(x, t)
    return x


def plain_fp16_time(model, x, steps):
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s.half())
    return x


def plain_fp16_rounded(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t.half().float())  # rounded, cast back: the dtype hides it
    return x


def plain_stops_short(model, x, steps):
    sigmas = torch.linspace(1.0, 0.0, steps + 1)[:-1]  # forgot the last step
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * model(x, s)
    return x


def plain_stops_short_rev(model, x, steps):
    ts = torch.linspace(0.0, 0.95, steps + 1, dtype=x.dtype)  # t_max = 0.95 "for stability"
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


def plain_sign_flip(model, x, steps):
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x - (s_next - s) * model(x, s)
    return x


def plain_sign_flip_rev(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t - t_next) * model(x, t)
    return x


def plain_half_velocity(model, x, steps):  # a stray 0.5 (a CFG weight applied to one branch only)
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s) * 0.5 * model(x, s)
    return x


def plain_drift(model, x, steps):  # x += dt (v + x): a leftover VP term
    ts = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * (model(x, t) + 0.3 * x)
    return x


# ---- diffusers scheduler loops ------------------------------------------------------------------------------

def _fm_euler(**config):
    from diffusers import FlowMatchEulerDiscreteScheduler
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, **config)


def diffusers_euler(model, x, steps, shift=1.0, sigmas=None, negate=False, timestep_map=None, stop=0, cast=None):
    sched = _fm_euler(shift=shift)
    if sigmas is None:
        sched.set_timesteps(steps, device=x.device)
    else:
        sched.set_timesteps(sigmas=sigmas, device=x.device)
    timesteps = sched.timesteps
    for t in timesteps[:len(timesteps) - stop]:
        ts = t.expand(x.shape[0])
        ts = timestep_map(ts) if timestep_map is not None else ts
        ts = ts.to(cast) if cast is not None else ts
        v = model(x, timestep=ts).sample
        x = sched.step(-v if negate else v, t, x).prev_sample
    return x


def diffusers_euler_default(model, x, steps):
    return diffusers_euler(model, x, steps)


def diffusers_euler_shift3(model, x, steps):
    return diffusers_euler(model, x, steps, shift=3.0)


def diffusers_euler_cfg(model, x, steps):
    sched = _fm_euler()
    sched.set_timesteps(steps)
    emb = torch.zeros(2 * x.shape[0], 4, 8)
    for t in sched.timesteps:
        out = model(torch.cat([x, x]), timestep=t.expand(2 * x.shape[0]), encoder_hidden_states=emb,
                    return_dict=False)[0]
        uncond, cond = out.chunk(2)
        x = sched.step(uncond + 4.5 * (cond - uncond), t, x).prev_sample
    return x


def diffusers_heun(model, x, steps):
    from diffusers import FlowMatchHeunDiscreteScheduler
    sched = FlowMatchHeunDiscreteScheduler(num_train_timesteps=1000)
    sched.set_timesteps(steps // 2)
    for t in sched.timesteps:
        x = sched.step(model(x, timestep=t.expand(x.shape[0])).sample, t, x).prev_sample
    return x


def diffusers_wrong_direction(model, x, steps):
    sched = _fm_euler()
    sched.set_timesteps(steps)
    sched.sigmas = sched.sigmas.flip(0)  # "sigmas should increase"
    sched.timesteps = sched.sigmas[:-1] * 1000
    for t in sched.timesteps:
        x = sched.step(model(x, timestep=t.expand(x.shape[0])).sample, t, x).prev_sample
    return x


def diffusers_noise_as_x0(model, x, steps):  # diffusers #10606: computing pred_x0 by hand, the wrong endpoint
    sched = _fm_euler()
    sched.set_timesteps(steps)
    for i, t in enumerate(sched.timesteps):
        v = model(x, timestep=t.expand(x.shape[0])).sample
        if i == len(sched.timesteps) - 1:
            sigma = sched.sigmas[i]
            return x + (1 - sigma) * v
        x = sched.step(v, t, x).prev_sample
    return x


def diffusers_sigmas_with_zero(model, x, steps):  # sigmas include 0.0; the scheduler appends another 0.0
    return diffusers_euler(model, x, steps, sigmas=np.linspace(1.0, 0.0, steps))


def diffusers_preshifted(model, x, steps):  # pre-shifted sigmas handed to a scheduler that shifts again
    u = np.linspace(1.0, 1.0 / steps, steps)
    return diffusers_euler(model, x, steps, shift=3.0, sigmas=3.0 * u / (1 + 2.0 * u))


def diffusers_time_01(model, x, steps):
    return diffusers_euler(model, x, steps, timestep_map=lambda ts: ts / 1000)


def diffusers_t_vs_sigma(model, x, steps):
    return diffusers_euler(model, x, steps, timestep_map=lambda ts: 1000 - ts)


def diffusers_fp16(model, x, steps):
    return diffusers_euler(model, x, steps, cast=torch.float16)


def diffusers_stop_early(model, x, steps):  # explicit sigmas ending at 1/N; the loop skips the last timestep
    return diffusers_euler(model, x, steps, sigmas=np.linspace(1.0, 1.0 / steps, steps), stop=1)


def diffusers_negated(model, x, steps):
    return diffusers_euler(model, x, steps, negate=True)


def diffusers_scale_noise_renoise(model, x, steps):  # re-noises every step with fresh noise (img2img leftover)
    sched = _fm_euler()
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(1)
    for i, t in enumerate(sched.timesteps):
        v = model(x, timestep=t.expand(x.shape[0])).sample
        x = sched.step(v, t, x).prev_sample
        if 0 < i < len(sched.timesteps) - 1:
            x = x + 0.05 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    return x


# ---- hy3dgen 2.0.2 ------------------------------------------------------------------------------------------

class HunyuanFlowMatchEuler:
    """hy3dgen 2.0.2's FlowMatchEulerDiscreteScheduler as its pipeline drives it, reproduced (hy3dgen is not
    installed here; flowlab/data/schedulers/hunyuan3d2.json (package data) was generated from the real one and the corpus test
    checks this class against it): ``set_timesteps(sigmas=linspace(0, 1, N))`` keeps the sigmas (float32),
    ``timesteps = sigmas * 1000`` and appends ``1.0`` to the sigmas; ``step`` is ``x + (sigma_next - sigma) v``
    with the sample upcast to float32 and the result cast back to the model output's dtype."""

    def __init__(self, num_train_timesteps: int = 1000) -> None:
        self.num_train_timesteps = num_train_timesteps
        self.step_index = 0

    def set_timesteps(self, sigmas: np.ndarray, device: Any = None) -> None:
        s = torch.from_numpy(np.asarray(sigmas)).to(dtype=torch.float32, device=device)
        self.timesteps = s * self.num_train_timesteps
        self.sigmas = torch.cat([s, torch.ones(1, device=s.device)])
        self.step_index = 0

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        sample = sample.to(torch.float32)
        sigma, sigma_next = self.sigmas[self.step_index], self.sigmas[self.step_index + 1]
        prev = sample + (sigma_next - sigma) * model_output
        self.step_index += 1
        return prev.to(model_output.dtype)


def hy3dgen_pipeline(model, latents, steps, guidance_scale=5.0, fp16=False):
    """hy3dgen 2.0.2's Hunyuan3DDiTFlowMatchingPipeline denoising loop (CFG batch [cond, uncond])."""
    sched = HunyuanFlowMatchEuler()
    sched.set_timesteps(sigmas=np.linspace(0, 1, steps), device=latents.device)
    cond = {"main": torch.zeros(2 * latents.shape[0], 4, 8)}
    for t in sched.timesteps:
        latent_model_input = torch.cat([latents] * 2)
        timestep = t.expand(latent_model_input.shape[0]).to(torch.float16 if fp16 else latents.dtype)
        timestep = timestep / sched.num_train_timesteps
        noise_pred = model(latent_model_input, timestep, cond, guidance=None)
        noise_pred_cond, noise_pred_uncond = noise_pred.chunk(2)
        noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_cond - noise_pred_uncond)
        latents = sched.step(noise_pred, t, latents).to(latents.dtype)
    return latents


def hy3dgen_fp16(model, latents, steps):
    return hy3dgen_pipeline(model, latents, steps, fp16=True)


def hunyuan_time_1000(model, x, steps):  # the DiT wants t in [0, 1]; given the 0-1000 timestep
    ts = torch.linspace(0.0, 1.0, steps + 1)
    cond = {"main": torch.zeros(x.shape[0], 4, 8)}
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, (t * 1000).expand(x.shape[0]), cond)
    return x


def hunyuan_fp16_corrected(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    cond = {"main": torch.zeros(x.shape[0], 4, 8)}
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, ((t * 1000).half() / 1000).expand(x.shape[0]), cond)
    return x


# ---- k-diffusion: its own samplers, a flow model as a denoiser --------------------------------------------

def _kd():
    from flowlab.atlas import load_k_diffusion_sampling
    return load_k_diffusion_sampling()


def _denoiser(model, form="right", scale=1.0):
    def denoiser(x, sigma):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        if form == "t_vs_sigma":
            return x - s * model(x, 1 - sigma)
        v = model(x, sigma * scale)
        if form == "sign":
            return x + s * v
        if form == "noise":
            return x + (1 - s) * v  # the noise prediction handed over as the denoised sample
        return x - s * v
    return denoiser


def _kd_sigmas(steps, shift=1.0, lo=0.0, hi=1.0):
    u = torch.linspace(hi, lo, steps + 1, dtype=torch.float64)
    return _sd3(u, shift).float() if shift != 1.0 else u.float()


def kdiff_euler(model, x, steps):
    return _kd().sample_euler(_denoiser(model), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_euler_shift3(model, x, steps):
    return _kd().sample_euler(_denoiser(model), x, _kd_sigmas(steps, 3.0).to(x), disable=True)


def kdiff_heun(model, x, steps):
    return _kd().sample_heun(_denoiser(model), x, _kd_sigmas(steps // 2).to(x), disable=True)


def kdiff_dpm2(model, x, steps):
    return _kd().sample_dpm_2(_denoiser(model), x, _kd_sigmas(steps // 2).to(x), disable=True)


def kdiff_lms(model, x, steps):
    return _kd().sample_lms(_denoiser(model), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_wrong_direction(model, x, steps):
    return _kd().sample_euler(_denoiser(model), x, _kd_sigmas(steps, lo=1.0, hi=0.02).to(x), disable=True)


def kdiff_noise_denoiser(model, x, steps):
    return _kd().sample_euler(_denoiser(model, "noise"), x, _kd_sigmas(steps, lo=0.0, hi=0.999).to(x), disable=True)


def kdiff_repeated_sigma(model, x, steps):
    sig = _kd_sigmas(steps - 1)
    sig = torch.cat([sig[:-1], sig[-2:]])  # the last nonzero sigma twice: a dt = 0 step
    return _kd().sample_euler(_denoiser(model), x, sig.to(x), disable=True)


def kdiff_double_shift(model, x, steps):
    return _kd().sample_euler(_denoiser(model), x, _sd3(_kd_sigmas(steps, 3.0).double(), 3.0).float().to(x),
                              disable=True)


def kdiff_time_1000(model, x, steps):  # model wants sigma in 0-1, given sigma * 1000
    return _kd().sample_euler(_denoiser(model, scale=1000.0), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_t_vs_sigma(model, x, steps):
    return _kd().sample_euler(_denoiser(model, "t_vs_sigma"), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_fp16(model, x, steps):
    den = _denoiser(model)
    return _kd().sample_euler(lambda x, s: den(x, s.half()).to(x.dtype), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_sigma_min(model, x, steps):  # Karras-style sigma_min without the final 0
    return _kd().sample_euler(_denoiser(model), x, _kd_sigmas(steps, lo=0.03).to(x), disable=True)


def kdiff_sign(model, x, steps):
    return _kd().sample_euler(_denoiser(model, "sign"), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_dpmpp_2m(model, x, steps):  # integrates dx/dsigma = (x - D) / sigma = v: right for a flow model too
    return _kd().sample_dpmpp_2m(_denoiser(model), x, _kd_sigmas(steps).to(x), disable=True)


def kdiff_no_sigma(model, x, steps):  # D = x - v: the sigma factor of D = x - sigma v dropped
    def denoiser(x, sigma):
        return x - model(x, sigma)
    return _kd().sample_euler(denoiser, x, _kd_sigmas(steps).to(x), disable=True)


# ---- flow_matching's ODESolver, torchdiffeq (as torchcfm's examples) --------------------------------------

def _fm_solve(velocity, x, grid, method="euler", step_size=None, **kw):
    from flow_matching.solver import ODESolver
    solver = ODESolver(velocity_model=velocity)
    return solver.sample(x_init=x, step_size=step_size, method=method,
                         time_grid=torch.tensor(grid, dtype=x.dtype, device=x.device), **kw)


def fm_euler(model, x, steps):
    return _fm_solve(lambda x, t: model(x, t), x, [0.0, 1.0], step_size=1.0 / steps)


def fm_midpoint(model, x, steps):
    return _fm_solve(lambda x, t: model(x, t), x, [0.0, 1.0], method="midpoint", step_size=2.0 / steps)


def fm_dopri5(model, x, steps):
    return _fm_solve(lambda x, t: model(x, t), x, [0.0, 1.0], method="dopri5", atol=1e-5, rtol=1e-5)


def fm_conventional_model(model, x, steps):  # a conventional model run by the reversed-time solver
    return _fm_solve(lambda x, t: -model(x, 1 - t), x, [0.0, 1.0], step_size=1.0 / steps)


def fm_grid_euler_shift3(model, x, steps):
    grid = (1 - _sd3(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), 3.0)).tolist()
    return _fm_grid(model, x, grid)


def _fm_grid(model, x, grid, sign=1.0, tmap=None):
    from flow_matching.solver import ODESolver
    out = ODESolver(velocity_model=lambda x, t: sign * model(x, tmap(t) if tmap else t)).sample(
        x_init=x, step_size=None, method="euler", time_grid=torch.tensor(grid, dtype=x.dtype, device=x.device),
        return_intermediates=True)
    return out[-1]


def fm_wrong_direction(model, x, steps):
    return _fm_grid(model, x, torch.linspace(1.0, 0.0, steps + 1).tolist())


def fm_returns_noise(model, x, steps):
    x1 = _fm_grid(model, x, torch.linspace(0.0, 1.0, steps + 1).tolist())
    t = torch.tensor(1.0)
    return x1 - t * model(x1, t)  # "x0 = x - t v" after the solve


def fm_double_shift(model, x, steps):
    u = _sd3(_sd3(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), 3.0), 3.0)
    return _fm_grid(model, x, (1 - u).tolist())


def fm_time_1000(model, x, steps):
    return _fm_grid(model, x, torch.linspace(0.0, 1.0, steps + 1).tolist(), tmap=lambda t: t * 1000)


def fm_t_vs_sigma(model, x, steps):  # a conventional model; forgot the 1 - t
    return _fm_grid(model, x, torch.linspace(0.0, 1.0, steps + 1).tolist(), sign=-1.0)


def fm_fp16(model, x, steps):
    return _fm_grid(model, x, torch.linspace(0.0, 1.0, steps + 1).tolist(), tmap=lambda t: t.half())


def fm_stops_short(model, x, steps):
    return _fm_grid(model, x, torch.linspace(0.0, 0.97, steps + 1).tolist())


def fm_sign(model, x, steps):
    return _fm_grid(model, x, torch.linspace(0.0, 1.0, steps + 1).tolist(), sign=-1.0)


def fm_wrong_scale_v(model, x, steps):  # velocity of a different path (VP) by mistake: v * (1 + t)
    from flow_matching.solver import ODESolver
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype)
    return ODESolver(velocity_model=lambda x, t: model(x, t) * (1 + t)).sample(
        x_init=x, step_size=None, method="euler", time_grid=grid)


def torchdiffeq_dopri5(model, x, steps):
    from torchdiffeq import odeint
    traj = odeint(lambda t, x: model(x, t), x, torch.linspace(0, 1, 2, dtype=x.dtype), atol=1e-5, rtol=1e-5,
                  method="dopri5")
    return traj[-1]


def torchdiffeq_rk4(model, x, steps):
    from torchdiffeq import odeint
    return odeint(lambda t, x: model(x, t), x, torch.linspace(0, 1, 2, dtype=x.dtype), method="rk4",
                  options={"step_size": 4.0 / steps})[-1]


def torchdiffeq_wrong_direction(model, x, steps):
    from torchdiffeq import odeint
    return odeint(lambda t, x: model(x, t), x, torch.tensor([1.0, 0.0], dtype=x.dtype), method="euler",
                  options={"step_size": 1.0 / steps})[-1]


def torchdiffeq_sign(model, x, steps):
    from torchdiffeq import odeint
    return odeint(lambda t, x: -model(x, t), x, torch.tensor([0.0, 1.0], dtype=x.dtype), method="euler",
                  options={"step_size": 1.0 / steps})[-1]


def torchdiffeq_stops_short(model, x, steps):
    from torchdiffeq import odeint
    return odeint(lambda t, x: model(x, t), x, torch.tensor([0.0, 0.96], dtype=x.dtype), method="euler",
                  options={"step_size": 0.96 / steps})[-1]


def torchdiffeq_time_1000(model, x, steps):
    from torchdiffeq import odeint
    return odeint(lambda t, x: model(x, t * 1000), x, torch.tensor([0.0, 1.0], dtype=x.dtype), method="euler",
                  options={"step_size": 1.0 / steps})[-1]


# ---- the corpus ---------------------------------------------------------------------------------------------

C, RV = {"convention": "conventional"}, {"convention": "reversed"}
DIFF = {"convention": "conventional", "time_scale": 1000.0, "signature": "diffusers"}
HY = {"convention": "reversed", "signature": "hunyuan"}
F64 = {"dtype": torch.float64}


def _cuda(kw):
    return {**kw, "device": "cuda"}


RIGHT = [
    Case("plain Euler, conventional", "plain", plain_euler_conv, None, C),
    Case("plain Euler, reversed", "plain", plain_euler_rev, None, RV),
    Case("plain Euler, reversed, 3-D", "plain", plain_euler_rev, None, {**RV, "dim": 3}),
    Case("plain Euler, reversed, float64", "float64", plain_euler_rev, None, {**RV, **F64}),
    Case("plain Euler, per-sample (B,) times", "plain", plain_euler_rev_batched_t, None, RV),
    Case("plain Euler, 0-1000 timesteps", "plain", plain_euler_conv_1000, None, {**C, "time_scale": 1000.0}),
    Case("plain Heun, conventional", "plain", plain_heun_conv, None, C),
    Case("plain midpoint, reversed", "plain", plain_midpoint_rev, None, RV),
    Case("plain Euler, shift 3, conventional", "plain", plain_euler_shift3_conv, None, {**C, "shift": 3.0}),
    Case("plain Euler, shift 3, reversed (shift on 1 - t)", "plain", plain_euler_shift3_rev, None,
         {**RV, "shift": 3.0}),
    Case("Hunyuan3D-2-style call, corrected schedule", "plain", plain_hunyuan_corrected, None, HY),
    Case("diffusers FlowMatchEuler, default", "diffusers", diffusers_euler_default, None, DIFF),
    Case("diffusers FlowMatchEuler, shift 3", "diffusers", diffusers_euler_shift3, None, {**DIFF, "shift": 3.0}),
    Case("diffusers FlowMatchEuler, batched CFG", "diffusers", diffusers_euler_cfg, None, DIFF),
    Case("diffusers FlowMatchHeun", "diffusers", diffusers_heun, None, DIFF),
    Case("diffusers FlowMatchEuler, 3-D", "diffusers", diffusers_euler_default, None, {**DIFF, "dim": 3}),
    Case("k-diffusion sample_euler", "kdiff", kdiff_euler, None, C),
    Case("k-diffusion sample_euler, shift 3", "kdiff", kdiff_euler_shift3, None, {**C, "shift": 3.0}),
    Case("k-diffusion sample_heun", "kdiff", kdiff_heun, None, C),
    Case("k-diffusion sample_dpm_2", "kdiff", kdiff_dpm2, None, C),
    Case("k-diffusion sample_lms", "kdiff", kdiff_lms, None, C),
    Case("k-diffusion sample_dpmpp_2m", "kdiff", kdiff_dpmpp_2m, None, C),
    Case("k-diffusion sample_euler, float64", "float64", kdiff_euler, None, {**C, **F64}),
    Case("flow_matching ODESolver euler", "flow_matching", fm_euler, None, RV),
    Case("flow_matching ODESolver midpoint", "flow_matching", fm_midpoint, None, RV),
    Case("flow_matching ODESolver dopri5 (adaptive)", "flow_matching", fm_dopri5, None, RV),
    Case("flow_matching ODESolver, conventional model flipped", "flow_matching", fm_conventional_model, None, C),
    Case("flow_matching ODESolver, shifted grid", "flow_matching", fm_grid_euler_shift3, None, {**RV, "shift": 3.0}),
    Case("torchdiffeq odeint dopri5 (torchcfm examples)", "torchdiffeq", torchdiffeq_dopri5, None, RV),
    Case("torchdiffeq odeint rk4", "torchdiffeq", torchdiffeq_rk4, None, RV),
    Case("torchdiffeq odeint dopri5, float64", "float64", torchdiffeq_dopri5, None, {**RV, **F64}),
    Case("plain Euler, CUDA", "cuda", plain_euler_rev, None, _cuda(RV), cuda=True),
    Case("diffusers FlowMatchEuler, CUDA", "cuda", diffusers_euler_default, None, _cuda(DIFF), cuda=True),
]

WASTED = frozenset({"wasted_last_step"})
WRONG = [
    # wrong_direction
    Case("plain: sigma runs 0 -> 1", "plain", plain_wrong_direction, "wrong_direction", C),
    Case("plain: t runs 1 -> 0, float64", "float64", plain_wrong_direction_rev, "wrong_direction", {**RV, **F64}),
    Case("diffusers: sigmas flipped", "diffusers", diffusers_wrong_direction, "wrong_direction", DIFF),
    Case("k-diffusion: sigmas ascending", "kdiff", kdiff_wrong_direction, "wrong_direction", C),
    Case("flow_matching: time grid [1, 0]", "flow_matching", fm_wrong_direction, "wrong_direction", RV),
    Case("torchdiffeq: odeint over [1, 0]", "torchdiffeq", torchdiffeq_wrong_direction, "wrong_direction", RV),
    Case("CUDA: t runs 1 -> 0", "cuda", plain_wrong_direction_rev, "wrong_direction", _cuda(RV), cuda=True),
    # noise_as_data
    Case("plain: returns x - t v at the last step", "plain", plain_returns_noise_pred, "noise_as_data", RV),
    Case("Hunyuan3D-2 #124 guidance code", "plain", issue124_guidance, "noise_as_data", HY),
    Case("diffusers: hand-made pred_x0 = x + (1 - sigma) v", "diffusers", diffusers_noise_as_x0, "noise_as_data",
         DIFF),
    Case("k-diffusion: the noise prediction as the denoiser", "kdiff", kdiff_noise_denoiser, "noise_as_data", C),
    Case("flow_matching: x - t v after the solve", "flow_matching", fm_returns_noise, "noise_as_data", RV),
    Case("#124 guidance code, float64", "float64", issue124_guidance, "noise_as_data", {**HY, **F64}),
    # wasted_last_step
    Case("hy3dgen 2.0.2 pipeline loop (reproduced)", "hy3dgen", hy3dgen_pipeline, "wasted_last_step", HY),
    Case("plain: linspace(0, 1, N) + [1.0]", "plain", plain_appended_one, "wasted_last_step", RV),
    Case("diffusers: sigmas ending in 0 passed to set_timesteps", "diffusers", diffusers_sigmas_with_zero,
         "wasted_last_step", DIFF),
    Case("k-diffusion: a repeated sigma", "kdiff", kdiff_repeated_sigma, "wasted_last_step", C),
    Case("hy3dgen loop, float64", "float64", hy3dgen_pipeline, "wasted_last_step", {**HY, **F64}),
    # double_shift
    Case("plain: shift applied twice", "plain", plain_double_shift, "double_shift", {**C, "shift": 3.0}),
    Case("plain: shift applied twice, reversed, float64", "float64", plain_double_shift_rev, "double_shift",
         {**RV, "shift": 3.0, **F64}),
    Case("diffusers: pre-shifted sigmas, shift=3 scheduler", "diffusers", diffusers_preshifted, "double_shift",
         {**DIFF, "shift": 3.0}),
    Case("k-diffusion: shifted sigmas shifted again", "kdiff", kdiff_double_shift, "double_shift",
         {**C, "shift": 3.0}),
    Case("flow_matching: doubly shifted time grid", "flow_matching", fm_double_shift, "double_shift",
         {**RV, "shift": 3.0}),
    # time_scale
    Case("plain: sigma in 0-1 to a 0-1000 model", "plain", plain_time_scale_01, "time_scale",
         {**C, "time_scale": 1000.0}),
    Case("diffusers: timestep / 1000 to a 0-1000 model", "diffusers", diffusers_time_01, "time_scale", DIFF),
    Case("Hunyuan3D-2 DiT given 0-1000", "plain", hunyuan_time_1000, "time_scale", HY),
    Case("k-diffusion: sigma * 1000 to a 0-1 model", "kdiff", kdiff_time_1000, "time_scale", C),
    Case("flow_matching: t * 1000 to a 0-1 model", "flow_matching", fm_time_1000, "time_scale", RV),
    Case("torchdiffeq: t * 1000, float64", "float64", torchdiffeq_time_1000, "time_scale", {**RV, **F64}),
    # t_vs_sigma
    Case("plain: model(x, 1 - t) for a reversed model", "plain", plain_t_vs_sigma, "t_vs_sigma", RV),
    Case("plain: t for sigma, conventional, float64", "float64", plain_t_vs_sigma_conv, "t_vs_sigma", {**C, **F64}),
    Case("diffusers: 1000 - timestep", "diffusers", diffusers_t_vs_sigma, "t_vs_sigma", DIFF),
    Case("k-diffusion: model(x, 1 - sigma)", "kdiff", kdiff_t_vs_sigma, "t_vs_sigma", C),
    Case("flow_matching: conventional model without 1 - t", "flow_matching", fm_t_vs_sigma, "t_vs_sigma", C),
    # fp16_time
    Case("plain: sigma.half()", "plain", plain_fp16_time, "fp16_time", C),
    Case("plain: t.half().float() (rounded, dtype hidden)", "plain", plain_fp16_rounded, "fp16_time", RV),
    Case("diffusers: timestep cast to float16", "diffusers", diffusers_fp16, "fp16_time", DIFF),
    Case("k-diffusion: sigma.half()", "kdiff", kdiff_fp16, "fp16_time", C),
    Case("flow_matching: t.half()", "flow_matching", fm_fp16, "fp16_time", RV),
    Case("Hunyuan3D-2: fp16 timestep, corrected schedule, float64", "float64", hunyuan_fp16_corrected, "fp16_time",
         {**HY, **F64}),
    Case("hy3dgen loop with fp16 latents' timestep", "hy3dgen", hy3dgen_fp16, "fp16_time", HY, also=WASTED),
    # not_at_data
    Case("plain: last step dropped", "plain", plain_stops_short, "not_at_data", C),
    Case("plain: t_max = 0.95, float64", "float64", plain_stops_short_rev, "not_at_data", {**RV, **F64}),
    Case("diffusers: loop stops one step early", "diffusers", diffusers_stop_early, "not_at_data", DIFF),
    Case("k-diffusion: sigma_min without the final 0", "kdiff", kdiff_sigma_min, "not_at_data", C),
    Case("flow_matching: time grid [0, 0.97]", "flow_matching", fm_stops_short, "not_at_data", RV),
    Case("torchdiffeq: odeint to 0.96", "torchdiffeq", torchdiffeq_stops_short, "not_at_data", RV),
    # sign_flip
    Case("plain: x -= dt v", "plain", plain_sign_flip, "sign_flip", C),
    Case("plain: (t - t_next) v, float64", "float64", plain_sign_flip_rev, "sign_flip", {**RV, **F64}),
    Case("diffusers: -v to scheduler.step", "diffusers", diffusers_negated, "sign_flip", DIFF),
    Case("k-diffusion: D = x + sigma v", "kdiff", kdiff_sign, "sign_flip", C),
    Case("flow_matching: -v", "flow_matching", fm_sign, "sign_flip", RV),
    Case("torchdiffeq: -v", "torchdiffeq", torchdiffeq_sign, "sign_flip", RV),
    Case("CUDA: x -= dt v", "cuda", plain_sign_flip, "sign_flip", _cuda(C), cuda=True),
    # unknown_mismatch
    Case("plain: half the velocity", "plain", plain_half_velocity, "unknown_mismatch", C),
    Case("plain: a leftover x drift, float64", "float64", plain_drift, "unknown_mismatch", {**RV, **F64}),
    Case("diffusers: fresh noise added each step", "diffusers", diffusers_scale_noise_renoise, "unknown_mismatch",
         DIFF),
    Case("k-diffusion: D = x - v (sigma dropped)", "kdiff", kdiff_no_sigma, "unknown_mismatch", C),
    Case("flow_matching: v * (1 + t)", "flow_matching", fm_wrong_scale_v, "unknown_mismatch", RV),
]


# ---- prediction functions (check_prediction): fn(x, v, t) -> prediction -----------------------------------

@dataclass(frozen=True)
class PredCase:
    name: str
    style: str
    fn: Callable[..., Any]
    convention: str
    kind: str
    expect: str | None
    kwargs: dict = field(default_factory=dict)


def _np_pred_x1(x, v, t):  # numpy style, converted back
    xn, vn, tn = x.numpy(), v.numpy(), t.numpy()
    return torch.from_numpy(xn + (1 - tn) * vn)


def _hy_pred_x0_as_data(x, v, t):  # Hunyuan's naming: "pred_x0 = x - t v", used as the data (#124)
    return x - t * v


def _pred_in_place(x, v, t):
    x -= t * v  # conventional pred_x0, but written into the caller's x
    return x


PRED_RIGHT = [
    PredCase("conventional pred_x0 = x - sigma v", "torch", lambda x, v, t: x - t * v, "conventional", "data", None),
    PredCase("reversed pred_x1 = x + (1 - t) v", "torch", lambda x, v, t: x + (1 - t) * v, "reversed", "data", None),
    PredCase("reversed noise = x - t v", "torch", lambda x, v, t: x - t * v, "reversed", "noise", None),
    PredCase("conventional noise = x + (1 - sigma) v", "torch", lambda x, v, t: x + (1 - t) * v, "conventional",
             "noise", None),
    PredCase("reversed pred_x1, numpy", "numpy", _np_pred_x1, "reversed", "data", None),
    PredCase("pred_x0 from 0-1000 timesteps", "torch", lambda x, v, t: x - t / 1000 * v, "conventional", "data",
             None, {"time_scale": 1000.0}),
    PredCase("pred_x0 with a Python float t", "scalar", lambda x, v, t: x - t * v, "conventional", "data", None,
             {"t_form": "scalar"}),
    PredCase("pred_x1 with (B,) t, float64", "float64",
             lambda x, v, t: x + (1 - t)[:, None] * v, "reversed", "data", None,
             {"t_form": "batch", "dtype": torch.float64}),
]

PRED_WRONG = [
    PredCase("#124: x - t v as the data", "torch", _hy_pred_x0_as_data, "reversed", "data", "noise_as_data"),
    PredCase("#124, scalar t", "scalar", _hy_pred_x0_as_data, "reversed", "data", "noise_as_data", {"t_form": "scalar"}),
    PredCase("conventional: noise endpoint as x0, float64", "float64", lambda x, v, t: x + (1 - t) * v,
             "conventional", "data", "noise_as_data", {"dtype": torch.float64}),
    PredCase("sign: x + sigma v", "torch", lambda x, v, t: x + t * v, "conventional", "data", "sign_flip"),
    PredCase("sign: x - (1 - t) v, numpy", "numpy",
             lambda x, v, t: torch.from_numpy(x.numpy() - (1 - t.numpy()) * v.numpy()), "reversed", "data",
             "sign_flip"),
    PredCase("sign, float64", "float64", lambda x, v, t: x + t * v, "conventional", "data", "sign_flip",
             {"dtype": torch.float64}),
    PredCase("t for sigma: x - (1 - sigma) v", "torch", lambda x, v, t: x - (1 - t) * v, "conventional", "data",
             "t_vs_sigma"),
    PredCase("t for sigma: x + t v (reversed)", "scalar", lambda x, v, t: x + t * v, "reversed", "data",
             "t_vs_sigma", {"t_form": "scalar"}),
    PredCase("t for sigma, float64", "float64", lambda x, v, t: x - (1 - t) * v, "conventional", "data",
             "t_vs_sigma", {"dtype": torch.float64}),
    PredCase("0-1000 timestep used as sigma", "torch", lambda x, v, t: x - t * v, "conventional", "data",
             "time_scale", {"time_scale": 1000.0}),
    PredCase("divides by 1000 twice", "scalar", lambda x, v, t: x - t / 1000 * v, "conventional", "data",
             "time_scale", {"t_form": "scalar"}),
    PredCase("0-1000 timestep, float64", "float64", lambda x, v, t: x + (1 - t) * v, "reversed", "data",
             "time_scale", {"time_scale": 1000.0, "dtype": torch.float64}),
    PredCase("t rounded to fp16", "torch", lambda x, v, t: x + (1 - t.half().float()) * v, "reversed", "data",
             "fp16_time"),
    PredCase("t * 1000 in fp16 (Hunyuan3D-2), numpy", "numpy", lambda x, v, t: torch.from_numpy(x.numpy() - (t.numpy() * 1000).astype("float16").astype("float32") / 1000 * v.numpy()),
             "conventional", "data", "fp16_time"),
    PredCase("t in bf16, float64", "float64", lambda x, v, t: x - t.bfloat16().double() * v, "conventional", "data",
             "fp16_time", {"dtype": torch.float64}),
    PredCase("writes into x", "torch", _pred_in_place, "conventional", "data", "mutates_input"),
    PredCase("writes into v, numpy", "numpy", lambda x, v, t: x - t * v.mul_(1.0) - t * v.mul_(0.0), "conventional", "data",
             "mutates_input"),
    PredCase("clamps v in place, float64", "float64", lambda x, v, t: x - t * v.clamp_(-0.5, 0.5),
             "conventional", "data", "mutates_input", {"dtype": torch.float64}),
    PredCase("returns a list", "torch", lambda x, v, t: (x - t * v).tolist(), "conventional", "data", "bad_output"),
    PredCase("drops a dimension, scalar t", "scalar", lambda x, v, t: (x - t * v)[:, :2], "conventional", "data", "bad_output",
             {"t_form": "scalar"}),
    PredCase("NaN where t > 0.9, float64", "float64", lambda x, v, t: torch.where(t > 0.9, float("nan"), x - t * v),
             "conventional", "data", "bad_output", {"dtype": torch.float64}),
    PredCase("0.9 sigma v", "torch", lambda x, v, t: x - 0.9 * t * v, "conventional", "data", "unknown_mismatch"),
    PredCase("x + (1 - t)^2 v", "scalar", lambda x, v, t: x + (1 - t) ** 2 * v, "reversed", "data",
             "unknown_mismatch", {"t_form": "scalar"}),
    PredCase("VP formula on a straight path, float64", "float64",
             lambda x, v, t: (x - t * v) / (1 - t + 1e-3), "conventional", "data", "unknown_mismatch",
             {"dtype": torch.float64}),
]
