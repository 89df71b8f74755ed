"""Toy target distributions in 2-D and 3-D, deterministic given a ``torch.Generator``.

Every sampler draws its random numbers in float64 on the generator's device (the CPU unless you pass a
CUDA generator) and only then moves the result to ``device`` / ``dtype``: the same CPU generator state
gives the same points on every device. Scales are chosen so each toy fits roughly in ``[-2.5, 2.5]^dim``,
comparable to the ``N(0, I)`` noise the flow starts from.

Two toys are Gaussian mixtures with a closed-form velocity (:data:`flowlab.gmm.PRESETS`):
``eight_gaussians`` (2-D) and ``cube_corners`` (3-D). The others have no closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .errors import FlowlabError
from .gmm import PRESETS, GaussianMixture, fit_gmm

__all__ = ["Toy", "TOYS", "sample_toy", "get_toy", "toy_names", "reference_gmm"]

F64 = torch.float64


@dataclass(frozen=True)
class Toy:
    """A named toy distribution: ``draw(n, generator, device) -> (n, dim)`` float64 on ``device``."""

    name: str
    dim: int
    description: str
    draw: Callable[[int, torch.Generator | None, torch.device], Tensor]

    @property
    def gmm(self) -> GaussianMixture | None:
        """The exact Gaussian mixture when this toy is one, else ``None``."""
        return PRESETS[self.name]() if self.name in PRESETS else None


def _u(n: int, g: torch.Generator | None, dev: torch.device, *shape: int) -> Tensor:
    return torch.rand(n, *shape, generator=g, device=dev, dtype=F64)


def _z(n: int, g: torch.Generator | None, dev: torch.device, *shape: int) -> Tensor:
    return torch.randn(n, *shape, generator=g, device=dev, dtype=F64)


def _gmm_draw(name: str) -> Callable[[int, torch.Generator | None, torch.device], Tensor]:
    def draw(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
        return PRESETS[name]().sample(n, generator=g, device=dev, dtype=F64)
    return draw


def _two_moons(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    s = _u(n, g, dev) * math.pi
    upper = _u(n, g, dev) < 0.5
    x = torch.where(upper, s.cos(), 1 - s.cos())
    y = torch.where(upper, s.sin(), 0.5 - s.sin())
    pts = torch.stack([x - 0.5, y - 0.25], 1) * 1.6
    return pts + 0.06 * _z(n, g, dev, 2)


def _checkerboard(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    """Uniform on the 8 black squares of a 4 x 4 board covering [-2, 2]^2."""
    col = torch.randint(0, 4, (n,), generator=g, device=dev)
    row = 2 * torch.randint(0, 2, (n,), generator=g, device=dev) + (col % 2)
    cell = torch.stack([col, row], 1).to(F64)
    return cell + _u(n, g, dev, 2) - 2.0


def _pinwheel(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    arms, rate = 5, 0.25
    label = torch.randint(0, arms, (n,), generator=g, device=dev)
    feat = _z(n, g, dev, 2) * torch.tensor([0.3, 0.08], dtype=F64, device=dev)
    feat[:, 0] += 1.0
    ang = label.to(F64) * (2 * math.pi / arms) + rate * feat[:, 0].exp()
    c, s = ang.cos(), ang.sin()
    return 1.6 * torch.stack([c * feat[:, 0] - s * feat[:, 1], s * feat[:, 0] + c * feat[:, 1]], 1)


def _spiral(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    s = _u(n, g, dev).sqrt() * 3 * math.pi  # uniform in arc area
    pts = torch.stack([s * s.cos(), s * s.sin()], 1) / (1.5 * math.pi)
    return pts + 0.05 * _z(n, g, dev, 2)


def _rings(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    """Four concentric circles, radii 0.5, 1, 1.5, 2, each point's ring chosen proportional to its length."""
    radii = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=F64, device=dev)
    ring = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=g)
    ang = _u(n, g, dev) * 2 * math.pi
    r = radii[ring]
    return torch.stack([r * ang.cos(), r * ang.sin()], 1) + 0.04 * _z(n, g, dev, 2)


def _swiss_roll(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    s = 1.5 * math.pi * (1 + 2 * _u(n, g, dev))
    h = 4 * _u(n, g, dev) - 2
    pts = torch.stack([s * s.cos() / 6, h, s * s.sin() / 6], 1)
    return pts + 0.04 * _z(n, g, dev, 3)


def _torus(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    """Area-uniform on a torus (major radius 1.5, minor 0.5) by rejection on the tube angle."""
    big, small = 1.5, 0.5
    u = _u(n, g, dev) * 2 * math.pi
    # accept tube angle w with probability (R + r cos w) / (R + r); draw several candidates per point
    cand = _u(n, g, dev, 16) * 2 * math.pi
    keep = _u(n, g, dev, 16) * (big + small) < big + small * cand.cos()
    first = keep.to(torch.int64).argmax(1)  # a rejection miss (prob < 1e-8) keeps candidate 0
    w = cand.gather(1, first[:, None]).squeeze(1)
    ring = big + small * w.cos()
    return torch.stack([ring * u.cos(), ring * u.sin(), small * w.sin()], 1) + 0.02 * _z(n, g, dev, 3)


def _trefoil(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    s = _u(n, g, dev) * 2 * math.pi
    pts = torch.stack([s.sin() + 2 * (2 * s).sin(), s.cos() - 2 * (2 * s).cos(), -(3 * s).sin()], 1) / 1.5
    return pts + 0.05 * _z(n, g, dev, 3)


def _helix(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    s = _u(n, g, dev) * 4 * math.pi
    pts = torch.stack([1.5 * s.cos(), 1.5 * s.sin(), s / (2 * math.pi) - 1.0], 1)
    return pts + 0.05 * _z(n, g, dev, 3)


def _sphere_shell(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    d = _z(n, g, dev, 3)
    d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return d * (1.5 + 0.05 * _z(n, g, dev, 1))


#: Registry of toy distributions by name.
TOYS: dict[str, Toy] = {t.name: t for t in [
    Toy("eight_gaussians", 2, "8 isotropic Gaussians (std 0.15) on a circle of radius 2; exact GMM velocity",
        _gmm_draw("eight_gaussians")),
    Toy("two_moons", 2, "two interleaved half circles, noise 0.06", _two_moons),
    Toy("checkerboard", 2, "uniform on the 8 dark squares of a 4 x 4 board on [-2, 2]^2", _checkerboard),
    Toy("pinwheel", 2, "5-arm pinwheel", _pinwheel),
    Toy("spiral", 2, "one spiral arm, 1.5 turns, noise 0.05", _spiral),
    Toy("rings", 2, "4 concentric circles, radii 0.5 to 2, noise 0.04", _rings),
    Toy("swiss_roll", 3, "swiss roll, height [-2, 2], noise 0.04", _swiss_roll),
    Toy("torus", 3, "area-uniform torus, radii 1.5 and 0.5, noise 0.02", _torus),
    Toy("trefoil_knot", 3, "trefoil knot curve, noise 0.05", _trefoil),
    Toy("helix", 3, "two turns of a helix of radius 1.5, noise 0.05", _helix),
    Toy("sphere_shell", 3, "sphere of radius 1.5, radial noise 0.05", _sphere_shell),
    Toy("cube_corners", 3, "8 isotropic Gaussians (std 0.15) at the corners of [-1, 1]^3; exact GMM velocity",
        _gmm_draw("cube_corners")),
]}


def toy_names(dim: int | None = None) -> list[str]:
    """Names of the registered toys (optionally only those of dimension ``dim``)."""
    return [n for n, t in TOYS.items() if dim is None or t.dim == dim]


def get_toy(name: str) -> Toy:
    """Look a toy up by name; unknown names list the valid ones."""
    try:
        return TOYS[name]
    except (KeyError, TypeError):
        raise FlowlabError(f"unknown distribution {name!r}; valid names: {', '.join(TOYS)}") from None


def sample_toy(name: str, n: int, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n, dim)`` samples of toy ``name``. Deterministic given ``generator`` (None: torch's global CPU RNG);
    drawn on the generator's device in float64, returned on ``device`` (default: the generator's) as ``dtype``."""
    toy = get_toy(name)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise FlowlabError(f"n must be a positive integer number of samples, got {n!r}")
    gdev = generator.device if generator is not None else torch.device("cpu")
    from .limits import check_memory

    check_memory(n * toy.dim * 8 * 6, f"sample_toy: n = {n} samples of {name}", "draw fewer samples (several calls "
                 "with different generators, concatenated, if you need more)", gdev)
    pts = toy.draw(n, generator, gdev)
    return pts.to(device=device if device is not None else gdev, dtype=dtype)


def reference_gmm(name: str, *, n_components: int = 24, n_fit: int = 8000, iters: int = 60,
                  seed: int = 0) -> tuple[GaussianMixture, str]:
    """A Gaussian mixture standing in for toy ``name``, with a one-line description of where it came from.

    GMM toys (``eight_gaussians``, ``cube_corners``) return their exact mixture. The others have no
    closed-form velocity: a ``n_components``-component full-covariance mixture is fitted by EM
    (:func:`flowlab.gmm.fit_gmm`, ``iters`` iterations) to ``n_fit`` ground-truth samples drawn with seed
    ``seed``; its exact velocity is then a perfect model of the FITTED density, so sample-quality metrics
    against the toy include the fit error.
    """
    toy = get_toy(name)
    exact = toy.gmm
    if exact is not None:
        return exact, f"exact velocity of the {name} Gaussian mixture (K={exact.n_components})"
    data = sample_toy(name, n_fit, generator=torch.Generator().manual_seed(seed), dtype=F64)
    fitted = fit_gmm(data, n_components, generator=torch.Generator().manual_seed(seed), iters=iters)
    return fitted, (f"exact velocity of a {n_components}-component Gaussian mixture fitted by EM to {n_fit} "
                    f"{name} samples (seed {seed}); metrics include the fit error")
