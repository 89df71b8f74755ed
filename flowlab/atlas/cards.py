"""The cards: pinned libraries, a fixed probe network, one Card per system, and the helpers the cards
answer issues with (see :mod:`flowlab.atlas`)."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .. import functional as F
from ..errors import FlowlabError
from ..schedules import shift_noise_level

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
