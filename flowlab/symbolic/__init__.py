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

from ..conventions import T, reduce, vanishes
from .core import (X, V, S, S_NEXT, T_NEXT, D, E, DHAT, EPS, SCORE, A, B, DA, DB, ABAR_T, ABAR_S, SIGMA, G, W,
    V_COND, V_UNCOND, PARAMETRISATIONS, in_own_symbol, format_prediction, euler_update, jump_to, interpolant,
    velocity_target, on_path, EndpointFact, endpoint_fact, jump_remainder, euler_map_remainder,
    prediction_map_remainder, path_map_remainders)
from .affine import (quantity, conversion, round_trip_remainder, ddpm_coefficients, ddim_step, ddim_sigma,
    ddim_euler_remainder, ddim_reparametrised_path, ddim_step_affine, ddim_minus_euler_affine, cfg,
    cfg_flip_remainder, cfg_data_remainder, cfg_scale_remainder, Proof, proofs, convention_report)
from .closing import (Domain, TENSOR, Identity, to_torch, torch_source, compare, identity_registry,
    convention_identities, measure_all)
from .core import _format_combination  # noqa: F401 (the inspector formats with it)

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
