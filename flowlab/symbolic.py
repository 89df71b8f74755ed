"""The symbolic core: every prediction formula flowlab uses, derived with SymPy from first principles.

Nothing here is typed in by hand from a paper: each formula follows from one of two starting
points, and each claim about it is a remainder that must reduce to exactly 0.

1. The Euler update rule alone, ``x' = x + (s' - s) v`` (symbols :data:`X`, :data:`V`, :data:`S`,
   :data:`S_NEXT`). It is linear in the target time ``s'``, so "jumping" to an endpoint ``s' = 0``
   or ``s' = 1`` gives the prediction of whatever lives there: :func:`jump_to`.
2. The interpolant of a :class:`~flowlab.conventions.Convention`, ``x = alpha(t) D + beta(t) E``
   (``D`` data, ``E`` standard Gaussian noise, ``t`` = :data:`flowlab.conventions.T`). Its time
   derivative is the conditional velocity target: :func:`velocity_target`. Substituting both into a
   formula (:func:`on_path`) and simplifying says what the formula predicts (``D`` or ``E``).

Direction of time is whatever the convention says: conventional ``sigma`` runs 1 -> 0 (data at
``sigma = 0``), reversed ``t`` runs 0 -> 1 (data at ``t = 1``). See notebooks/NOTATION.md.

Closing the loop: :func:`identity_registry` pairs each derived expression with the hand-written torch
function from :mod:`flowlab.functional` or a :class:`Convention` method that the sampler uses;
:func:`compare` lambdifies the derived side to torch and measures the max abs difference on random
tensors (``x: (B, N)``, per-sample times ``t: (B,)``).

Simplification is targeted: :func:`reduce` (defined beside the conventions, which use it when they
are built) expands, cancels rational functions and only calls
``trigsimp`` when trigonometric functions remain; no bare ``simplify()``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, Sequence

import sympy as sp
import torch
from torch import Tensor

from . import functional as F
from .conventions import CONVENTIONAL, REVERSED, VP_COSINE, Convention, T, get_convention, reduce, vanishes
from .errors import FlowlabError

__all__ = [
    # symbols
    "X", "V", "S", "S_NEXT", "T", "T_NEXT", "D", "E", "DHAT", "EPS", "SCORE",
    "A", "B", "DA", "DB", "ABAR_T", "ABAR_S", "SIGMA", "G", "W", "V_COND", "V_UNCOND",
    "PARAMETRISATIONS",
    # helpers
    "reduce", "vanishes", "in_own_symbol", "format_prediction",
    # 1. the update rule and the endpoints
    "euler_update", "jump_to", "interpolant", "velocity_target", "on_path",
    "EndpointFact", "endpoint_fact", "jump_remainder",
    # 2. the map between conventions
    "euler_map_remainder", "prediction_map_remainder", "path_map_remainders",
    # 3. affine-path conversions
    "quantity", "conversion", "round_trip_remainder",
    # 4. DDPM / DDIM
    "ddpm_coefficients", "ddim_step", "ddim_sigma", "ddim_euler_remainder", "ddim_reparametrised_path",
    "ddim_step_affine", "ddim_minus_euler_affine",
    # 5. classifier-free guidance
    "cfg", "cfg_flip_remainder", "cfg_data_remainder", "cfg_scale_remainder",
    # proofs, reports, closing the loop
    "Proof", "proofs", "convention_report",
    "Domain", "TENSOR", "Identity", "to_torch", "torch_source", "compare", "identity_registry", "convention_identities",
    "measure_all",
]

# ---- symbols ---------------------------------------------------------------------------------

X = sp.Symbol("x", real=True)            #: the current state x (any shape: a symbol stands for each entry)
V = sp.Symbol("v", real=True)            #: the network output, a velocity dx/dtime
S = sp.Symbol("s", real=True)            #: current time of the bare update rule
S_NEXT = sp.Symbol("s_next", real=True)  #: target time of the bare update rule (s')
T_NEXT = sp.Symbol("t_next", real=True)  #: target time in the convention's variable (t')
D = sp.Symbol("D", real=True)            #: a data sample
E = sp.Symbol("E", real=True)            #: a standard Gaussian noise sample
DHAT = sp.Symbol("Dhat", real=True)      #: a data prediction (what DDPM papers call pred_x0)
EPS = sp.Symbol("epsilon", real=True)    #: a noise (epsilon) prediction
SCORE = sp.Symbol("score", real=True)    #: a score prediction, grad_x log p_t(x)
A = sp.Symbol("a", real=True)            #: generic path coefficient of D, a(t)
B = sp.Symbol("b", real=True)            #: generic path coefficient of E, b(t)
DA = sp.Symbol("da", real=True)          #: a'(t)
DB = sp.Symbol("db", real=True)          #: b'(t)
ABAR_T = sp.Symbol("abar_t", positive=True)  #: DDPM cumulative alpha at the current step, in (0, 1)
ABAR_S = sp.Symbol("abar_s", positive=True)  #: DDPM cumulative alpha at the next step, in (0, 1]
SIGMA = sp.Symbol("sigma", positive=True)    #: noise level of the reparametrised (VE) flow
G = sp.Symbol("g", real=True)            #: CFG scale, uncond + g (cond - uncond); g = 1 is no guidance
W = sp.Symbol("w", real=True)            #: CFG weight, (1 + w) cond - w uncond; w = 0 is no guidance
V_COND = sp.Symbol("v_c", real=True)     #: conditional network output
V_UNCOND = sp.Symbol("v_u", real=True)   #: unconditional network output

#: The four things a network can be trained to output, and the symbol used for each prediction.
PARAMETRISATIONS: dict[str, sp.Symbol] = {"velocity": V, "data": DHAT, "noise": EPS, "score": SCORE}


# ---- targeted simplification -------------------------------------------------------------------

def _collect(expr: sp.Expr, gens: Sequence[sp.Symbol] = (D, E)) -> sp.Expr:
    """Write a linear combination of ``gens`` with each coefficient reduced (for display)."""
    expanded = sp.expand(expr)
    parts = sp.collect(expanded, list(gens), evaluate=False)
    return sp.Add(*[reduce(c) * (1 if g == sp.S.One else g) for g, c in parts.items()])


def in_own_symbol(conv: Convention, expr: sp.Expr) -> sp.Expr:
    """``expr`` (written in :data:`T` and :data:`T_NEXT`) in the convention's own time symbol:
    ``sigma`` for the conventional convention, ``t`` for the reversed one."""
    own = sp.Symbol(conv.symbol, real=True)
    return expr.subs({T: own, T_NEXT: sp.Symbol(f"{conv.symbol}_next", real=True)})


def _signed(c: sp.Expr) -> tuple[str, str]:
    """Split a coefficient into a sign and a text, keeping ``1 - t`` as it reads (not ``-(t - 1)``)."""
    c = sp.expand(c)
    positive_lead = c.is_Add and c.as_coeff_Add()[0] > 0
    sign, mag = ("-", sp.expand(-c)) if c.could_extract_minus_sign() and not positive_lead else ("+", c)
    text = sp.sstr(mag)
    if mag == 1:
        return sign, ""
    if isinstance(mag, sp.Add) or (isinstance(mag, sp.Mul) and "/" in text):
        text = f"({text})"
    return sign, text + "*"


def format_prediction(expr: sp.Expr) -> str:
    """Format ``x + c v`` as a human string, e.g. ``x - sigma*v`` or ``x + (1 - t)*v``.

    Falls back to :func:`sympy.sstr` when ``expr`` is not of the form ``x + c v``.
    """
    e = sp.expand(expr)
    c = e.coeff(V)
    if sp.expand(e - X - c * V) != 0 or c.has(X) or c.has(V):
        return sp.sstr(expr)
    if c == 0:
        return "x"
    sign, text = _signed(c)
    return f"x {sign} {text}v"


def _format_combination(expr: sp.Expr) -> str:
    """Format ``p D + q E`` as ``p*D + q*E`` with parentheses around sums and fractions; a positive
    term goes first (``E - D``, not ``-D + E``)."""
    parts = sp.collect(sp.expand(expr), [D, E], evaluate=False)
    terms = [(*_signed(parts[gen]), gen) for gen in (D, E) if parts.get(gen, 0) != 0]
    terms.sort(key=lambda term: term[0] == "-")  # stable: keeps D before E among equal signs
    out = ""
    for sign, text, gen in terms:
        if not out:
            out = ("-" if sign == "-" else "") + text + str(gen)
        else:
            out += f" {sign} {text}{gen}"
    return out or "0"


# ---- 1. the update rule alone, and what the endpoints hold ------------------------------------

def euler_update(x: sp.Expr = X, v: sp.Expr = V, s: sp.Expr = S, s_next: sp.Expr = S_NEXT) -> sp.Expr:
    """The Euler update ``x' = x + (s' - s) v``: the same line of code in every convention."""
    return x + (s_next - s) * v


def jump_to(endpoint: int | sp.Expr, time: sp.Expr = S) -> sp.Expr:
    """The Euler update with the target time set to ``endpoint``: ``x + (endpoint - time) v``.

    ``jump_to(0)`` is ``x - s v`` (pred_x0), ``jump_to(1)`` is ``x + (1 - s) v`` (pred_x1). Which one
    is data depends on the convention only (see :func:`endpoint_fact`).
    """
    if isinstance(endpoint, str):  # text is parsed by an allow-list, never evaluated (sympify would eval it)
        from .conventions import parse_expression

        target = parse_expression(endpoint, what="endpoint", allow_t=False)
    else:
        target = sp.sympify(endpoint, strict=True)  # numbers and SymPy objects; no str() fallback
    return euler_update(s=time).subs(S_NEXT, target)


def interpolant(conv: Convention | str) -> sp.Expr:
    """``x_t = alpha(t) D + beta(t) E`` of a convention, in :data:`T`."""
    c = get_convention(conv)
    return c.alpha * D + c.beta * E


def velocity_target(conv: Convention | str) -> sp.Expr:
    """The conditional velocity ``d x_t / dt`` derived by differentiating the interpolant.

    Conventional: ``E - D``; reversed: ``D - E``; VP cosine: ``(pi/2)(cos(pi t/2) E - sin(pi t/2) D)``.
    """
    return sp.diff(interpolant(conv), T)


def on_path(expr: sp.Expr, conv: Convention | str, time: sp.Expr = S) -> sp.Expr:
    """Substitute ``x = alpha(t) D + beta(t) E``, ``v = alpha'(t) D + beta'(t) E`` and ``time -> t``
    into ``expr`` and simplify: what ``expr`` predicts when the network outputs the exact target."""
    c = get_convention(conv)
    sub = expr.subs(time, T).subs({X: interpolant(c), V: velocity_target(c)})
    return _collect(sub)


@dataclass(frozen=True)
class EndpointFact:
    """What the Euler jump to one endpoint predicts in one convention.

    Attributes:
        convention: the convention's name.
        endpoint: 0 or 1, the time the jump goes to.
        name: ``"pred_x0"`` or ``"pred_x1"``.
        formula: the jump, ``x + (endpoint - t) v``, in :data:`X`, :data:`V`, :data:`T`.
        on_path: ``formula`` with the interpolant and the velocity target substituted, reduced.
        lives_there: ``"data"`` or ``"noise"``: what the convention's path holds at ``endpoint``.
        exact: True when ``on_path`` is exactly ``D`` (data endpoint) or ``E`` (noise endpoint).
    """

    convention: str
    endpoint: int
    name: str
    formula: sp.Expr
    on_path: sp.Expr
    lives_there: str
    exact: bool


def endpoint_fact(conv: Convention | str, endpoint: int) -> EndpointFact:
    """Derive pred_x0 (``endpoint=0``) or pred_x1 (``endpoint=1``) from the update rule and prove
    what it is by substituting the path. Raises FlowlabError when ``endpoint`` is not an endpoint
    of the convention."""
    c = get_convention(conv)
    if endpoint not in (0, 1):
        raise FlowlabError(f"endpoint must be 0 or 1, got {endpoint!r}")
    if c.t_data == endpoint:
        lives, target = "data", D
    elif c.t_noise == endpoint:
        lives, target = "noise", E
    else:
        raise FlowlabError(f"convention {c.name!r} has no endpoint at t = {endpoint} "
                           f"(t_noise = {c.t_noise}, t_data = {c.t_data})")
    formula = jump_to(endpoint, T)
    got = on_path(formula, c, T)
    return EndpointFact(convention=c.name, endpoint=endpoint, name=f"pred_x{endpoint}", formula=formula,
                        on_path=got, lives_there=lives, exact=vanishes(got - target))


def jump_remainder(conv: Convention | str) -> sp.Expr:
    """``jump to t_data`` on the path minus ``D``: 0 for a straight path with the conditional
    velocity (the Euler jump is exact), non-zero for curved paths such as VP cosine."""
    c = get_convention(conv)
    return _collect(on_path(jump_to(c.t_data, T), c, T) - D)


# ---- 2. the map between conventions: t = 1 - sigma, v_rev = -v_conv ------------------------------

def euler_map_remainder() -> sp.Expr:
    """A reversed step ``x + (t' - t) v`` minus a conventional step with ``sigma = 1 - t``,
    ``sigma' = 1 - t'`` and ``v_conv = -v``. Reduces to 0: the trajectories are the same points."""
    reversed_step = euler_update(X, V, T, T_NEXT)
    conventional_step = euler_update(X, -V, 1 - T, 1 - T_NEXT)
    return reduce(reversed_step - conventional_step)


def prediction_map_remainder() -> sp.Expr:
    """pred_x1(reversed) at ``t`` minus pred_x0(conventional) at ``sigma = 1 - t`` with
    ``v_conv = -v_rev``. Reduces to 0: both are the data prediction."""
    pred_x1_reversed = jump_to(1, T)
    pred_x0_conventional = jump_to(0, S).subs({S: 1 - T, V: -V}, simultaneous=True)
    return reduce(pred_x1_reversed - pred_x0_conventional)


def path_map_remainders(a: Convention | str = CONVENTIONAL, b: Convention | str = REVERSED) -> tuple[sp.Expr, sp.Expr]:
    """``(x_b(t) - x_a(1 - t), v_b(t) + v_a(1 - t))``: both 0 when ``b`` is ``a`` with time flipped.

    The second follows from the first by the chain rule, d/dt f(1 - t) = -f'(1 - t): this is why
    the velocity changes sign under the map.
    """
    ca, cb = get_convention(a), get_convention(b)
    flip = {T: 1 - T}
    return (reduce(interpolant(cb) - interpolant(ca).subs(flip)),
            reduce(velocity_target(cb) + velocity_target(ca).subs(flip)))


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


# ---- closing the loop: derived expression vs hand-written torch function -------------------------

@dataclass(frozen=True)
class Domain:
    """How to draw one argument for a numeric comparison.

    kind: ``"tensor"`` (standard normal, shape ``(B, N)``), ``"per_sample"`` (uniform in
    ``[lo, hi]``, shape ``(B,)``: a time or a path coefficient per sample) or ``"scalar"`` (uniform
    in ``[lo, hi]``, one Python float, e.g. a CFG scale).
    """

    kind: str
    lo: float = 0.0
    hi: float = 1.0


TENSOR = Domain("tensor")


@dataclass(frozen=True)
class Identity:
    """A derived expression paired with the hand-written torch function that should equal it.

    ``hand`` takes tensors in the order of ``args``; per-sample arguments reach it as ``(B,)``
    tensors (the way a sampler passes ``t``), while the lambdified ``derived`` receives them as
    ``(B, 1)`` so they broadcast against ``(B, N)``.
    """

    name: str
    derived: sp.Expr
    args: tuple[sp.Symbol, ...]
    hand: Callable[..., Tensor]
    domains: tuple[Domain, ...]

    def __post_init__(self) -> None:
        if len(self.args) != len(self.domains):
            raise FlowlabError(f"identity {self.name!r}: {len(self.args)} args but {len(self.domains)} domains")
        extra = self.derived.free_symbols - set(self.args)
        if extra:
            raise FlowlabError(f"identity {self.name!r}: the derived expression uses {sorted(map(str, extra))}, "
                               "which are not among its args")

    @cached_property
    def torch_fn(self) -> Callable[..., Tensor]:
        """The derived expression lambdified to torch (built once)."""
        return to_torch(self.derived, self.args)


def to_torch(expr: sp.Expr, args: Sequence[sp.Symbol]) -> Callable[..., Tensor]:
    """Lambdify ``expr`` to a torch function of ``args`` (``sympy.lambdify(..., modules="torch")``).

    The result always returns a tensor broadcast over all tensor inputs, in their dtype, even when
    ``expr`` is a constant or ignores an input.
    """
    fn = sp.lambdify(list(args), expr, modules="torch")

    def wrapped(*values: Tensor | float) -> Tensor:
        out = fn(*values)
        tensors = [v for v in values if isinstance(v, Tensor)]
        if not isinstance(out, Tensor):
            ref = tensors[0]
            out = torch.full((), float(out), dtype=ref.dtype, device=ref.device)
        return torch.broadcast_tensors(out, *tensors)[0]

    wrapped.__doc__ = f"torch version of {sp.sstr(expr)}"
    wrapped.lambdified = fn  # type: ignore[attr-defined]
    return wrapped


def torch_source(expr: sp.Expr, args: Sequence[sp.Symbol]) -> str:
    """The Python source sympy generates for ``to_torch(expr, args)`` (for display)."""
    return inspect.getsource(sp.lambdify(list(args), expr, modules="torch"))


def _draw(domains: Sequence[Domain], batch: int, dim: int, dtype: torch.dtype, device: torch.device,
          generator: torch.Generator) -> list[Tensor | float]:
    values: list[Tensor | float] = []
    for dom in domains:
        if dom.kind == "tensor":
            values.append(torch.randn(batch, dim, generator=generator, dtype=torch.float64).to(device, dtype))
        elif dom.kind == "per_sample":
            u = torch.rand(batch, generator=generator, dtype=torch.float64)
            values.append((dom.lo + (dom.hi - dom.lo) * u).to(device, dtype))
        elif dom.kind == "scalar":
            u = float(torch.rand((), generator=generator, dtype=torch.float64))
            values.append(dom.lo + (dom.hi - dom.lo) * u)
        else:
            raise FlowlabError(f"unknown domain kind {dom.kind!r}; use 'tensor', 'per_sample' or 'scalar'")
    return values


def compare(identity: Identity, dtype: torch.dtype = torch.float64, *, seed: int = 0, batch: int = 16,
            dim: int = 32, device: torch.device | str = "cpu") -> float:
    """Max abs difference between the lambdified derived expression and the hand-written function.

    Inputs: random tensors ``(batch, dim)``, per-sample values ``(batch,)`` (seeded with ``seed``,
    drawn in float64 then cast to ``dtype``). Returns a Python float; NaN or inf inputs never occur
    because every domain stays away from singular points.
    """
    if dtype not in (torch.float32, torch.float64):
        raise FlowlabError(f"compare needs float32 or float64, got {dtype}")
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    values = _draw(identity.domains, batch, dim, dtype, device, gen)
    derived_inputs = [v.reshape(-1, 1) if dom.kind == "per_sample" else v
                      for v, dom in zip(values, identity.domains)]
    got = identity.torch_fn(*derived_inputs)
    want = identity.hand(*values)
    if got.shape != want.shape:
        got, want = torch.broadcast_tensors(got, want)
    return float((got.to(torch.float64) - want.to(torch.float64)).abs().max())


def _bc(x: Tensor, *coefs: Tensor) -> list[Tensor]:
    return [F.bcast(c, x) for c in coefs]


def _generic_hand() -> dict[tuple[str, str], Callable[..., Tensor]]:
    """Hand-written conversions on generic coefficients, composed from flowlab.functional only."""
    def v2d(x, v, a, b, da, db): return F.velocity_to_data(x, v, *_bc(x, a, b, da, db))
    def v2n(x, v, a, b, da, db): return F.velocity_to_noise(x, v, *_bc(x, a, b, da, db))
    def v2s(x, v, a, b, da, db): return F.noise_to_score(v2n(x, v, a, b, da, db), F.bcast(b, x))
    def d2v(x, d, a, b, da, db): return F.data_to_velocity(x, d, *_bc(x, a, b, da, db))
    def d2n(x, d, a, b, da, db): return F.data_to_noise(x, d, *_bc(x, a, b))
    def d2s(x, d, a, b, da, db): return F.noise_to_score(d2n(x, d, a, b, da, db), F.bcast(b, x))
    def n2v(x, e, a, b, da, db): return F.noise_to_velocity(x, e, *_bc(x, a, b, da, db))
    def n2d(x, e, a, b, da, db): return F.noise_to_data(x, e, *_bc(x, a, b))
    def n2s(x, e, a, b, da, db): return F.noise_to_score(e, F.bcast(b, x)).expand_as(x)
    def s2n(x, s, a, b, da, db): return F.score_to_noise(s, F.bcast(b, x)).expand_as(x)
    def s2v(x, s, a, b, da, db): return n2v(x, s2n(x, s, a, b, da, db), a, b, da, db)
    def s2d(x, s, a, b, da, db): return n2d(x, s2n(x, s, a, b, da, db), a, b, da, db)
    return {("velocity", "data"): v2d, ("velocity", "noise"): v2n, ("velocity", "score"): v2s,
            ("data", "velocity"): d2v, ("data", "noise"): d2n, ("data", "score"): d2s,
            ("noise", "velocity"): n2v, ("noise", "data"): n2d, ("noise", "score"): n2s,
            ("score", "noise"): s2n, ("score", "velocity"): s2v, ("score", "data"): s2d}


def _time_domain(conv: Convention) -> Domain:
    """Per-sample times strictly inside the convention's interval (10% margin at each end)."""
    lo, hi = sorted([conv.noise_time, conv.data_time])
    margin = 0.1 * (hi - lo)
    return Domain("per_sample", lo + margin, hi - margin)


def convention_identities(conv: Convention | str) -> tuple[Identity, ...]:
    """Derived vs hand-written pairs for one convention (built-in or custom ``Convention.affine``):
    interpolant, velocity target, and velocity -> data / noise / score, data / noise -> velocity,
    against the :class:`Convention` methods the sampler calls."""
    c = get_convention(conv)
    td = _time_domain(c)
    n = c.name
    out = [
        Identity(f"{n}: interpolant", interpolant(c), (D, E, T), c.interpolate, (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity target = d/dt interpolant", velocity_target(c), (D, E, T), c.velocity_target,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity -> data", conversion("velocity", "data", c), (X, V, T), c.pred_data,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity -> noise", conversion("velocity", "noise", c), (X, V, T), c.pred_noise,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: velocity -> score", conversion("velocity", "score", c), (X, V, T), c.score,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: data -> velocity", conversion("data", "velocity", c), (X, DHAT, T), c.velocity_from_data,
                 (TENSOR, TENSOR, td)),
        Identity(f"{n}: noise -> velocity", conversion("noise", "velocity", c), (X, EPS, T), c.velocity_from_noise,
                 (TENSOR, TENSOR, td)),
    ]
    return tuple(out)


def identity_registry() -> tuple[Identity, ...]:
    """Every derived expression paired with its hand-written torch counterpart."""
    unit = Domain("per_sample", 0.0, 1.0)
    inner = Domain("per_sample", 0.1, 0.9)
    out = [
        Identity("Euler update x + (s' - s) v", euler_update(), (X, V, S, S_NEXT), F.euler_step,
                 (TENSOR, TENSOR, unit, unit)),
        Identity("jump x + (s' - s) v to any time", euler_update(), (X, V, S, S_NEXT), F.jump,
                 (TENSOR, TENSOR, unit, unit)),
    ]
    # endpoint predictions of the two conventions, against functional.* and the Convention methods
    hand_endpoint = {("conventional", 0): F.conventional_pred_x0, ("conventional", 1): F.conventional_pred_x1,
                     ("reversed", 0): F.reversed_pred_x0, ("reversed", 1): F.reversed_pred_x1}
    for conv in (CONVENTIONAL, REVERSED):
        for k in (0, 1):
            fact = endpoint_fact(conv, k)
            method = conv.pred_x0 if k == 0 else conv.pred_x1
            label = f"{conv.name}: {fact.name} ({fact.lives_there})"
            out.append(Identity(f"{label} vs functional.{hand_endpoint[(conv.name, k)].__name__}", fact.formula,
                                (X, V, T), hand_endpoint[(conv.name, k)], (TENSOR, TENSOR, unit)))
            out.append(Identity(f"{label} vs Convention.{fact.name}", fact.formula, (X, V, T), method,
                                (TENSOR, TENSOR, unit)))
    # the map
    def conventional_step_mapped(x: Tensor, v: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
        return F.euler_step(x, F.flip_velocity(v), F.reversed_to_conventional_time(t),
                            F.reversed_to_conventional_time(t_next))

    def conventional_pred_x0_mapped(x: Tensor, v: Tensor, t: Tensor) -> Tensor:
        return CONVENTIONAL.pred_x0(x, F.flip_velocity(v), F.reversed_to_conventional_time(t))

    out += [
        Identity("map: reversed Euler step == conventional step (sigma = 1 - t, v -> -v)",
                 euler_update(X, V, T, T_NEXT), (X, V, T, T_NEXT), conventional_step_mapped,
                 (TENSOR, TENSOR, unit, unit)),
        Identity("map: pred_x1(reversed) == pred_x0(conventional)", jump_to(1, T), (X, V, T),
                 conventional_pred_x0_mapped, (TENSOR, TENSOR, unit)),
    ]
    # generic affine conversions against functional.*
    coef = (Domain("per_sample", 0.25, 1.0), Domain("per_sample", 0.25, 1.0),
            Domain("per_sample", -1.5, -0.5), Domain("per_sample", 0.5, 1.5))
    for (src, dst), hand in _generic_hand().items():
        out.append(Identity(f"affine (generic a, b): {src} -> {dst}", conversion(src, dst),
                            (X, PARAMETRISATIONS[src], A, B, DA, DB), hand, (TENSOR, TENSOR) + coef))
    # each built-in convention against its methods
    for conv in (CONVENTIONAL, REVERSED, VP_COSINE):
        out += convention_identities(conv)

    # DDIM == Euler of the reparametrised flow
    def euler_reparametrised(x: Tensor, eps: Tensor, abar_t: Tensor, abar_s: Tensor) -> Tensor:
        at, as_ = F.bcast(abar_t, x), F.bcast(abar_s, x)
        sigma_t, sigma_s = torch.sqrt((1 - at) / at), torch.sqrt((1 - as_) / as_)
        return torch.sqrt(as_) * F.euler_step(x / torch.sqrt(at), eps, sigma_t, sigma_s)

    out.append(Identity("DDIM step (eta = 0) == Euler in sigma on x / sqrt(abar)", ddim_step(),
                        (X, EPS, ABAR_T, ABAR_S), euler_reparametrised,
                        (TENSOR, TENSOR, Domain("per_sample", 0.05, 0.5), Domain("per_sample", 0.5, 0.99))))

    # classifier-free guidance
    scale = Domain("scalar", 0.0, 8.0)

    def cfg_flipped(vc: Tensor, vu: Tensor, g: float) -> Tensor:
        return F.flip_velocity(F.cfg(F.flip_velocity(vc), F.flip_velocity(vu), g))

    def cfg_w(vc: Tensor, vu: Tensor, w: float) -> Tensor:
        return F.cfg(vc, vu, 1 + w)

    def cfg_of_data(x: Tensor, vc: Tensor, vu: Tensor, t: Tensor, g: float) -> Tensor:
        return F.cfg(REVERSED.pred_data(x, vc, t), REVERSED.pred_data(x, vu, t), g)

    out += [
        Identity("CFG uncond + g (cond - uncond)", cfg(), (V_COND, V_UNCOND, G), F.cfg, (TENSOR, TENSOR, scale)),
        Identity("CFG commutes with v -> -v", cfg(), (V_COND, V_UNCOND, G), cfg_flipped, (TENSOR, TENSOR, scale)),
        Identity("CFG (1 + w) cond - w uncond == cfg(g = 1 + w)", (1 + W) * V_COND - W * V_UNCOND,
                 (V_COND, V_UNCOND, W), cfg_w, (TENSOR, TENSOR, Domain("scalar", -1.0, 7.0))),
        Identity("CFG commutes with velocity -> data (reversed)",
                 conversion("velocity", "data", REVERSED).subs(V, cfg()), (X, V_COND, V_UNCOND, T, G), cfg_of_data,
                 (TENSOR, TENSOR, TENSOR, Domain("per_sample", 0.0, 1.0), scale)),
    ]
    return tuple(out)


def measure_all(dtype: torch.dtype = torch.float64, *, seed: int = 0,
                identities: Sequence[Identity] | None = None) -> dict[str, float]:
    """``{identity name: max abs error}`` for every identity of :func:`identity_registry`."""
    items = identity_registry() if identities is None else identities
    return {idn.name: compare(idn, dtype, seed=seed) for idn in items}

