"""Timestep conventions: one frozen object per convention, the single source of truth.

A convention describes an affine probability path in one time variable ``t``::

    x_t = alpha(t) * D + beta(t) * E        D = data, E ~ N(0, I)
    v   = alpha'(t) * D + beta'(t) * E      (the velocity target a network learns)

together with the two endpoints ``t_noise`` (where ``x`` is pure noise: alpha = 0, beta = 1) and
``t_data`` (where ``x`` is the data: alpha = 1, beta = 0). Sampling integrates from ``t_noise`` to
``t_data``; the direction of time is the sign of ``t_data - t_noise``.

The two conventions at the heart of flowlab are built in:

* :data:`CONVENTIONAL` (diffusers FlowMatchEuler, SD3, Flux): ``sigma`` runs 1 -> 0,
  ``x = (1 - sigma) D + sigma E``, ``v = E - D``, data prediction ``pred_x0 = x - sigma v``.
* :data:`REVERSED` (Hunyuan3D-2 shapegen, SiT, Lipman flow matching): ``t`` runs 0 -> 1,
  ``x = t D + (1 - t) E``, ``v = D - E``, data prediction ``pred_x1 = x + (1 - t) v``.

Others are made with :meth:`Convention.affine` (any affine path, e.g. :data:`VP_COSINE`).
The coefficients are SymPy expressions in the symbol :data:`T`, so the symbolic module derives
from the very objects the sampler uses.

SymPy runs only when a convention is BUILT: the checks, the derivatives, the torch functions of the
coefficients and every derived fact (``direction``, ``is_straight``, the endpoints as floats, the
prediction names) are computed once in ``__post_init__`` and stored as fields. The tensor maps the
sampler and its callbacks call (``pred_data``, ``pred_noise``, ``score``, ...) never call SymPy
(``tests/test_conventions.py`` checks this with a profiler).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy as sp
import torch
from torch import Tensor

from . import functional as F
from ._expressions import CHECK_SECONDS, T, _coefficient, _exact, _short, _time_limit, parse_expression
from .errors import FlowlabError
from .inputs import check_not_at, check_tensor, check_times

__all__ = ["T", "reduce", "vanishes", "parse_expression", "Convention", "CONVENTIONAL", "REVERSED", "VP_COSINE", "CONVENTIONS", "get_convention"]


def reduce(expr: sp.Expr) -> sp.Expr:
    """Targeted simplification: expand, put over one denominator and cancel; ``trigsimp`` (on the
    single fraction) only if sines or cosines remain, then cancel once more. No bare ``simplify()``."""
    out = sp.together(sp.expand(expr))
    if out.has(sp.sin, sp.cos, sp.tan):
        out = sp.together(sp.expand(out.replace(sp.tan, lambda arg: sp.sin(arg) / sp.cos(arg))))
        out = sp.trigsimp(out)
    return sp.cancel(out)


def vanishes(expr: sp.Expr) -> bool:
    """True when ``expr`` reduces to exactly 0 (an exact symbolic check, no floats).

    A constant that :func:`reduce` leaves unreduced (e.g. ``exp(log(2)) - 2``) is decided by SymPy's
    ``Expr.equals``, which proves zero-ness of constants.
    """
    if reduce(expr) == 0:
        return True
    return not expr.free_symbols and expr.equals(0) is True


def _torch_fn(expr: sp.Expr) -> Callable[[Tensor], Tensor]:
    """Lambdify ``expr(T)`` to a torch function that always returns a tensor shaped like ``t``."""
    f = sp.lambdify(T, expr, modules="torch")

    def g(t: Tensor) -> Tensor:
        out = f(t)
        if not isinstance(out, Tensor):  # a constant coefficient, e.g. alpha' = -1
            out = torch.full_like(t, float(out))
        return out

    return g


@dataclass(frozen=True)
class Convention:
    """One timestep convention. Build custom ones with :meth:`affine`; never mutate.

    Attributes:
        name: registry name (``"conventional"``, ``"reversed"``, ...).
        symbol: what the time variable is called in that world (``"sigma"`` or ``"t"``).
        alpha: SymPy expression in :data:`T`, coefficient of the data ``D``.
        beta: SymPy expression in :data:`T`, coefficient of the noise ``E``.
        t_noise: time at which ``x`` is pure noise (sampling starts here).
        t_data: time at which ``x`` is the data (sampling ends here).
        systems: who uses it, for cards and tables.
    """

    name: str
    symbol: str
    alpha: sp.Expr
    beta: sp.Expr
    t_noise: sp.Expr
    t_data: sp.Expr
    systems: str = ""
    _fns: dict = field(default_factory=dict, repr=False, compare=False)
    # ---- derived facts: computed once in __post_init__ (SymPy runs here and nowhere on the sampling path)
    #: ``d alpha / dt`` and ``d beta / dt`` (SymPy expressions in :data:`T`).
    dalpha: sp.Expr = field(init=False, repr=False, compare=False)
    dbeta: sp.Expr = field(init=False, repr=False, compare=False)
    #: ``t_noise`` and ``t_data`` as Python floats, for tensor code.
    noise_time: float = field(init=False, repr=False, compare=False)
    data_time: float = field(init=False, repr=False, compare=False)
    #: +1 when time increases during sampling (noise at the smaller time), else -1.
    direction: int = field(init=False, repr=False, compare=False)
    #: True for the straight (rectified / CondOT) path: alpha + beta = 1 and both linear in t.
    is_straight: bool = field(init=False, repr=False, compare=False)
    #: ``"pred_x0"`` if the data sits at t = 0, ``"pred_x1"`` if it sits at t = 1 (else ``"pred_x(<t>)"``).
    data_endpoint_name: str = field(init=False, repr=False, compare=False)
    #: The same for the noise endpoint.
    noise_endpoint_name: str = field(init=False, repr=False, compare=False)

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def affine(
        cls,
        name: str,
        alpha: sp.Expr | str,
        beta: sp.Expr | str,
        *,
        t_noise: float | sp.Expr,
        t_data: float | sp.Expr,
        symbol: str = "t",
        systems: str = "",
    ) -> "Convention":
        """Define a convention from an affine path ``x = alpha(t) D + beta(t) E``.

        ``alpha`` and ``beta`` are SymPy expressions in :data:`T` (or strings in ``t``).
        Raises :class:`FlowlabError` when the endpoints coincide, when the path does not reach
        pure data / pure noise at them, or when (alpha, beta) -> (x, v) is not invertible
        somewhere strictly between the endpoints (then no data prediction exists there).
        """
        if not isinstance(name, str) or not name:
            raise FlowlabError(f"a convention needs a non-empty name (a string), got {name!r}")
        for label, text in (("symbol", symbol), ("systems", systems)):
            if not isinstance(text, str):
                raise FlowlabError(f"convention {name!r}: {label} must be a string, got {type(text).__name__}")
        a = _coefficient(alpha, f"convention {name!r}: alpha")
        b = _coefficient(beta, f"convention {name!r}: beta")
        free = (a.free_symbols | b.free_symbols) - {T}
        if free:
            raise FlowlabError(
                f"convention {name!r}: the coefficients may depend on t only, found {sorted(map(str, free))}; "
                "build them from flowlab.conventions.T")
        return cls(name=name, symbol=symbol, alpha=a, beta=b, t_noise=_exact(t_noise, f"convention {name!r}: t_noise"),
                   t_data=_exact(t_data, f"convention {name!r}: t_data"), systems=systems)

    def __post_init__(self) -> None:
        try:
            with _time_limit(CHECK_SECONDS, f"convention {self.name!r}"):
                self._derive()
                self._check()
        except FlowlabError:
            raise
        except (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError) as exc:
            # SymPy could not decide a check (e.g. a coefficient it cannot evaluate at the endpoints)
            raise FlowlabError(f"convention {self.name!r}: cannot check the path x = ({self.alpha}) D + ({self.beta}) E "
                               f"between t_noise = {self.t_noise} and t_data = {self.t_data} "
                               f"({type(exc).__name__}: {exc}); use simpler coefficients") from None

    def _derive(self) -> None:
        """Compute every SymPy fact once and store it (the dataclass is frozen, hence ``object.__setattr__``)."""
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put("dalpha", sp.diff(self.alpha, T))
        put("dbeta", sp.diff(self.beta, T))
        put("noise_time", float(self.t_noise))
        put("data_time", float(self.t_data))
        put("direction", 1 if self.data_time > self.noise_time else -1)
        put("is_straight", bool(self.alpha.is_polynomial(T) and sp.degree(sp.expand(self.alpha), T) <= 1
                                and vanishes(self.alpha + self.beta - 1)))

        def name(at: sp.Expr) -> str:
            return f"pred_x{int(at)}" if at in (0, 1) else f"pred_x({at})"

        put("data_endpoint_name", name(self.t_data))
        put("noise_endpoint_name", name(self.t_noise))

    def _check(self) -> None:
        n, d = self.t_noise, self.t_data
        if vanishes(n - d):
            raise FlowlabError(f"convention {self.name!r}: t_noise and t_data are both {n}; the endpoints must differ")
        checks = [
            ("alpha(t_data)", self.alpha.subs(T, d), 1),
            ("beta(t_data)", self.beta.subs(T, d), 0),
            ("alpha(t_noise)", self.alpha.subs(T, n), 0),
            ("beta(t_noise)", self.beta.subs(T, n), 1),
        ]
        for label, got, want in checks:
            if not vanishes(got - want):
                raise FlowlabError(
                    f"convention {self.name!r}: {label} = {got}, expected {want}: the path must be pure data "
                    "at t_data (alpha = 1, beta = 0) and pure noise at t_noise (alpha = 0, beta = 1)")
        # torch functions of the coefficients, built once here so traced/compiled code never calls SymPy
        for key, expr in (("a", self.alpha), ("b", self.beta), ("da", self.dalpha), ("db", self.dbeta)):
            self._fns[key] = _torch_fn(expr)
        det = self.alpha * self.dbeta - self.dalpha * self.beta  # only evaluated at points: no simplification
        lo, hi = (sp.nsimplify(v) for v in sorted([self.noise_time, self.data_time]))  # once: nsimplify is slow
        for k in range(1, 64):
            tk = sp.Rational(k, 64) * (hi - lo) + lo
            value = det.subs(T, tk).evalf()
            for label, coef in (("alpha", self.alpha), ("beta", self.beta)):
                got = coef.subs(T, tk).evalf()
                if got.has(sp.I) or not got.is_finite:
                    raise FlowlabError(
                        f"convention {self.name!r}: {label}({tk}) = {_short(got)} is not a finite real number; a "
                        "path's coefficients must be real between the endpoints (e.g. no sqrt or log of a "
                        "negative number there)")
            if not value.is_finite or abs(value) < 1e-12:
                raise FlowlabError(
                    f"convention {self.name!r}: alpha*beta' - alpha'*beta = {value} at t = {tk}; (x, v) does not "
                    "determine (data, noise) there, so no data prediction exists. Use coefficients whose "
                    "determinant stays non-zero between the endpoints")

    # ---- numbers from the stored torch functions (no SymPy from here to _show) -----------------
    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(alpha, beta, alpha', beta')`` evaluated at ``t`` (a tensor), each shaped like ``t``."""
        return self._fns["a"](t), self._fns["b"](t), self._fns["da"](t), self._fns["db"](t)

    def _entry(self, method: str, x: Tensor, y: Tensor | None, t: Tensor | float, y_name: str = "v") -> None:
        """Entry checks of the tensor maps (flowlab.inputs): real floating tensors, times in the interval."""
        where = f"{self.name}.{method}"
        check_tensor(x, "x", where=where)
        if y is not None:
            check_tensor(y, y_name, where=where)
        check_times(t, self, where=where)

    def _coeffs_like(self, t: Tensor | float, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        tt = F.bcast(torch.as_tensor(t, dtype=x.dtype if x.is_floating_point() else None, device=x.device), x)
        return self.coefficients(tt)

    # ---- the tensor maps the sampler uses ---------------------------------------------------
    def interpolate(self, data: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
        """``x_t = alpha(t) D + beta(t) E``; ``t`` scalar or ``(B,)``."""
        a, b, _, _ = self._coeffs_like(t, data)
        return a * data + b * noise

    def velocity_target(self, data: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
        """The training target ``alpha'(t) D + beta'(t) E`` (``E - D`` conventional, ``D - E`` reversed)."""
        _, _, da, db = self._coeffs_like(t, data)
        return da * data + db * noise

    def pred_data(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """The data prediction from ``(x, v)`` at time ``t``.

        Straight paths: the Euler jump to ``t_data`` (conventional ``x - sigma v``, reversed
        ``x + (1 - t) v``). Other affine paths: the solution of the 2x2 system.
        """
        self._entry("pred_data", x, v, t)
        return self._pred_data(x, v, t)

    def _pred_data(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """:meth:`pred_data` without the entry checks: any time, even outside the interval (flowlab.testing
        evaluates a user's mistaken times, e.g. ``t * 1000``, to diagnose them)."""
        if self.is_straight:
            return F.jump(x, v, t, self.data_time)
        return F.velocity_to_data(x, v, *self._coeffs_like(t, x))

    def pred_noise(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """The noise prediction (conventional ``x + (1 - sigma) v``, reversed ``x - t v``)."""
        self._entry("pred_noise", x, v, t)
        return self._pred_noise(x, v, t)

    def _pred_noise(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """:meth:`pred_noise` without the entry checks (see :meth:`_pred_data`)."""
        if self.is_straight:
            return F.jump(x, v, t, self.noise_time)
        return F.velocity_to_noise(x, v, *self._coeffs_like(t, x))

    def pred_x0(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """Whatever lives at t = 0: data in the conventional convention, NOISE in the reversed one."""
        return self._endpoint(0, x, v, t)

    def pred_x1(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """Whatever lives at t = 1: noise in the conventional convention, DATA in the reversed one."""
        return self._endpoint(1, x, v, t)

    def _endpoint(self, s: int, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        if self.data_time == s:
            return self.pred_data(x, v, t)
        if self.noise_time == s:
            return self.pred_noise(x, v, t)
        raise FlowlabError(f"convention {self.name!r} has no endpoint at t = {s} "
                           f"(its endpoints are t_noise = {self.t_noise}, t_data = {self.t_data})")

    def velocity_from_data(self, x: Tensor, d: Tensor, t: Tensor | float) -> Tensor:
        """Velocity from a data prediction (inverse of :meth:`pred_data`; not at ``t_data``)."""
        self._entry("velocity_from_data", x, d, t, "d")
        check_not_at(t, self, "t_data", quantity="velocity_from_data",
                     reason="the velocity is (x - alpha d) beta' / beta + alpha' d and beta(t_data) = 0")
        return F.data_to_velocity(x, d, *self._coeffs_like(t, x))

    def velocity_from_noise(self, x: Tensor, e: Tensor, t: Tensor | float) -> Tensor:
        """Velocity from a noise prediction (inverse of :meth:`pred_noise`; not at ``t_noise``)."""
        self._entry("velocity_from_noise", x, e, t, "e")
        check_not_at(t, self, "t_noise", quantity="velocity_from_noise",
                     reason="the velocity is (x - beta e) alpha' / alpha + beta' e and alpha(t_noise) = 0")
        return F.noise_to_velocity(x, e, *self._coeffs_like(t, x))

    def score(self, x: Tensor, v: Tensor, t: Tensor | float) -> Tensor:
        """Score ``grad log p_t(x)`` implied by the velocity (``-E / beta``; not at ``t_data``)."""
        self._entry("score", x, v, t)
        check_not_at(t, self, "t_data", quantity="score",
                     reason="the score is -E / beta and beta(t_data) = 0 (the data distribution has no smooth score)")
        _, b, _, _ = self._coeffs_like(t, x)
        return F.noise_to_score(self.pred_noise(x, v, t), b)

    def _show(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` written in this convention's own time symbol (``sigma`` or ``t``)."""
        return expr.subs(T, sp.Symbol(self.symbol, real=True))

    def summary(self) -> dict:
        """Plain-text facts for tables, cards and JSON."""
        return {
            "name": self.name,
            "symbol": self.symbol,
            "sampling": f"{self.symbol} runs {self.t_noise} -> {self.t_data}",
            "noise_at": str(self.t_noise),
            "data_at": str(self.t_data),
            "interpolant": f"x = ({sp.sstr(self._show(self.alpha))}) D + ({sp.sstr(self._show(self.beta))}) E",
            "velocity_target": f"({sp.sstr(self._show(self.dalpha))}) D + ({sp.sstr(self._show(self.dbeta))}) E",
            "data_prediction": self.data_endpoint_name,
            "systems": self.systems,
        }


CONVENTIONAL = Convention.affine(
    "conventional", 1 - T, T, t_noise=1, t_data=0, symbol="sigma",
    systems="diffusers FlowMatchEulerDiscreteScheduler, SD3, Flux, Wan")
REVERSED = Convention.affine(
    "reversed", T, 1 - T, t_noise=0, t_data=1, symbol="t",
    systems="Hunyuan3D-2 shapegen, SiT, Lipman et al. flow matching, torchcfm")
VP_COSINE = Convention.affine(
    "vp_cosine", sp.cos(sp.pi * T / 2), sp.sin(sp.pi * T / 2), t_noise=1, t_data=0, symbol="t",
    systems="variance-preserving cosine path (alpha^2 + beta^2 = 1)")

#: Registry of named conventions.
CONVENTIONS: dict[str, Convention] = {c.name: c for c in (CONVENTIONAL, REVERSED, VP_COSINE)}


def get_convention(name: str | Convention) -> Convention:
    """Look a convention up by name (or pass one through). Unknown names list the valid ones."""
    if isinstance(name, Convention):
        return name
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise FlowlabError(
            f"unknown convention {name!r}; valid names: {', '.join(sorted(CONVENTIONS))}") from None
