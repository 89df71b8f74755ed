"""Convention cards: what each real system means by its time, and a check that runs its own code.

A :class:`Card` states, for one system, the direction of time, the interpolant, what the network
outputs, the data and noise predictions, the guidance-scale convention and the known traps. Each
card has a verifier (:func:`verify`) that runs the system's own code next to flowlab's on the same
inputs and returns :class:`Measurement` rows (max abs differences); ``tests/test_atlas_*.py`` make
the same comparisons independently and notebook 05 prints the table.

The libraries are optional test dependencies, pinned in :data:`PINS`. Two of them cannot be
installed with their declared dependencies beside a CPU torch (torchcfm pulls torchdyn and
pytorch-lightning, k-diffusion pulls torchvision and wandb): they are installed with
``pip install --no-deps`` and only the modules the cards need are imported. For k-diffusion that is
``k_diffusion/sampling.py`` alone, loaded from the installed distribution by
:func:`load_k_diffusion_sampling` (its package ``__init__`` imports torchvision).

Notation (notebooks/NOTATION.md): D = data, E = standard Gaussian noise, v = network output.
Conventional ``sigma`` runs 1 -> 0 (data at 0); reversed ``t`` runs 0 -> 1 (data at 1).
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from . import functional as F
from .conventions import CONVENTIONAL, REVERSED, Convention
from .errors import FlowlabError
from .schedules import shift_noise_level

__all__ = [
    "PINS", "NO_DEPS", "require", "load_k_diffusion_sampling", "ProbeNet", "probe_network",
    "Card", "CARDS", "card", "Measurement", "verify", "atlas_table", "paths_table", "load_scheduler_fixture",
    "diffusers_pred_x0", "diffusers_terminal_sigma",
    "ddim_flow_time", "ddim_to_flow", "ddim_flow_velocity",
]

#: Exact versions the cards were verified with (pip names). Install with
#: ``pip install diffusers==... flow-matching==... torchdiffeq==... POT==... torchsde==...`` and
#: ``pip install --no-deps torchcfm==... k-diffusion==...`` (see :data:`NO_DEPS`).
PINS: dict[str, str] = {
    "diffusers": "0.42.1",
    "flow-matching": "1.0.10",
    "torchdiffeq": "0.2.5",
    "torchcfm": "1.0.7",
    "POT": "0.9.7.post1",
    "k-diffusion": "0.1.1.post1",
    "torchsde": "0.2.6",
}
#: Packages to install with ``--no-deps`` (their declared dependencies pull torchvision / a CUDA torch).
NO_DEPS: tuple[str, ...] = ("torchcfm", "k-diffusion")

_MODULE_TO_PIP = {"diffusers": "diffusers", "flow_matching": "flow-matching", "torchcfm": "torchcfm",
                  "k_diffusion": "k-diffusion", "torchdiffeq": "torchdiffeq", "torchsde": "torchsde", "ot": "POT"}


def _pip_hint(module: str) -> str:
    pip = _MODULE_TO_PIP.get(module.split(".")[0], module)
    pin = f"{pip}=={PINS[pip]}" if pip in PINS else pip
    flag = "--no-deps " if pip in NO_DEPS else ""
    return f"pip install {flag}{pin}"


def require(module: str) -> types.ModuleType:
    """Import ``module`` (e.g. ``"diffusers"``) or raise :class:`FlowlabError` with the pip line to fix it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlowlabError(f"this card needs {module!r}, which is not importable ({exc}); "
                           f"install it with `{_pip_hint(module)}`") from None


_KD_ALIAS = "_flowlab_k_diffusion"


def _append_dims(x: Tensor, target_dims: int) -> Tensor:
    """Add trailing singleton dimensions to ``x`` until it has ``target_dims`` dimensions."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims, more than the target {target_dims}")
    return x.reshape(*x.shape, *([1] * missing))


def load_k_diffusion_sampling() -> types.ModuleType:
    """k-diffusion's ``sampling`` module (``sample_euler``, ``sample_heun``, ``get_sigmas_karras`` ...).

    If the whole ``k_diffusion`` package imports, its ``sampling`` module is returned. Otherwise (the
    usual case beside a CPU torch: the package ``__init__`` imports torchvision, wandb, clip ...) the
    file ``k_diffusion/sampling.py`` of the installed distribution (``pip install --no-deps
    k-diffusion``) is loaded on its own under a private package name. Of ``k_diffusion.utils`` the
    sampler uses only ``append_dims``; the private package provides flowlab's own one-line version,
    so nothing of k-diffusion is copied and the sampler code that runs is k-diffusion's.
    Needs torchsde, torchdiffeq and scipy (imported at the top of sampling.py).
    """
    try:
        return importlib.import_module("k_diffusion.sampling")
    except ImportError:
        pass
    if f"{_KD_ALIAS}.sampling" in sys.modules:
        return sys.modules[f"{_KD_ALIAS}.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise FlowlabError(f"k-diffusion is not installed; install it with `{_pip_hint('k_diffusion')}` "
                           f"(plus torchsde=={PINS['torchsde']} and torchdiffeq=={PINS['torchdiffeq']})")
    path = Path(list(spec.submodule_search_locations)[0]) / "sampling.py"
    if not path.is_file():
        raise FlowlabError(f"k-diffusion is installed but {path} is missing; reinstall `{_pip_hint('k_diffusion')}`")
    pkg = types.ModuleType(_KD_ALIAS)
    pkg.__path__ = []  # a namespace-less package: only the modules registered below exist
    utils = types.ModuleType(f"{_KD_ALIAS}.utils")
    utils.append_dims = _append_dims
    pkg.utils = utils
    sys.modules[_KD_ALIAS] = pkg
    sys.modules[f"{_KD_ALIAS}.utils"] = utils
    mod_spec = importlib.util.spec_from_file_location(f"{_KD_ALIAS}.sampling", path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[f"{_KD_ALIAS}.sampling"] = module
    try:
        mod_spec.loader.exec_module(module)
    except ImportError as exc:
        for name in (f"{_KD_ALIAS}.sampling", f"{_KD_ALIAS}.utils", _KD_ALIAS):
            sys.modules.pop(name, None)
        raise FlowlabError(f"cannot load k-diffusion's sampling.py ({exc}); it needs torchsde=={PINS['torchsde']}, "
                           f"torchdiffeq=={PINS['torchdiffeq']} and scipy") from None
    return module


# ---- a fixed network both sides evaluate ------------------------------------------------------------

class ProbeNet(nn.Module):
    """A small fixed random network ``f(x, t)``: the "model" every card feeds to both libraries.

    Parity needs no trained model, only the same deterministic function on both sides.
    ``x: (B, D)``, ``t``: 0-dim or ``(B,)`` (flow_matching's ODESolver passes a 0-dim time).
    The meaning of the output (velocity, noise, ...) is whatever the card says. Output ``(B, D)``
    in ``x``'s dtype.
    """

    def __init__(self, dim: int, hidden: int = 32, *, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(dim + 1, hidden, generator=gen, dtype=torch.float64) / math.sqrt(dim + 1),
                               requires_grad=False)
        self.w2 = nn.Parameter(torch.randn(hidden, dim, generator=gen, dtype=torch.float64) / math.sqrt(hidden),
                               requires_grad=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        h = torch.tanh(torch.cat([x, t.reshape(-1, 1)], dim=1) @ self.w1.to(x))
        return h @ self.w2.to(x) + 0.5 * x


def probe_network(dim: int = 3, *, seed: int = 0) -> ProbeNet:
    """A :class:`ProbeNet` for ``x: (B, dim)``, seeded (same seed, same function on every machine)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise FlowlabError(f"dim must be a positive integer, got {dim!r}")
    return ProbeNet(dim, seed=seed)


# ---- cards ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Card:
    """One system's timestep convention, as its own code behaves (verified by :func:`verify`).

    Attributes:
        key: short identifier (``"diffusers-euler"``).
        system: what the card is about (library and class).
        pip: the pinned distribution(s) the check runs.
        convention: the flowlab convention it maps to (``"conventional"``, ``"reversed"``, ...).
        time: direction and range of time during sampling.
        interpolant: the forward path.
        network_output: what the network is trained to output.
        data_prediction: the data prediction from the network output.
        noise_prediction: the noise prediction from the network output.
        guidance: the classifier-free-guidance scale convention.
        traps: known pitfalls, each checked by a test or stated with its source.
    """

    key: str
    system: str
    pip: str
    convention: str
    time: str
    interpolant: str
    network_output: str
    data_prediction: str
    noise_prediction: str
    guidance: str
    traps: tuple[str, ...]

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


_CFG_G = "uncond + g (cond - uncond), g = 1: no guidance"
_CFG_W = "(1 + w) cond - w uncond, w = 0: no guidance (w = g - 1)"

CARDS: tuple[Card, ...] = (
    Card(
        key="diffusers-euler", system="diffusers FlowMatchEulerDiscreteScheduler",
        pip=f"diffusers=={PINS['diffusers']}", convention="conventional",
        time="sigma runs 1 -> 0 (timesteps = 1000 sigma); shift s: sigma' = s sigma / (1 + (s - 1) sigma); "
             "dynamic shifting: s = exp(mu)",
        interpolant="x = (1 - sigma) D + sigma E", network_output="v = E - D",
        data_prediction="x - sigma v; step() does not return it (diffusers #10606): use flowlab.atlas.diffusers_pred_x0",
        noise_prediction="x + (1 - sigma) v", guidance=_CFG_G,
        traps=("default set_timesteps shifts the terminal sigma twice (diffusers #13243): shift 3 -> last nonzero "
               "sigma 0.00893 instead of 0.00299",
               "step() keeps a hidden _step_index: reuse the scheduler only after set_timesteps again",
               "the model is called with timesteps = 1000 sigma, not sigma")),
    Card(
        key="diffusers-heun", system="diffusers FlowMatchHeunDiscreteScheduler",
        pip=f"diffusers=={PINS['diffusers']}", convention="conventional",
        time="sigma runs 1 -> 0; every sigma but the first and last is repeated (2 model calls per step)",
        interpolant="x = (1 - sigma) D + sigma E", network_output="v = E - D",
        data_prediction="x - sigma v", noise_prediction="x + (1 - sigma) v", guidance=_CFG_G,
        traps=("len(timesteps) = 2 N - 1 model calls for N steps: the last step (into sigma = 0) is plain Euler",
               "the second call of a step sees the Euler-predicted sample, not the current one")),
    Card(
        key="flow-matching", system="facebookresearch flow_matching (AffineProbPath, CondOTScheduler, ODESolver)",
        pip=f"flow-matching=={PINS['flow-matching']}, torchdiffeq=={PINS['torchdiffeq']}", convention="reversed",
        time="t runs 0 -> 1 (X0 = noise at t = 0, X1 = data at t = 1)",
        interpolant="x_t = alpha_t X1 + sigma_t X0; CondOT: t X1 + (1 - t) X0",
        network_output="dx_t = alpha_t' X1 + sigma_t' X0; CondOT: X1 - X0",
        data_prediction="CondOT: x + (1 - t) v; velocity_to_target in general",
        noise_prediction="CondOT: x - t v; velocity_to_epsilon in general", guidance=_CFG_W,
        traps=("its sigma_t is the NOISE coefficient of the path, not a time (diffusers' sigma is a time)",
               "its x_0 is the noise sample and x_1 the data: the opposite of DDPM naming")),
    Card(
        key="torchcfm", system="torchcfm ConditionalFlowMatcher",
        pip=f"torchcfm=={PINS['torchcfm']} (--no-deps), POT=={PINS['POT']}", convention="reversed",
        time="t runs 0 -> 1 (x0 = source noise, x1 = data)",
        interpolant="x_t = t x1 + (1 - t) x0 + sigma eps (sigma = 0: the straight path)",
        network_output="u_t = x1 - x0", data_prediction="x + (1 - t) v; not provided by the library",
        noise_prediction="x - t v; not provided by the library", guidance="none in the library; " + _CFG_G,
        traps=("its sigma is a small constant noise width, not a time",
               "x0 / x1 are source / target: x0 is the NOISE, as in flow_matching")),
    Card(
        key="k-diffusion", system="k-diffusion samplers (sample_euler, sample_heun)",
        pip=f"k-diffusion=={PINS['k-diffusion']} (--no-deps), torchsde=={PINS['torchsde']}", convention="conventional",
        time="sigma runs sigma_max -> 0 (VE: x = D + sigma E); with a flow model: sigma runs 1 -> 0",
        interpolant="VE x = D + sigma E; a flow model's x = (1 - sigma) D + sigma E plugs in unchanged",
        network_output="a denoiser D(x, sigma); a flow model becomes D = x - sigma v",
        data_prediction="D(x, sigma) itself; = x - sigma v for a wrapped flow model", noise_prediction="(x - D) / sigma", guidance=_CFG_G,
        traps=("to_d(x, sigma, D) = (x - D) / sigma = v: the wrapper makes Karras Euler equal flow-matching Euler",
               "sample_heun's last step into sigma = 0 is Euler (as in diffusers and flowlab)",
               "its sampling module imports fine, its package __init__ needs torchvision")),
    Card(
        key="ddim", system="diffusers DDIMScheduler (VP, epsilon prediction, eta = 0)",
        pip=f"diffusers=={PINS['diffusers']}", convention="conventional (after reparametrisation)",
        time="integer t runs 999 -> 0 (abar: ~0 -> 1); flow time s = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar)) "
             "runs ~1 -> 0",
        interpolant="x = sqrt(abar) D + sqrt(1 - abar) E; x_f = x / (sqrt(abar) + sqrt(1 - abar)) = (1 - s) D + s E",
        network_output="epsilon (the noise E); flow velocity v = E - D = eps - (x - sqrt(1 - abar) eps) / sqrt(abar)",
        data_prediction="(x - sqrt(1 - abar) eps) / sqrt(abar); its pred_original_sample",
        noise_prediction="eps", guidance=_CFG_G,
        traps=("DDIM (eta = 0) is exactly an Euler step of the reparametrised straight flow (Gao et al. 2024)",
               "clip_sample=True (the default) clips the data prediction to [-1, 1] and breaks the equivalence",
               "set_alpha_to_one=False ends at abar_0 < 1: the last step does not reach the data")),
    Card(
        key="hunyuan3d2", system="Hunyuan3D-2 shapegen FlowMatchEulerDiscreteScheduler (hy3dgen 2.0.2)",
        pip="hy3dgen==2.0.2 (fixtures only: tests/data/schedulers)", convention="reversed",
        time="t runs 0 -> 1 (pipeline: sigmas = linspace(0, 1, N); scheduler appends 1.0)",
        interpolant="x = t D + (1 - t) E", network_output="v = D - E",
        data_prediction="x + (1 - t) v (pred_x1); Hunyuan3D-2 #124 mistakes x - t v for it",
        noise_prediction="x - t v; Hunyuan's 'pred_x0' is the NOISE", guidance=_CFG_G,
        traps=("wasted last step: N model calls, the last goes t = 1.0 -> 1.0 (dt = 0), N - 1 effective steps",
               "scale_noise kept from diffusers mixes sigma E + (1 - sigma) D: the conventional direction",
               "the class name and sigma_min / sigma_max say the opposite of what the scheduler does",
               "the model sees t = timesteps / 1000 (fp16-rounded in the pipeline's dtype)")),
)

_BY_KEY = {c.key: c for c in CARDS}


def card(key: str) -> Card:
    """The card named ``key``; unknown keys list the known ones and the closest matches."""
    try:
        return _BY_KEY[key]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(key), list(_BY_KEY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FlowlabError(f"unknown card {key!r}; cards: {', '.join(_BY_KEY)}.{hint}") from None


# ---- helpers the cards use (and answer issues with) -------------------------------------------------

def diffusers_terminal_sigma(shift: float, n_steps: int = 10) -> tuple[float, float]:
    """diffusers #13243 measured: ``(last nonzero sigma of set_timesteps(n_steps), single-shift value)``.

    The default path builds ``linspace(sigma_max, sigma_min, n)`` from the already shifted training
    sigmas and shifts again, so the terminal sigma is ``shift(shift(1 / 1000))``; the single-shift
    value ``shift(1 / 1000)`` is what one shift gives. Conventional sigma (1 -> 0).
    """
    diffusers = require("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(n_steps)
    last = float(sched.sigmas[-2])
    single = float(shift_noise_level(1.0 / sched.config.num_train_timesteps, shift))
    return last, single


def _diffusers_sigma(scheduler: object, timestep: Tensor | float) -> Tensor:
    index = scheduler.step_index
    if index is None:
        if not hasattr(scheduler, "index_for_timestep"):
            raise FlowlabError("the scheduler has no step_index yet and no index_for_timestep(); "
                               "call set_timesteps() first and pass one of scheduler.timesteps")
        index = scheduler.index_for_timestep(torch.as_tensor(timestep).to(scheduler.timesteps.device))
    return scheduler.sigmas[index]


def diffusers_pred_x0(scheduler: object, model_output: Tensor, timestep: Tensor | float, sample: Tensor) -> Tensor:
    """The data prediction for a diffusers flow-matching step (the answer to diffusers #10606).

    Call it with the same arguments as ``scheduler.step(model_output, timestep, sample)``, before
    that call (``step`` advances the hidden step index). Conventional: ``sigma`` runs 1 -> 0, the
    network outputs ``v = E - D``, and the data prediction is ``sample - sigma * model_output`` with
    ``sigma = scheduler.sigmas[step index]``. ``sample, model_output: (B, ...)``; returns ``(B, ...)``
    in ``model_output``'s dtype (the scheduler computes in float32, so does this).
    """
    if not hasattr(scheduler, "sigmas") or not hasattr(scheduler, "step_index"):
        raise FlowlabError(f"expected a diffusers flow-matching scheduler (with sigmas and step_index), "
                           f"got {type(scheduler).__name__}")
    if getattr(getattr(scheduler, "config", None), "invert_sigmas", False):
        raise FlowlabError("this scheduler has invert_sigmas=True: its sigma runs 0 -> 1 and x - sigma v is not the "
                           "data; use flowlab.REVERSED.pred_data with t = sigma")
    sigma = _diffusers_sigma(scheduler, timestep).to(device=sample.device, dtype=torch.float32)
    return (sample.to(torch.float32) - sigma * model_output.to(torch.float32)).to(model_output.dtype)


def ddim_flow_time(alpha_bar: Tensor) -> Tensor:
    """Flow time of a VP noise level: ``s = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar))``, in [0, 1].

    ``abar = 1`` (data) gives ``s = 0``; ``abar -> 0`` (noise) gives ``s -> 1``: conventional direction.
    """
    a, b = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return b / (a + b)


def ddim_to_flow(x: Tensor, alpha_bar: Tensor) -> Tensor:
    """A VP sample ``x = sqrt(abar) D + sqrt(1 - abar) E`` as the straight-path sample
    ``x_f = x / (sqrt(abar) + sqrt(1 - abar)) = (1 - s) D + s E`` (``s`` from :func:`ddim_flow_time`)."""
    a = F.bcast(alpha_bar, x)
    return x / (a.sqrt() + (1 - a).sqrt())


def ddim_flow_velocity(x: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """The straight-flow velocity ``v = E - D`` from an epsilon prediction at a VP sample ``x``:
    ``D = (x - sqrt(1 - abar) eps) / sqrt(abar)``, ``v = eps - D``. Needs ``abar > 0``."""
    a = F.bcast(alpha_bar, x)
    return eps - (x - (1 - a).sqrt() * eps) / a.sqrt()


# ---- measurements ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    """One executed check of a card: ``error`` (a max abs difference unless said) must be ``<= tol``."""

    card: str
    statement: str
    error: float
    tol: float

    @property
    def passed(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.tol


def _maxdiff(a: Tensor, b: Tensor) -> float:
    return float((a.to(torch.float64) - b.to(torch.float64)).abs().max())


def _noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _diffusers_loop(scheduler: object, net: Callable[[Tensor, Tensor], Tensor], x: Tensor) -> Tensor:
    """Run a diffusers scheduler as a pipeline does; the network sees ``timesteps / 1000`` (= sigma)."""
    n_train = scheduler.config.num_train_timesteps
    for t in scheduler.timesteps:
        v = net(x, (t / n_train).expand(x.shape[0]).to(x.dtype))
        x = scheduler.step(v, t, x).prev_sample
    return x


def _verify_diffusers_euler() -> list[Measurement]:
    from .sampling import sample
    from .schedules import shifted, uniform

    diffusers = require("diffusers")
    Euler = diffusers.FlowMatchEulerDiscreteScheduler
    net, x0 = probe_network(3), _noise((8, 3), 1)
    out = []
    for shift in (1.0, 3.0):
        sched = Euler(shift=shift)
        sched.set_timesteps(12)
        ref = _diffusers_loop(sched, net, x0.clone())
        ours = sample(net, x0.clone(), sched.sigmas.clone(), CONVENTIONAL)
        out.append(Measurement("diffusers-euler", f"shift {shift:g}: 12 diffusers steps == flowlab.sample on its sigmas",
                               _maxdiff(ref, ours), 1e-5))
        grid = uniform(12, CONVENTIONAL)[:-1].tolist()
        custom = Euler(shift=shift)
        custom.set_timesteps(sigmas=grid)
        out.append(Measurement("diffusers-euler", f"shift {shift:g}: flowlab.schedules.shifted == diffusers(sigmas=uniform)",
                               _maxdiff(custom.sigmas, shifted(12, CONVENTIONAL, shift)), 1e-6))
    dyn = Euler(use_dynamic_shifting=True)
    mu = 0.8
    dyn.set_timesteps(12, mu=mu)
    base = torch.linspace(1.0, 1.0 / dyn.config.num_train_timesteps, 12, dtype=torch.float64)
    out.append(Measurement("diffusers-euler", "dynamic shifting with mu == SD3 shift with s = exp(mu)",
                           _maxdiff(dyn.sigmas[:-1], shift_noise_level(base, math.exp(mu))), 1e-6))
    last, single = diffusers_terminal_sigma(3.0)
    out.append(Measurement("diffusers-euler", f"#13243 shift 3: last nonzero sigma {last:.5f} = shift applied twice "
                           f"(once: {single:.5f})", abs(last - shift_noise_level(single, 3.0)), 1e-6))
    sched = Euler(shift=3.0)
    sched.set_timesteps(12)
    x, worst = x0.clone(), 0.0
    for i, t in enumerate(sched.timesteps):
        v = net(x, (t / 1000).expand(x.shape[0]))
        worst = max(worst, _maxdiff(diffusers_pred_x0(sched, v, t, x), CONVENTIONAL.pred_data(x, v, sched.sigmas[i])))
        x = sched.step(v, t, x).prev_sample
    out.append(Measurement("diffusers-euler", "#10606 diffusers_pred_x0 == CONVENTIONAL.pred_data (x - sigma v)",
                           worst, 1e-6))
    return out


def _verify_diffusers_heun() -> list[Measurement]:
    from .sampling import sample

    diffusers = require("diffusers")
    net, x0 = probe_network(3), _noise((8, 3), 2)
    out = []
    for shift in (1.0, 3.0):
        sched = diffusers.FlowMatchHeunDiscreteScheduler(shift=shift)
        sched.set_timesteps(8)
        ref = _diffusers_loop(sched, net, x0.clone())
        sigmas = torch.unique_consecutive(sched.sigmas)
        ours = sample(net, x0.clone(), sigmas, CONVENTIONAL, method="heun")
        out.append(Measurement("diffusers-heun", f"shift {shift:g}: 8 Heun steps (15 calls) == flowlab.sample(method='heun')",
                               _maxdiff(ref, ours), 1e-5))
    return out


def _verify_flow_matching() -> list[Measurement]:
    from .sampling import sample
    from .schedules import uniform

    require("flow_matching")
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.solver import ODESolver

    dt64 = torch.float64
    path = AffineProbPath(scheduler=CondOTScheduler())
    noise, data, v = _noise((16, 3), 3, dt64), _noise((16, 3), 4, dt64), _noise((16, 3), 5, dt64)
    t = torch.rand(16, generator=torch.Generator().manual_seed(6), dtype=dt64) * 0.98 + 0.01
    ps = path.sample(x_0=noise, x_1=data, t=t)
    out = [Measurement("flow-matching", "CondOT path x_t == REVERSED.interpolate",
                       _maxdiff(ps.x_t, REVERSED.interpolate(data, noise, t)), 1e-12),
           Measurement("flow-matching", "CondOT dx_t == REVERSED.velocity_target (D - E)",
                       _maxdiff(ps.dx_t, REVERSED.velocity_target(data, noise, t)), 1e-12)]
    x = ps.x_t
    a, b, da, db = REVERSED.coefficients(F.bcast(t, x))
    d_hat = REVERSED.pred_data(x, v, t)
    e_hat = REVERSED.pred_noise(x, v, t)
    tc = t.reshape(-1, 1)  # its conversions take t shaped to broadcast against x
    pairs = {
        "velocity_to_target": (path.velocity_to_target(v, x, tc), d_hat),
        "velocity_to_epsilon": (path.velocity_to_epsilon(v, x, tc), e_hat),
        "target_to_velocity": (path.target_to_velocity(d_hat, x, tc), REVERSED.velocity_from_data(x, d_hat, t)),
        "epsilon_to_velocity": (path.epsilon_to_velocity(e_hat, x, tc), REVERSED.velocity_from_noise(x, e_hat, t)),
        "target_to_epsilon": (path.target_to_epsilon(d_hat, x, tc), F.data_to_noise(x, d_hat, a, b)),
        "epsilon_to_target": (path.epsilon_to_target(e_hat, x, tc), F.noise_to_data(x, e_hat, a, b)),
    }
    worst = max(_maxdiff(lib, ours) for lib, ours in pairs.values())
    out.append(Measurement("flow-matching", "its six conversions == flowlab's (CondOT, float64)", worst, 1e-12))
    net, x_init = probe_network(3), _noise((8, 3), 7, dt64)
    grid = uniform(10, REVERSED, dtype=dt64)
    ref = ODESolver(velocity_model=net).sample(x_init=x_init, step_size=None, method="euler", time_grid=grid)
    ours = sample(net, x_init.clone(), grid, REVERSED)
    out.append(Measurement("flow-matching", "ODESolver(method='euler') on 10 steps == flowlab.sample(REVERSED)",
                           _maxdiff(ref, ours), 1e-12))
    return out


def _verify_torchcfm() -> list[Measurement]:
    require("torchcfm")
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    dt64 = torch.float64
    x0, x1 = _noise((16, 3), 8, dt64), _noise((16, 3), 9, dt64)
    t = torch.rand(16, generator=torch.Generator().manual_seed(10), dtype=dt64)
    fm = ConditionalFlowMatcher(sigma=0.0)
    t_out, xt, ut = fm.sample_location_and_conditional_flow(x0, x1, t=t)
    out = [Measurement("torchcfm", "sigma = 0: x_t == REVERSED.interpolate(D = x1, E = x0)",
                       _maxdiff(xt, REVERSED.interpolate(x1, x0, t_out)), 1e-12),
           Measurement("torchcfm", "u_t == REVERSED.velocity_target (D - E)",
                       _maxdiff(ut, REVERSED.velocity_target(x1, x0, t_out)), 1e-12)]
    fm = ConditionalFlowMatcher(sigma=0.1)
    t_out, xt, ut, eps = fm.sample_location_and_conditional_flow(x0, x1, t=t, return_noise=True)
    out.append(Measurement("torchcfm", "sigma = 0.1: x_t - sigma eps == REVERSED.interpolate",
                           _maxdiff(xt - 0.1 * eps, REVERSED.interpolate(x1, x0, t_out)), 1e-12))
    return out


def _verify_k_diffusion() -> list[Measurement]:
    from .sampling import sample
    from .schedules import shifted

    kd = load_k_diffusion_sampling()
    dt64 = torch.float64
    net, x0 = probe_network(3), _noise((8, 3), 11, dt64)

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:  # a flow model as a k-diffusion denoiser
        return x - F.bcast(sigma, x) * net(x, sigma)

    sigmas = shifted(10, CONVENTIONAL, 3.0, dtype=dt64)
    out = []
    for name, method in (("sample_euler", "euler"), ("sample_heun", "heun")):
        ref = getattr(kd, name)(denoiser, x0.clone(), sigmas, disable=True)
        ours = sample(net, x0.clone(), sigmas, CONVENTIONAL, method=method)
        out.append(Measurement("k-diffusion", f"{name} with D = x - sigma v == flowlab.sample(method='{method}')",
                               _maxdiff(ref, ours), 1e-12))
    return out


def _verify_ddim() -> list[Measurement]:
    from .sampling import sample

    diffusers = require("diffusers")
    sched = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(10)
    eps_net, x_vp = probe_network(3), _noise((8, 3), 12, torch.float64)
    abar_all = sched.alphas_cumprod
    abar = torch.cat([abar_all[sched.timesteps], torch.ones(1)]).to(torch.float64)  # the last step lands on abar = 1
    ts_int = sched.timesteps
    x_ref, x = x_vp.clone(), x_vp.clone()
    for t in ts_int:
        eps = eps_net(x_ref, (t / 1000.0).expand(x_ref.shape[0]))
        x_ref = sched.step(eps, t, x_ref, eta=0.0).prev_sample
    s_grid = ddim_flow_time(abar)

    def flow_model(xf: Tensor, s: Tensor) -> Tensor:
        i = int((s_grid - s[0]).abs().argmin())  # the flow time is one of the grid points
        a = abar[i]
        xv = xf * (a.sqrt() + (1 - a).sqrt())
        return ddim_flow_velocity(xv, eps_net(xv, (ts_int[i] / 1000.0).expand(xf.shape[0])), a)

    # DDPM's first level is not pure noise (abar_999 > 0), so the grid starts just below s = 1
    ours = sample(flow_model, ddim_to_flow(x_vp.clone(), abar[0]), s_grid, CONVENTIONAL, check_schedule=False)
    return [Measurement("ddim", "10 DDIM steps (eta 0) == flowlab Euler on x_f = x / (sqrt(abar) + sqrt(1 - abar))",
                        _maxdiff(x_ref, ours), 1e-5)]


def _verify_hunyuan() -> list[Measurement]:
    from .schedules import hunyuan_compat
    from .sampling import sample

    fx = load_scheduler_fixture("hunyuan3d2")
    out = []
    worst_sched, worst_traj, worst_pred = 0.0, 0.0, 0.0
    for case in fx["cases"]:
        n = case["num_inference_steps"]
        ours = hunyuan_compat(n)
        worst_sched = max(worst_sched, _maxdiff(torch.tensor(case["sigmas"]), ours))
        x0 = torch.tensor(case["x_init"])
        vs = [torch.tensor(v) for v in case["model_outputs"]]
        calls = iter(vs)
        traj = sample(lambda x, t: next(calls), x0.clone(), ours, REVERSED)
        worst_traj = max(worst_traj, _maxdiff(torch.tensor(case["final"]), traj))
    probe = fx["scale_noise"]
    mixed = torch.tensor(probe["output"])
    sig = torch.tensor(probe["sigma"])
    conv = CONVENTIONAL.interpolate(torch.tensor(probe["sample"]), torch.tensor(probe["noise"]), sig)
    out.append(Measurement("hunyuan3d2", "hy3dgen sigmas == flowlab.schedules.hunyuan_compat(N)", worst_sched, 0.0))
    out.append(Measurement("hunyuan3d2", "hy3dgen step loop == flowlab.sample(REVERSED) on hunyuan_compat",
                           worst_traj, 1e-6))
    last = fx["cases"][-1]
    out.append(Measurement("hunyuan3d2", f"wasted last step: after {last['num_inference_steps']} calls the state is the "
                           f"state after {last['num_inference_steps'] - 1}",
                           _maxdiff(torch.tensor(last["states"][-1]), torch.tensor(last["states"][-2])), 0.0))
    out.append(Measurement("hunyuan3d2", "hy3dgen scale_noise == CONVENTIONAL.interpolate (trap 3)",
                           _maxdiff(mixed, conv), 1e-6))
    return out


_VERIFIERS: dict[str, Callable[[], list[Measurement]]] = {
    "diffusers-euler": _verify_diffusers_euler,
    "diffusers-heun": _verify_diffusers_heun,
    "flow-matching": _verify_flow_matching,
    "torchcfm": _verify_torchcfm,
    "k-diffusion": _verify_k_diffusion,
    "ddim": _verify_ddim,
    "hunyuan3d2": _verify_hunyuan,
}


def verify(key: str) -> list[Measurement]:
    """Run card ``key``'s check: the system's own code next to flowlab's on the same inputs."""
    card(key)
    with torch.no_grad():
        return _VERIFIERS[key]()


def atlas_table(measurements: list[Measurement]) -> str:
    """One markdown table of all cards, each row with the number of its executed checks that passed.

    Prints tolerances, never the measured floats (those differ in the last bits between machines).
    """
    head = ("| card | convention | time | network output | data prediction | CFG scale | checks |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for c in CARDS:
        rows = [m for m in measurements if m.card == c.key]
        ok = sum(m.passed for m in rows)
        tol = max((m.tol for m in rows), default=float("nan"))
        status = f"{ok}/{len(rows)} pass, max error <= {tol:.0e}" if rows else "not run"
        time_short = c.time.split(";")[0].split(" (")[0]
        cfg = "w = g - 1 (0 = none)" if c.guidance == _CFG_W else "g (1 = none)"
        lines.append(f"| {c.system} | {c.convention} | {time_short} | {c.network_output} | "
                     f"{c.data_prediction.split('; ')[0]} | {cfg} | {status} |")
    return "\n".join(lines)


def paths_table() -> str:
    """One markdown table of every card's path: interpolant, network output, data and noise predictions."""
    lines = ["| card | convention | interpolant | network output | data prediction | noise prediction |",
             "|---|---|---|---|---|---|"]
    for c in CARDS:
        lines.append(f"| {c.system.split(' (')[0]} | {c.convention} | {c.interpolant} | {c.network_output} | "
                     f"{c.data_prediction.split('; ')[0]} | {c.noise_prediction} |")
    return "\n".join(lines)


# ---- fixtures ----------------------------------------------------------------------------------------

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "schedulers"


def load_scheduler_fixture(name: str) -> dict:
    """Load ``tests/data/schedulers/<name>.json`` (written by tools/make_scheduler_fixtures.py)."""
    import json

    path = FIXTURE_DIR / f"{name}.json"
    if not path.is_file():
        raise FlowlabError(f"scheduler fixture {path} is missing; regenerate it with "
                           "`/work/venvs/hy3dgen/bin/python tools/make_scheduler_fixtures.py --update` "
                           "(needs hy3dgen) or check out tests/data/schedulers/")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
