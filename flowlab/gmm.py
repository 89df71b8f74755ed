"""Gaussian mixtures and their exact flow-matching velocity: a perfect model that needs no training.

Target ``D ~ sum_k w_k N(mu_k, S_k)`` in ``R^dim``. On any affine path ``x = a(t) D + b(t) E`` of a
convention (``E ~ N(0, I)`` independent of ``D``), ``x`` is again a mixture::

    x | k ~ N(a mu_k, C_k),   C_k = a^2 S_k + b^2 I

and Gaussian conditioning gives, per component, ``E[D | x, k] = mu_k + a S_k C_k^{-1} (x - a mu_k)`` and
``E[E | x, k] = b C_k^{-1} (x - a mu_k)``. With the posterior weights
``p(k | x) = softmax_k(log w_k + log N(x; a mu_k, C_k))`` the marginal velocity is

    v(x, t) = E[a' D + b' E | x] = a' E[D | x] + b' E[E | x].

This equals ``convention.velocity_from_data(x, E[D | x], t)`` wherever ``b != 0``, and stays finite at
both endpoints (``C_k`` is invertible whenever ``S_k`` is positive definite), so no division by zero at
``t_noise`` or ``t_data``. Everything is computed in the eigenbasis of each ``S_k`` (one ``eigh`` at
construction) with log-sum-exp weights, in ``promote_types(x.dtype, float32)``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .conventions import Convention, get_convention
from .errors import FlowlabError
from .inputs import check_tensor, check_times

__all__ = ["GaussianMixture", "GMMVelocity", "fit_gmm", "eight_gaussians_gmm", "cube_corners_gmm", "PRESETS"]


def _as_float64(value: Tensor | float | list, what: str) -> Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).detach().to("cpu")
    except (TypeError, ValueError, RuntimeError) as exc:
        raise FlowlabError(f"{what}: cannot read as a float tensor ({exc})") from None


class GaussianMixture:
    """``sum_k w_k N(mu_k, S_k)`` in ``R^dim`` (parameters kept in float64 on the CPU; cast on use).

    Args:
        means: ``(K, dim)`` component means.
        covs: ``(K, dim, dim)`` symmetric positive definite covariances, or isotropic STANDARD DEVIATIONS:
            one float for all components or a ``(K,)`` tensor (``S_k = std_k^2 I``).
        weights: ``(K,)`` positive mixture weights (normalised here); default equal weights.
    """

    def __init__(self, means: Tensor, covs: Tensor | float, weights: Tensor | None = None) -> None:
        mu = _as_float64(means, "means")
        if mu.ndim != 2 or mu.shape[0] < 1 or mu.shape[1] < 1:
            raise FlowlabError(f"means must have shape (K, dim) with K, dim >= 1, got {tuple(mu.shape)}")
        k, d = mu.shape
        if not bool(torch.isfinite(mu).all()):
            raise FlowlabError("means contain NaN or inf")
        c = _as_float64(covs, "covs")
        if c.ndim <= 1:  # isotropic standard deviations
            std = c.expand(k) if c.ndim == 0 else c
            if std.shape != (k,):
                raise FlowlabError(f"isotropic stds must be a float or shape ({k},), got {tuple(c.shape)}")
            if not bool(torch.isfinite(std).all()) or not bool((std > 0).all()):
                raise FlowlabError(f"stds must be positive and finite, got {std.tolist()}")
            self.isotropic = True
            self.eigvals = (std**2)[:, None].expand(k, d).clone()
            self.eigvecs = torch.eye(d, dtype=torch.float64).expand(k, d, d).clone()
            self.covs = self.eigvals[:, :, None] * torch.eye(d, dtype=torch.float64)
        else:
            if c.shape != (k, d, d):
                raise FlowlabError(f"covs must have shape ({k}, {d}, {d}) (or be isotropic stds), got {tuple(c.shape)}")
            if not bool(torch.isfinite(c).all()) or (c - c.transpose(1, 2)).abs().max().item() > 1e-10 * (
                    1 + c.abs().max().item()):
                raise FlowlabError("covs must be finite and symmetric")
            lam, vecs = torch.linalg.eigh(c)
            if lam.min().item() <= 0:
                raise FlowlabError(f"covs must be positive definite; smallest eigenvalue {lam.min().item():.3g}")
            self.isotropic = False
            self.eigvals, self.eigvecs, self.covs = lam, vecs, c
        if weights is None:
            w = torch.full((k,), 1.0 / k, dtype=torch.float64)
        else:
            w = _as_float64(weights, "weights")
            if w.shape != (k,):
                raise FlowlabError(f"weights must have shape ({k},), got {tuple(w.shape)}")
            if not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
                raise FlowlabError(f"weights must be positive and finite, got {w.tolist()}")
            w = w / w.sum()
        self.means, self.weights = mu, w
        self._cache: dict = {}

    # ---- basic facts -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def __repr__(self) -> str:
        kind = "isotropic" if self.isotropic else "full"
        return f"GaussianMixture(K={self.n_components}, dim={self.dim}, {kind} covariances)"

    def _params(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = tuple(p.to(device=device, dtype=dtype) for p in
                                     (self.means, self.weights.log(), self.eigvals, self.eigvecs))
        return self._cache[key]

    def mean(self) -> Tensor:
        """``(dim,)`` mean of the mixture (float64)."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """``(dim, dim)`` covariance of the mixture (float64)."""
        m = self.mean()
        dev = self.means - m
        return (self.weights[:, None, None] * (self.covs + dev[:, :, None] * dev[:, None, :])).sum(0)

    # ---- sampling and density ------------------------------------------------------------------------
    def sample(self, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """``(n, dim)`` samples. Drawn in float64 on the generator's device (CPU by default), then moved
        to ``device`` / ``dtype``: a CPU generator gives the same samples on every device."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise FlowlabError(f"n must be a positive integer, got {n!r}")
        gdev = generator.device if generator is not None else torch.device("cpu")
        mu, logw, lam, vecs = self._params(torch.float64, gdev)
        k = torch.multinomial(logw.exp(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=gdev, dtype=torch.float64)
        x = mu[k] + torch.einsum("nde,ne->nd", vecs[k], lam[k].sqrt() * z)
        return x.to(device=device if device is not None else gdev, dtype=dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """``(B,)`` log density of the mixture at ``x: (B, dim)``."""
        return self._log_lik(x, torch.ones(x.shape[0], dtype=x.dtype, device=x.device),
                             torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))[0].logsumexp(-1)

    def _log_lik(self, x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per component: ``log w_k + log N(x; a mu_k, a^2 S_k + b^2 I)`` ``(B, K)``; also ``y`` (residual
        ``x - a mu_k`` in each eigenbasis, ``(B, K, dim)``), ``c`` (eigenvalues of ``C_k``: ``(B, K, dim)``, or
        ``(B, K, 1)`` for isotropic mixtures) and the matching eigenvalues of ``S_k``. ``a, b``: ``(B,)`` or ``(1,)``."""
        mu, logw, lam, vecs = self._params(x.dtype, x.device)
        if self.isotropic:
            lam = lam[:, :1]  # (K, 1): one variance per component
        a2, b2 = (a * a)[:, None, None], (b * b)[:, None, None]
        r = x[:, None, :] - a[:, None, None] * mu[None]  # (B, K, dim)
        y = r if self.isotropic else torch.einsum("bkd,kde->bke", r, vecs)
        c = a2 * lam[None] + b2  # (B, K, dim) or (B, K, 1); B may be 1 for a shared time
        if self.isotropic:
            quad = (y * y).sum(-1) / c[..., 0]
            logdet = self.dim * c[..., 0].log()
        else:
            quad = (y * y / c).sum(-1)
            logdet = c.log().sum(-1)
        logp = logw[None] - 0.5 * quad - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi)
        return logp, y, c, lam

    def _check_x(self, x: Tensor) -> None:
        if isinstance(x, Tensor):
            check_tensor(x, "x", where="GaussianMixture")
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise FlowlabError(f"x must have shape (B, {self.dim}) for this {self.dim}-D mixture, got {shape}")

    def _coeffs(self, x: Tensor, t: Tensor | float, conv: Convention, work: torch.dtype, *,
                check: bool = True) -> tuple[Tensor, ...]:
        if check:
            check_times(t, conv, where="GaussianMixture")
        if isinstance(t, Tensor):
            tt = t.to(device=x.device, dtype=work)
        else:  # a Python number: no float32 round trip for float64 x
            tt = torch.as_tensor(t, dtype=work, device=x.device)
        if tt.ndim == 0:
            tt = tt.reshape(1)
        elif tt.shape != (x.shape[0],):
            raise FlowlabError(f"t must be a scalar or shape ({x.shape[0]},), got {tuple(tt.shape)}")
        elif tt.shape[0] > 1 and tt.stride(0) == 0:
            tt = tt[:1]  # one time expanded over the batch (what the sampler passes): compute it once
        return conv.coefficients(tt)  # each (B,) or (1,), broadcasting against the batch

    def marginal_log_prob(self, x: Tensor, t: Tensor | float, convention: Convention | str) -> Tensor:
        """``(B,)`` ``log p_t(x)`` of the path's marginal at time ``t`` (scalar or ``(B,)``) in ``convention``."""
        self._check_x(x)
        conv = get_convention(convention)
        work = torch.promote_types(x.dtype, torch.float32)
        a, b, _, _ = self._coeffs(x, t, conv, work)
        return self._log_lik(x.to(work), a, b)[0].logsumexp(-1)

    def posterior_means(self, x: Tensor, t: Tensor | float, convention: Convention | str) -> tuple[Tensor, Tensor]:
        """``(E[D | x_t], E[E | x_t])``, each ``(B, dim)``, at time ``t`` of ``convention`` (exact)."""
        self._check_x(x)
        conv = get_convention(convention)
        work = torch.promote_types(x.dtype, torch.float32)
        a, b, _, _ = self._coeffs(x, t, conv, work)
        d_hat, e_hat = self._posterior(x.to(work), a, b)
        return d_hat.to(x.dtype), e_hat.to(x.dtype)

    def _posterior(self, x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        logp, y, c, lam = self._log_lik(x, a, b)
        p = torch.softmax(logp, dim=-1)  # (B, K)
        mu, _, _, vecs = self._params(x.dtype, x.device)
        if self.isotropic:  # per-component scalars: one weighted sum over components each
            wd = p * (a[:, None] * lam[None, :, 0] / c[..., 0])  # p_k a s_k^2 / c_k
            we = p * (b[:, None] / c[..., 0])  # p_k b / c_k
            return p @ mu + torch.einsum("bk,bkd->bd", wd, y), torch.einsum("bk,bkd->bd", we, y)
        gd = a[:, None, None] * lam[None] / c * y  # a S C^{-1} r, eigen coordinates
        ge = b[:, None, None] / c * y  # b C^{-1} r
        gd = torch.einsum("kde,bke->bkd", vecs, gd)
        ge = torch.einsum("kde,bke->bkd", vecs, ge)
        return p @ mu + (p[:, :, None] * gd).sum(1), (p[:, :, None] * ge).sum(1)

    def velocity(self, x: Tensor, t: Tensor | float, convention: Convention | str) -> Tensor:
        """Exact marginal velocity ``a' E[D | x] + b' E[E | x]``: ``x: (B, dim)``, ``t`` scalar or ``(B,)`` in
        ``convention``'s time; returns ``(B, dim)`` in ``x``'s dtype. Finite at both endpoints."""
        self._check_x(x)
        conv = get_convention(convention)
        check_times(t, conv, where="GaussianMixture")
        return self._velocity_unchecked(x, t, conv)

    def _velocity_unchecked(self, x: Tensor, t: Tensor | float, conv: Convention) -> Tensor:
        """:meth:`velocity` without the time-interval check (``x`` must already be a ``(B, dim)`` floating
        tensor). For flowlab.testing's exact model, which must answer a user's wrong times (``t * 1000``, an
        adaptive solver stepping past ``t_data``) so the checks can diagnose them instead of raising."""
        work = torch.promote_types(x.dtype, torch.float32)
        a, b, da, db = self._coeffs(x, t, conv, work, check=False)
        d_hat, e_hat = self._posterior(x.to(work), a, b)
        return (da[:, None] * d_hat + db[:, None] * e_hat).to(x.dtype)

    def velocity_model(self, convention: Convention | str) -> "GMMVelocity":
        """This mixture's exact velocity as a sampler model ``model(x, t) -> v`` in ``convention``."""
        return GMMVelocity(self, get_convention(convention))


class GMMVelocity:
    """``model(x, t) = gmm.velocity(x, t, convention)``: an exact, training-free velocity model."""

    def __init__(self, gmm: GaussianMixture, convention: Convention) -> None:
        self.gmm = gmm
        self.convention = convention

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return self.gmm.velocity(x, t, self.convention)

    def __repr__(self) -> str:
        return f"GMMVelocity({self.gmm!r}, {self.convention.name})"


# ---- fitting ---------------------------------------------------------------------------------------

def fit_gmm(samples: Tensor, n_components: int, *, generator: torch.Generator | None = None, iters: int = 200,
            reg: float = 1e-4) -> GaussianMixture:
    """Fit a full-covariance mixture to ``samples: (N, dim)`` by EM (float64, CPU; deterministic given
    ``generator``). Means start from k-means++ seeding; ``reg * I`` is added to every
    covariance so it stays positive definite. A stand-in density for targets without a closed form."""
    if isinstance(samples, Tensor):
        check_tensor(samples, "samples", where="fit_gmm")
    x = _as_float64(samples, "samples")
    if x.ndim != 2 or x.shape[0] < 2:
        raise FlowlabError(f"samples must have shape (N, dim) with N >= 2, got {tuple(x.shape)}")
    bad = int((~torch.isfinite(x)).any(1).sum())
    if bad:
        raise FlowlabError(f"fit_gmm: {bad} of the {x.shape[0]} samples contain NaN or inf; drop those rows first "
                           "(samples[torch.isfinite(samples).all(1)])")
    n, d = x.shape
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= n:
        raise FlowlabError(f"n_components must be an integer in [1, {n}], got {n_components!r}")
    k = n_components
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    mu = _kmeans_pp(x, k, g)
    cov = x.T.cov().expand(k, d, d).clone() / k + reg * torch.eye(d, dtype=torch.float64)
    logw = torch.full((k,), -math.log(k), dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    for _ in range(iters):
        prec = torch.linalg.inv(cov)
        logdet = torch.linalg.slogdet(cov).logabsdet
        r = x[:, None, :] - mu[None]  # (N, K, d)
        maha = torch.einsum("nkd,kde,nke->nk", r, prec, r)
        logp = logw - 0.5 * maha - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)
        resp = torch.softmax(logp, dim=1)  # (N, K)
        nk = resp.sum(0) + 1e-12
        mu = (resp.T @ x) / nk[:, None]
        r = x[:, None, :] - mu[None]
        cov = torch.einsum("nk,nkd,nke->kde", resp, r, r) / nk[:, None, None] + reg * eye
        logw = (nk / n).log()
    return GaussianMixture(mu, cov, logw.exp())


def _kmeans_pp(x: Tensor, k: int, g: torch.Generator) -> Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to the squared distance."""
    centres = [x[torch.randint(0, x.shape[0], (1,), generator=g)].squeeze(0)]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        i = torch.multinomial(d2 / d2.sum(), 1, generator=g) if bool(d2.sum() > 0) else torch.randint(
            0, x.shape[0], (1,), generator=g)
        centres.append(x[i].squeeze(0))
        d2 = torch.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    return torch.stack(centres)


# ---- presets matching flowlab.toys ---------------------------------------------------------------------

def eight_gaussians_gmm(radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """Eight equal isotropic Gaussians on a circle: means ``radius (cos(k pi/4), sin(k pi/4))``, ``k = 0..7``."""
    ang = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    return GaussianMixture(radius * torch.stack([ang.cos(), ang.sin()], 1), std)


def cube_corners_gmm(half_side: float = 1.0, std: float = 0.15) -> GaussianMixture:
    """Eight equal isotropic Gaussians at the corners ``(+-h, +-h, +-h)`` of a cube (3-D)."""
    corners = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=torch.float64)
    return GaussianMixture(half_side * corners, std)


#: Closed-form mixtures by toy name (see :data:`flowlab.toys.TOYS`).
PRESETS: dict[str, Callable[[], GaussianMixture]] = {
    "eight_gaussians": eight_gaussians_gmm,
    "cube_corners": cube_corners_gmm,
}
