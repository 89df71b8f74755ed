"""A small MLP velocity model for toy data, trained by flow matching in any convention.

The model is ``v = model(x, t)``: ``x: (B, D)`` points, ``t: (B,)`` times **in the convention's own
time** (conventional: ``sigma`` in [0, 1], sigma = 1 is noise; reversed: ``t`` in [0, 1], t = 0 is
noise), output ``v: (B, D)``, the velocity of that convention (conventional ``E - D``, reversed
``D - E`` in expectation). A model remembers the convention it was trained in
(:attr:`VelocityMLP.convention`); to drive it in the other direction wrap it with
:func:`flowlab.sampling.flip` (``t' = 1 - t``, ``v' = -v``), never by reinterpreting its time.

Training (:func:`train`) regresses the convention's own target::

    D ~ data, E ~ N(0, I), t ~ U(0, 1)
    x_t    = convention.interpolate(D, E, t)        conventional (1 - sigma) D + sigma E; reversed t D + (1 - t) E
    target = convention.velocity_target(D, E, t)    conventional E - D;                   reversed D - E
    loss   = mean |model(x_t, t) - target|^2

The sign of the target is read from the convention object, never written here.

Files (:func:`save_model` / :func:`load_model`) are safetensors with a metadata dict: the format
tag, the convention name and the architecture (:class:`MLPConfig` as JSON). Loading checks all of
them and raises :class:`~flowlab.errors.FlowlabError` on a missing, corrupt or mismatched file.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .conventions import CONVENTIONS, Convention, get_convention
from .errors import FlowlabError
from .inputs import check_tensor

__all__ = ["MLPConfig", "VelocityMLP", "time_embedding", "training_pair", "flow_matching_loss",
           "TrainResult", "train", "save_model", "load_model", "FORMAT"]

#: Value of the ``format`` metadata key of every file :func:`save_model` writes.
FORMAT = "flowlab.VelocityMLP/1"


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of a time in [0, 1]: ``[cos(pi 2^k t), sin(pi 2^k t)]`` for k < dim / 2.

    Octave frequencies from half a period over [0, 1] (k = 0, a monotone feature) up to
    ``2^(dim/2 - 1)`` half periods, so the network sees both coarse and fine changes in ``t``.
    The features are the same function of the number in either convention: what ``t`` *means*
    (where noise is) is fixed by the convention the model was trained in.

    t: (B,) -> (B, dim) in ``t``'s dtype (``dim`` even).
    """
    k = torch.arange(dim // 2, device=t.device, dtype=t.dtype)
    args = math.pi * t[:, None] * torch.exp2(k)[None]  # (B, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


@dataclass(frozen=True)
class MLPConfig:
    """Architecture of :class:`VelocityMLP`.

    Attributes:
        dim: data dimension ``D`` (2 for the 2D toys, 3 for the 3D ones).
        hidden: width of the hidden layers.
        depth: number of hidden layers (each ``Linear -> SiLU``).
        time_dim: size of the sinusoidal time embedding (even).
    """

    dim: int = 2
    hidden: int = 64
    depth: int = 4
    time_dim: int = 16

    def __post_init__(self) -> None:
        for name in ("dim", "hidden", "depth", "time_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise FlowlabError(f"MLPConfig.{name} must be a positive integer, got {value!r}")
        if self.time_dim % 2:
            raise FlowlabError(f"MLPConfig.time_dim must be even (cos and sin pairs), got {self.time_dim}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class VelocityMLP(nn.Module):
    """``v = net(cat(x, time_embedding(t)))``: a plain MLP with SiLU activations.

    Args:
        config: the architecture.
        convention: the convention whose time ``t`` the model reads and whose velocity it outputs
            (a :class:`~flowlab.conventions.Convention` or its registered name).

    Call: ``x: (B, D)``, ``t: (B,)`` (or a 0-dim tensor, broadcast to all points) in the
    convention's own time, returns ``v: (B, D)`` in ``x``'s dtype. The network computes in its
    parameters' dtype (float32 unless moved with ``.to(torch.float64)``), so a float64 ``x`` with a
    float32 model is evaluated in float32.
    """

    def __init__(self, config: MLPConfig, convention: Convention | str) -> None:
        super().__init__()
        self.config = config
        self.convention = get_convention(convention)
        layers: list[nn.Module] = []
        width = config.dim + config.time_dim
        for _ in range(config.depth):
            layers += [nn.Linear(width, config.hidden), nn.SiLU()]
            width = config.hidden
        layers.append(nn.Linear(width, config.dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        check_tensor(x, "x", where="VelocityMLP")
        check_tensor(t, "t", where="VelocityMLP", floating=False)
        if x.ndim != 2 or x.shape[1] != self.config.dim:
            raise FlowlabError(f"VelocityMLP expects x of shape (B, {self.config.dim}), got {tuple(x.shape)}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise FlowlabError(f"VelocityMLP expects t of shape (B,) = ({x.shape[0]},) or a scalar tensor, "
                               f"got {tuple(t.shape)}")
        p = self.net[0].weight
        xp, tp = x.to(p.dtype), t.to(p.dtype)
        v = self.net(torch.cat([xp, time_embedding(tp, self.config.time_dim)], dim=-1))
        return v.to(x.dtype)

    def extra_repr(self) -> str:
        return f"convention={self.convention.name}"


# ---- training -------------------------------------------------------------------------------

def training_pair(convention: Convention, data: Tensor, noise: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The regression input and target of flow matching in ``convention``.

    data, noise: (B, D); t: (B,) in the convention's time. Returns ``(x_t, target)``, both (B, D):
    ``x_t = convention.interpolate(data, noise, t)``, ``target = convention.velocity_target(...)``
    (``E - D`` conventional, ``D - E`` reversed).
    """
    return convention.interpolate(data, noise, t), convention.velocity_target(data, noise, t)


def flow_matching_loss(model: VelocityMLP, data: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """Mean squared error between ``model(x_t, t)`` and the target of the model's own convention."""
    x_t, target = training_pair(model.convention, data, noise, t)
    return (model(x_t, t) - target).square().mean()


@dataclass
class TrainResult:
    """What :func:`train` returns: the model and the loss of every step, ``(steps,)``.

    The model comes back frozen (eval mode, ``requires_grad`` off) so sampling builds no autograd graph;
    call ``model.requires_grad_(True)`` to train it further.
    """

    model: VelocityMLP
    losses: Tensor


def train(
    data: Tensor,
    convention: Convention | str,
    *,
    config: MLPConfig | None = None,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
) -> TrainResult:
    """Train a :class:`VelocityMLP` by flow matching on a fixed set of data points.

    Args:
        data: ``(N, D)`` training points (e.g. ``flowlab.toys.sample_toy(...)``); the model and
            the training run on ``data``'s device, in float32 unless ``data`` is float64.
        convention: the convention to train in; the target comes from its ``velocity_target``.
        config: architecture; default ``MLPConfig(dim=D)``. Its ``dim`` must equal ``D``.
        steps: optimizer steps (Adam, learning rate cosine-decayed from ``lr`` to ``lr / 100``).
        batch_size: points per step, drawn with replacement from ``data``.
        lr: peak learning rate.
        seed: seeds the initial weights and every random draw (batches, ``E``, ``t``). The global
            torch RNG is left untouched. On CPU with a fixed thread count the result is
            bit-for-bit reproducible.

    Each step draws ``t ~ U(0, 1)`` in the convention's own time (uniform is symmetric, so both
    conventions see the same distribution of noise levels).
    """
    convention = get_convention(convention)
    config = _check_train_args(data, config, steps, batch_size, lr, seed)

    device = data.device
    dtype = torch.float64 if data.dtype == torch.float64 else torch.float32
    _check_train_fits(data, config, batch_size, dtype)
    data = data.to(dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VelocityMLP(config, convention)
    model = model.to(device=device, dtype=dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 100)
    losses = torch.empty(steps, dtype=dtype, device=device)
    n = data.shape[0]
    model.train()
    for i in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen, device=device)
        d = data[idx]
        e = torch.randn(d.shape, generator=gen, device=device, dtype=dtype)
        t = torch.rand(batch_size, generator=gen, device=device, dtype=dtype)
        loss = flow_matching_loss(model, d, e, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.detach()
    model.eval().requires_grad_(False)
    losses = losses.cpu()
    bad = (~torch.isfinite(losses)).nonzero()
    if bad.numel():
        scale = float(data.abs().max())
        raise FlowlabError(f"train: the loss became {float(losses[bad[0, 0]])} at step {int(bad[0, 0])} of {steps} (the "
                           f"largest |data| value is {scale:.3g}); the network diverged. Standardise the data to values "
                           "of order 1 ((data - mean) / std) or lower lr")
    return TrainResult(model=model, losses=losses)


def _check_train_args(data: Tensor, config: "MLPConfig | None", steps: int, batch_size: int, lr: float,
                      seed: int) -> "MLPConfig":
    """:func:`train`'s argument checks (a FlowlabError for each bad one); the config, defaulted from ``data``."""
    from .limits import check_seed

    check_seed(seed, "seed")
    if isinstance(data, Tensor):
        check_tensor(data, "data", where="train")
    if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[0] < 1 or not data.is_floating_point():
        shape = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
        raise FlowlabError(f"train expects data as a floating tensor of shape (N, D) with N >= 1, got {shape}")
    if not bool(torch.isfinite(data).all()):
        raise FlowlabError("train: data contains NaN or inf; clean the training points first")
    config = config if config is not None else MLPConfig(dim=data.shape[1])
    if config.dim != data.shape[1]:
        raise FlowlabError(f"train: config.dim = {config.dim} but the data has D = {data.shape[1]}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise FlowlabError(f"train: {name} must be a positive integer, got {value!r}")
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise FlowlabError(f"train: lr must be a positive finite number, got {lr!r}")
    return config


def _check_train_fits(data: Tensor, config: "MLPConfig", batch_size: int, dtype: torch.dtype) -> None:
    """Refuse a batch whose activations (forward + backward, every layer) cannot fit in memory."""
    from .limits import check_memory

    width = config.dim + config.time_dim + config.hidden * config.depth * 2 + config.dim
    nbytes = 4.0 * batch_size * width * torch.finfo(dtype).bits / 8
    check_memory(nbytes, f"train: batch_size = {batch_size}", "use a smaller batch_size (512 is the default)",
                 data.device)


# ---- files ----------------------------------------------------------------------------------

def save_model(model: VelocityMLP, path: str | os.PathLike) -> None:
    """Write ``model`` to a safetensors file with metadata ``format``, ``convention``, ``config``.

    Only conventions in the registry (:data:`flowlab.conventions.CONVENTIONS`) can be saved, so
    that loading can rebuild them by name.
    """
    from safetensors.torch import save

    from .io import write_atomic

    if not isinstance(model, VelocityMLP):
        raise FlowlabError(f"save_model expects a VelocityMLP, got {type(model).__name__}")
    name = model.convention.name
    if CONVENTIONS.get(name) != model.convention:
        raise FlowlabError(f"save_model: convention {name!r} is not a registered convention "
                           f"({', '.join(sorted(CONVENTIONS))}); a file could not be loaded back")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "convention": name, "config": json.dumps(model.config.as_dict(), sort_keys=True)}
    write_atomic(os.fspath(path), save(tensors, metadata=meta))


def load_model(
    path: str | os.PathLike,
    *,
    convention: Convention | str | None = None,
    config: MLPConfig | None = None,
    device: torch.device | str = "cpu",
) -> VelocityMLP:
    """Load a model written by :func:`save_model` (frozen like :func:`train`'s, in the saved dtype).

    Args:
        path: the ``.safetensors`` file.
        convention: if given, the convention the caller will use the model in; a file trained in
            another convention is refused (wrap it with :func:`flowlab.sampling.flip` instead).
        config: if given, the architecture the caller expects; a different one is refused.
        device: where to put the weights.

    Raises :class:`FlowlabError` when the file is missing, is not a safetensors file, lacks the
    flowlab metadata, or disagrees with ``convention`` / ``config`` or with its own metadata.
    """
    from safetensors import safe_open

    from .device import resolve_device

    path = os.fspath(path)
    device = resolve_device(device)
    if os.path.isdir(path):
        raise FlowlabError(f"model file {path!r} is a directory; pass the .safetensors file written by save_model")
    if not os.path.isfile(path):
        raise FlowlabError(f"model file {path!r} does not exist; train one with flowlab.models.train "
                           "and write it with save_model")
    try:
        with safe_open(path, framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types, OSError or ValueError here
        raise FlowlabError(f"model file {path!r} is not a readable safetensors file ({exc}); "
                           "it may be truncated or corrupt: write it again with save_model") from None
    if meta.get("format") != FORMAT:
        raise FlowlabError(f"model file {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}; "
                           "it was not written by flowlab.models.save_model")
    try:
        file_config = MLPConfig(**json.loads(meta["config"]))
        file_convention = get_convention(meta["convention"])
    except (KeyError, TypeError, ValueError) as exc:  # FlowlabError is a ValueError
        raise FlowlabError(f"model file {path!r} has unreadable metadata ({exc}); write it again with save_model") \
            from None
    if convention is not None and get_convention(convention) != file_convention:
        raise FlowlabError(
            f"model file {path!r} was trained in the {file_convention.name!r} convention, but the "
            f"{get_convention(convention).name!r} convention was asked for; load it with "
            f"convention={file_convention.name!r} and wrap it with flowlab.sampling.flip")
    if config is not None and config != file_config:
        raise FlowlabError(f"model file {path!r} holds architecture {file_config.as_dict()}, "
                           f"expected {config.as_dict()}")
    from .limits import check_memory

    c = file_config
    weights = (c.dim + c.time_dim) * c.hidden + (c.depth - 1) * c.hidden * c.hidden + c.hidden * c.dim
    check_memory(8.0 * weights + 4096 * c.depth, f"model file {path!r}: the architecture in its metadata "
                 f"{c.as_dict()}", "the metadata is damaged or not a flowlab VelocityMLP: write it again with save_model")
    model = VelocityMLP(file_config, file_convention)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        raise FlowlabError(f"model file {path!r}: its tensors {found} do not match the architecture in its own "
                           f"metadata {file_config.as_dict()} (expected {expected}); the file is corrupt")
    dtypes = {v.dtype for v in tensors.values()}
    if not all(d.is_floating_point for d in dtypes):
        raise FlowlabError(f"model file {path!r} holds {', '.join(sorted(map(str, dtypes)))} tensors; a VelocityMLP "
                           "has floating weights: the file is corrupt, write it again with save_model")
    bad = sorted(k for k, v in tensors.items() if not bool(torch.isfinite(v).all()))
    if bad:
        raise FlowlabError(f"model file {path!r}: the weights {', '.join(bad[:5])} contain NaN or inf, so every "
                           "velocity would be NaN; the training diverged or the file is damaged: train it again")
    model = model.to(dtypes.pop() if len(dtypes) == 1 else torch.float32)
    model.load_state_dict(tensors)
    return model.to(device).eval().requires_grad_(False)
