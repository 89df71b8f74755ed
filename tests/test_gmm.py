"""Exact GMM velocity: against autograd of the marginal density, Monte Carlo E[D | x_t], the convention's
own formulas, the endpoints, and end-to-end sampling in both conventions."""
from __future__ import annotations

import pytest
import torch

from flowlab import CONVENTIONAL, REVERSED, VP_COSINE, FlowlabError
from flowlab import schedules as S
from flowlab.gmm import GaussianMixture, cube_corners_gmm, eight_gaussians_gmm, fit_gmm
from flowlab.metrics import sliced_wasserstein
from flowlab.sampling import flip, sample


def full_cov_gmm() -> GaussianMixture:
    g = torch.Generator().manual_seed(5)
    a = torch.randn(3, 3, 3, generator=g, dtype=torch.float64) * 0.4
    covs = a @ a.transpose(1, 2) + 0.05 * torch.eye(3, dtype=torch.float64)
    means = torch.randn(3, 3, generator=g, dtype=torch.float64) * 1.5
    return GaussianMixture(means, covs, torch.tensor([0.2, 0.5, 0.3]))


def points(n, dim, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5


@pytest.mark.parametrize("gmm", [eight_gaussians_gmm(), full_cov_gmm()], ids=["iso2d", "full3d"])
@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE])
@pytest.mark.parametrize("t", [0.2, 0.5, 0.85])
def test_tweedie_score_identity_with_autograd(gmm, conv, t):
    """grad log p_t(x) (autograd of the mixture density) = -E[E | x] / b = convention.score(x, v, t)."""
    t = torch.tensor(t, dtype=torch.float64)  # a float64 time: Python floats become float32 in F.bcast
    x = points(64, gmm.dim).requires_grad_(True)
    logp = gmm.marginal_log_prob(x, t, conv).sum()
    (score,) = torch.autograd.grad(logp, x)
    x = x.detach()
    _, e_hat = gmm.posterior_means(x, t, conv)
    _, b, _, _ = conv.coefficients(t)
    assert (score + e_hat / b).abs().max().item() < 1e-10
    v = gmm.velocity(x, t, conv)
    assert (conv.score(x, v, t) - score).abs().max().item() < 1e-9


@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE])
def test_velocity_matches_convention_formulas(conv):
    gmm = full_cov_gmm()
    x = points(32, 3)
    t = torch.linspace(0.1, 0.9, 32, dtype=torch.float64)  # per-sample times
    d_hat, e_hat = gmm.posterior_means(x, t, conv)
    v = gmm.velocity(x, t, conv)
    a, b, _, _ = conv.coefficients(t)
    assert (a[:, None] * d_hat + b[:, None] * e_hat - x).abs().max().item() < 1e-12  # x = a E[D|x] + b E[E|x]
    assert (conv.velocity_from_data(x, d_hat, t) - v).abs().max().item() < 1e-10
    assert (conv.pred_data(x, v, t) - d_hat).abs().max().item() < 1e-10
    assert (conv.pred_noise(x, v, t) - e_hat).abs().max().item() < 1e-10


def test_posterior_mean_against_monte_carlo():
    gmm = eight_gaussians_gmm()
    g = torch.Generator().manual_seed(11)
    n = 400_000
    d = gmm.sample(n, generator=g, dtype=torch.float64)
    sigma = 0.6  # conventional time; x = (1 - sigma) D + sigma E
    x_query = torch.tensor([[0.5, 0.3], [-1.0, 0.8], [0.0, -1.2]], dtype=torch.float64)
    logw = -((x_query[:, None, :] - (1 - sigma) * d[None]) ** 2).sum(-1) / (2 * sigma**2)  # (3, n)
    w = torch.softmax(logw, dim=1)
    mc = w @ d
    ess = 1 / (w**2).sum(1)
    assert bool((ess > 5000).all())
    d_hat, _ = gmm.posterior_means(x_query, sigma, CONVENTIONAL)
    assert (mc - d_hat).abs().max().item() < 0.02


def test_endpoints_are_finite_and_exact():
    gmm = full_cov_gmm()
    x = points(16, 3)
    # noise end (conventional sigma = 1): x is pure noise, E[D | x] = mixture mean, v = x - mean
    v1 = gmm.velocity(x, 1.0, CONVENTIONAL)
    assert (v1 - (x - gmm.mean())).abs().max().item() < 1e-12
    # data end (sigma = 0): x is the data, E[E | x] = 0, v = -x
    v0 = gmm.velocity(x, 0.0, CONVENTIONAL)
    assert (v0 + x).abs().max().item() < 1e-12
    for t in (0.0, 1.0):
        assert bool(torch.isfinite(gmm.velocity(x.float(), t, REVERSED)).all())


def test_reversed_velocity_is_flipped_conventional():
    gmm = eight_gaussians_gmm()
    x, t = points(32, 2), torch.rand(32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert (gmm.velocity(x, t, REVERSED) + gmm.velocity(x, 1 - t, CONVENTIONAL)).abs().max().item() < 1e-12
    assert (flip(gmm.velocity_model(CONVENTIONAL))(x, t) - gmm.velocity_model(REVERSED)(x, t)).abs().max() < 1e-12


def test_sampling_with_exact_velocity_reaches_the_target_in_both_conventions():
    gmm = cube_corners_gmm()
    z = torch.randn(3000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = {}
    for conv in (CONVENTIONAL, REVERSED):
        out[conv.name] = sample(gmm.velocity_model(conv), z, S.uniform(40, conv, dtype=torch.float64), conv,
                                method="heun")
    assert (out["conventional"] - out["reversed"]).abs().max().item() < 1e-10
    truth = gmm.sample(3000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    other = gmm.sample(3000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    floor = sliced_wasserstein(truth, other)
    assert sliced_wasserstein(out["reversed"], truth) < 1.5 * floor
    # and the noise itself is far from the target
    assert sliced_wasserstein(z, truth) > 3 * floor


def test_sample_moments_and_determinism():
    gmm = full_cov_gmm()
    a = gmm.sample(100_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b = gmm.sample(100_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(a, b)
    assert (a.mean(0) - gmm.mean()).abs().max().item() < 0.03
    assert (a.T.cov() - gmm.covariance()).abs().max().item() < 0.05


def test_log_prob_matches_torch_distributions():
    gmm = full_cov_gmm()
    x = points(20, 3)
    comp = torch.distributions.MultivariateNormal(gmm.means, gmm.covs)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(gmm.weights), comp).log_prob(x)
    assert (gmm.log_prob(x) - ref).abs().max().item() < 1e-10


def test_fit_gmm_recovers_a_mixture():
    truth = eight_gaussians_gmm()
    data = truth.sample(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fit = fit_gmm(data, 8, generator=torch.Generator().manual_seed(0), iters=60)
    # every true mean has a fitted mean nearby
    dist = torch.cdist(truth.means, fit.means).min(1).values
    assert dist.max().item() < 0.05
    assert (fit.weights - 1 / 8).abs().max().item() < 0.03


@pytest.mark.parametrize("args, match", [
    ((torch.zeros(3), 0.1), "means must have shape"),
    ((torch.zeros(2, 2), -0.1), "positive"),
    ((torch.zeros(2, 2), torch.ones(3)), "isotropic stds"),
    ((torch.zeros(2, 2), torch.ones(2, 3, 3)), "covs must have shape"),
    ((torch.zeros(2, 2), torch.tensor([[[1.0, 0], [0, -1]]] * 2)), "positive definite"),
    ((torch.zeros(2, 2), torch.tensor([[[1.0, 0.5], [0, 1]]] * 2)), "symmetric"),
    ((torch.zeros(2, 2), 0.1, torch.tensor([1.0, -1.0])), "weights must be positive"),
    ((torch.zeros(2, 2), 0.1, torch.tensor([1.0])), "weights must have shape"),
])
def test_bad_mixtures(args, match):
    with pytest.raises(FlowlabError, match=match):
        GaussianMixture(*args)


def test_bad_queries():
    gmm = eight_gaussians_gmm()
    with pytest.raises(FlowlabError, match=r"shape \(B, 2\)"):
        gmm.velocity(torch.zeros(4, 3), 0.5, REVERSED)
    with pytest.raises(FlowlabError, match="t must be a scalar"):
        gmm.velocity(torch.zeros(4, 2), torch.zeros(3), REVERSED)
    with pytest.raises(FlowlabError, match="n must be a positive"):
        gmm.sample(0)
