"""The symbols, formatting, and what the update rule alone implies (sections 1 and 2 of :mod:`flowlab.symbolic`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from ..conventions import CONVENTIONAL, REVERSED, Convention, T, get_convention, reduce, vanishes
from ..errors import FlowlabError

__all__ = ["X", "V", "S", "S_NEXT", "T_NEXT", "D", "E", "DHAT", "EPS", "SCORE", "A", "B", "DA", "DB", "ABAR_T",
           "ABAR_S", "SIGMA", "G", "W", "V_COND", "V_UNCOND", "PARAMETRISATIONS", "in_own_symbol",
           "format_prediction", "euler_update", "jump_to", "interpolant", "velocity_target", "on_path",
           "EndpointFact", "endpoint_fact", "jump_remainder", "euler_map_remainder", "prediction_map_remainder",
           "path_map_remainders"]


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
        from ..conventions import parse_expression

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
