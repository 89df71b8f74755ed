"""General affine paths (velocity, data, noise, score), DDPM / DDIM, classifier-free guidance; every exact
claim in one list, and the per-convention report (sections 3 to 5 of :mod:`flowlab.symbolic`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..conventions import CONVENTIONAL, REVERSED, VP_COSINE, Convention, T, get_convention, reduce, vanishes
from ..errors import FlowlabError
from .core import (X, V, T_NEXT, D, E, EPS, A, B, DA, DB, ABAR_T, ABAR_S, SIGMA, G, W, V_COND, V_UNCOND,
                   PARAMETRISATIONS, _collect, in_own_symbol, format_prediction, _format_combination, euler_update,
                   interpolant, velocity_target, endpoint_fact, jump_remainder, euler_map_remainder,
                   prediction_map_remainder, path_map_remainders)

__all__ = ["quantity", "conversion", "round_trip_remainder", "ddpm_coefficients", "ddim_step", "ddim_sigma",
           "ddim_euler_remainder", "ddim_reparametrised_path", "ddim_step_affine", "ddim_minus_euler_affine", "cfg",
           "cfg_flip_remainder", "cfg_data_remainder", "cfg_scale_remainder", "Proof", "proofs",
           "convention_report"]


# ---- 3. general affine paths: velocity, data, noise and score ---------------------------------

def quantity(name: str, a: sp.Expr = A, b: sp.Expr = B, da: sp.Expr = DA, db: sp.Expr = DB) -> sp.Expr:
    """What each parametrisation equals on the path ``x = a D + b E``, in ``D`` and ``E``.

    velocity ``da D + db E``; data ``D``; noise ``E``; score ``-(x - a D) / b^2 = -E / b`` (the
    conditional score of N(a D, b^2 I)).
    """
    table = {"velocity": da * D + db * E, "data": D, "noise": E, "score": -E / b}
    if name not in table:
        raise FlowlabError(f"unknown parametrisation {name!r}; valid: {', '.join(PARAMETRISATIONS)}")
    return table[name]


@lru_cache(maxsize=None)
def conversion(src: str, dst: str, conv: Convention | str | None = None) -> sp.Expr:
    """Derive ``dst`` as a function of ``x`` and the ``src`` prediction by solving the linear system
    ``x = a D + b E``, ``src_symbol = quantity(src)`` for ``(D, E)``.

    With ``conv=None`` the result is in the generic coefficients :data:`A`, :data:`B`, :data:`DA`,
    :data:`DB` (compare with :mod:`flowlab.functional`); with a convention, its ``alpha(t)``,
    ``beta(t)`` and their derivatives are substituted (an expression in :data:`X`, the source
    symbol and :data:`T`). Valid where the system is invertible (``a db - da b != 0``; ``b != 0``
    for data/score sources, ``a != 0`` for noise/score sources). Results are cached (SymPy
    expressions are immutable).
    """
    for name in (src, dst):
        if name not in PARAMETRISATIONS:
            raise FlowlabError(f"unknown parametrisation {name!r}; valid: {', '.join(PARAMETRISATIONS)}")
    if src == dst:
        raise FlowlabError(f"conversion from {src!r} to itself; pick two different parametrisations")
    src_sym = PARAMETRISATIONS[src]
    eqs = [sp.Eq(X, A * D + B * E), sp.Eq(src_sym, quantity(src))]
    sol = sp.solve(eqs, [D, E], dict=True)
    if len(sol) != 1:  # pragma: no cover - the system is linear with a generic unique solution
        raise FlowlabError(f"cannot solve for (D, E) from x and the {src} prediction")
    out = reduce(quantity(dst).subs(sol[0]))
    if conv is None:
        return out
    c = get_convention(conv)
    sub = out.subs({A: c.alpha, B: c.beta, DA: c.dalpha, DB: c.dbeta})
    return reduce(sub)


def round_trip_remainder(src: str, dst: str) -> sp.Expr:
    """``src -> dst -> src`` minus the identity, for generic coefficients. Reduces to 0."""
    forward = conversion(src, dst)
    back = conversion(dst, src).subs(PARAMETRISATIONS[dst], forward)
    return reduce(back - PARAMETRISATIONS[src])


# ---- 4. DDPM / DDIM ------------------------------------------------------------------------------

def ddpm_coefficients(abar: sp.Expr = ABAR_T) -> tuple[sp.Expr, sp.Expr]:
    """DDPM's path ``x = sqrt(abar) D + sqrt(1 - abar) E`` as ``(a, b)``; integer time 0 is data."""
    return sp.sqrt(abar), sp.sqrt(1 - abar)


def ddim_sigma(abar: sp.Expr) -> sp.Expr:
    """Noise level of the reparametrised flow, ``sigma = sqrt((1 - abar) / abar)``."""
    return sp.sqrt((1 - abar) / abar)


def ddim_step(x: sp.Expr = X, eps: sp.Expr = EPS, abar_t: sp.Expr = ABAR_T, abar_s: sp.Expr = ABAR_S) -> sp.Expr:
    """A deterministic DDIM step (eta = 0) from ``abar_t`` to ``abar_s``, built from the derived
    noise -> data conversion: ``x_s = sqrt(abar_s) Dhat + sqrt(1 - abar_s) eps``."""
    a_t, b_t = ddpm_coefficients(abar_t)
    a_s, b_s = ddpm_coefficients(abar_s)
    dhat = conversion("noise", "data").subs({A: a_t, B: b_t}).subs({X: x, EPS: eps})
    return a_s * dhat + b_s * eps


def ddim_euler_remainder() -> sp.Expr:
    """``DDIM(x) / sqrt(abar_s)`` minus one Euler step of ``dy/dsigma = eps`` on ``y = x / sqrt(abar)``
    from ``sigma_t`` to ``sigma_s`` (Gao et al. 2024). Reduces to 0."""
    y = X / sp.sqrt(ABAR_T)
    euler = euler_update(y, EPS, ddim_sigma(ABAR_T), ddim_sigma(ABAR_S))
    return reduce(ddim_step() / sp.sqrt(ABAR_S) - euler)


def ddim_reparametrised_path() -> tuple[sp.Expr, sp.Expr]:
    """With ``abar = 1 / (1 + sigma^2)``: ``(y, dy/dsigma)`` for ``y = x / sqrt(abar)``.

    Returns ``(D + sigma E, E)``: the scaled variable moves on a straight VE path and its velocity
    in sigma is the noise, so an epsilon network is a velocity network for ``y`` and DDIM is Euler.
    """
    abar = 1 / (1 + SIGMA**2)
    a, b = ddpm_coefficients(abar)
    y = (a * D + b * E) / sp.sqrt(abar)
    y = sp.expand(sp.powsimp(sp.powdenest(y, force=False)))
    y = _collect(y)
    return y, sp.diff(y, SIGMA)


def ddim_step_affine(conv: Convention | str) -> sp.Expr:
    """The DDIM-style step of any affine path from ``t`` to ``t'``: predict data and noise, re-mix
    at ``t'``: ``alpha(t') Dhat + beta(t') Ehat``, with ``(Dhat, Ehat)`` derived from ``(x, v)``."""
    c = get_convention(conv)
    dhat = conversion("velocity", "data", c)
    ehat = conversion("velocity", "noise", c)
    return c.alpha.subs(T, T_NEXT) * dhat + c.beta.subs(T, T_NEXT) * ehat


def ddim_minus_euler_affine(conv: Convention | str) -> sp.Expr:
    """DDIM-style step minus Euler step ``x + (t' - t) v``: 0 for straight paths, not for VP cosine."""
    return reduce(ddim_step_affine(conv) - euler_update(X, V, T, T_NEXT))


# ---- 5. classifier-free guidance -----------------------------------------------------------------

def cfg(cond: sp.Expr = V_COND, uncond: sp.Expr = V_UNCOND, scale: sp.Expr = G) -> sp.Expr:
    """``uncond + g (cond - uncond)`` (diffusers, SD3, Hunyuan3D-2; g = 1 is no guidance)."""
    return uncond + scale * (cond - uncond)


def cfg_flip_remainder() -> sp.Expr:
    """CFG of the flipped velocities plus CFG of the originals: 0, so CFG commutes with v -> -v."""
    return reduce(cfg(-V_COND, -V_UNCOND) + cfg())


def cfg_data_remainder(conv: Convention | str | None = None) -> sp.Expr:
    """Data prediction of the guided velocity minus CFG of the two data predictions: 0 for any affine
    path (the weights 1 - g and g sum to 1 and velocity -> data is affine in v)."""
    to_data = conversion("velocity", "data", conv)
    guided = to_data.subs(V, cfg())
    separately = cfg(to_data.subs(V, V_COND), to_data.subs(V, V_UNCOND))
    return reduce(guided - separately)


def cfg_scale_remainder() -> sp.Expr:
    """``(1 + w) cond - w uncond`` (facebookresearch/flow_matching) minus CFG with ``g = 1 + w``: 0."""
    return reduce((1 + W) * V_COND - W * V_UNCOND - cfg(scale=1 + W))


# ---- every exact claim in one list ---------------------------------------------------------------

@dataclass(frozen=True)
class Proof:
    """One symbolic identity: ``remainder`` must reduce to exactly 0 (``holds``)."""

    statement: str
    remainder: sp.Expr

    @property
    def holds(self) -> bool:
        return vanishes(self.remainder)


def proofs() -> tuple[Proof, ...]:
    """Every exact identity flowlab derives, as (statement, remainder) pairs."""
    out = []
    for conv in (CONVENTIONAL, REVERSED):
        for endpoint in (0, 1):
            fact = endpoint_fact(conv, endpoint)
            target = D if fact.lives_there == "data" else E
            out.append(Proof(f"{conv.name}: {fact.name} = {format_prediction(in_own_symbol(conv, fact.formula))} "
                             f"is the {fact.lives_there}", fact.on_path - target))
        out.append(Proof(f"{conv.name}: the Euler jump to the data endpoint is exact on the straight path",
                         jump_remainder(conv)))
    r_path, r_vel = path_map_remainders()
    out += [
        Proof("map: x_rev(t) = x_conv(1 - t)", r_path),
        Proof("map: v_rev(t) = -v_conv(1 - t)", r_vel),
        Proof("map: reversed Euler step == conventional Euler step (sigma = 1 - t, v -> -v)", euler_map_remainder()),
        Proof("map: pred_x1(reversed) == pred_x0(conventional)", prediction_map_remainder()),
    ]
    for src in PARAMETRISATIONS:
        for dst in PARAMETRISATIONS:
            if src != dst:
                out.append(Proof(f"affine: {src} -> {dst} -> {src} round trip", round_trip_remainder(src, dst)))
    for conv in (CONVENTIONAL, REVERSED, VP_COSINE):
        for dst, target in (("data", D), ("noise", E), ("score", -E / conv.beta)):
            got = conversion("velocity", dst, conv).subs({X: interpolant(conv), V: velocity_target(conv)})
            out.append(Proof(f"{conv.name}: velocity -> {dst} recovers the {dst} on the path", got - target))
    out += [
        Proof("DDIM (eta = 0) step == Euler step in sigma = sqrt((1 - abar)/abar) on x / sqrt(abar)",
              ddim_euler_remainder()),
        Proof("DDIM-style re-mix step == Euler step on the straight conventional path",
              ddim_minus_euler_affine(CONVENTIONAL)),
        Proof("DDIM-style re-mix step == Euler step on the straight reversed path",
              ddim_minus_euler_affine(REVERSED)),
        Proof("CFG commutes with the convention flip v -> -v", cfg_flip_remainder()),
        Proof("CFG commutes with velocity -> data (any affine path)", cfg_data_remainder()),
        Proof("CFG (1 + w) cond - w uncond == uncond + g (cond - uncond) with g = 1 + w", cfg_scale_remainder()),
    ]
    return tuple(out)


# ---- per-convention report (the CLI's JSON) ------------------------------------------------------

def convention_report(conv: Convention | str) -> dict:
    """Facts of one convention as a JSON-able dict, formulas in the convention's own time symbol.

    Keys: ``convention``, ``symbol``, ``sampling``, ``noise_at``, ``data_at``, ``interpolant``,
    ``velocity_target``, ``update_rule``, ``pred_x0``, ``pred_x1`` (the Euler jumps to 0 and 1),
    ``pred_x0_is`` / ``pred_x1_is`` (``"data"`` or ``"noise"``), ``data_prediction`` /
    ``noise_prediction`` (which of pred_x0 / pred_x1 it is), ``jump_is_exact`` (True on straight
    paths: the jumps equal the data and the noise exactly), ``systems``.
    On a curved path the jumps are not exact; ``data_formula`` and ``noise_formula`` then give the
    exact predictions solved from the path.
    """
    c = get_convention(conv)
    sym = c.symbol
    facts = {k: endpoint_fact(c, k) for k in (0, 1)}
    exact = all(f.exact for f in facts.values())
    report = {
        "convention": c.name,
        "symbol": sym,
        "sampling": f"{sym} runs {c.t_noise} -> {c.t_data}",
        "noise_at": f"{sym} = {c.t_noise}",
        "data_at": f"{sym} = {c.t_data}",
        "interpolant": "x = " + _format_combination(in_own_symbol(c, interpolant(c))),
        "velocity_target": "v = " + _format_combination(in_own_symbol(c, velocity_target(c))),
        "update_rule": f"x' = x + ({sym}' - {sym})*v",
        "pred_x0": format_prediction(in_own_symbol(c, facts[0].formula)),
        "pred_x1": format_prediction(in_own_symbol(c, facts[1].formula)),
        "pred_x0_is": facts[0].lives_there,
        "pred_x1_is": facts[1].lives_there,
        "data_prediction": c.data_endpoint_name,
        "noise_prediction": c.noise_endpoint_name,
        "jump_is_exact": exact,
        "systems": c.systems,
    }
    if not exact:
        report["data_formula"] = sp.sstr(in_own_symbol(c, conversion("velocity", "data", c)))
        report["noise_formula"] = sp.sstr(in_own_symbol(c, conversion("velocity", "noise", c)))
    return report
