"""Checks of code flowlab did not write: a user's sampling loop, prediction function or scheduler.

Each check drives the user's code with an EXACT model (a Gaussian mixture whose velocity is known in closed
form) and returns a :class:`~flowlab.testing.report.Report` whose findings name the mistake (see
:data:`~flowlab.testing.report.FINDING_CODES`):

* :func:`check_sampler` (``fn(model, x, steps) -> samples``): the loop's output against the exact ODE solution;
* :func:`check_prediction` (``fn(x, v, t) -> prediction``): a data / noise prediction against the known truth;
* ``check_scheduler`` (:mod:`flowlab.testing.scheduler`): a scheduler object, as the inspector reads it.

The pytest plugin (:mod:`flowlab.testing.plugin`, registered as ``flowlab``) gives fixtures for the three and
``pytest --flowlab-claims NOTEBOOKS`` (each ``flowlab.claims.claim`` in a notebook becomes a test item).
"""
from ._exact import ProbeModel as ExactModel
from .prediction import check_prediction
from .report import FINDING_CODES, Finding, Report
from .sampler import check_sampler
from .scheduler import check_scheduler

__all__ = ["FINDING_CODES", "Finding", "Report", "ExactModel", "exact_model", "check_sampler", "check_prediction",
           "check_scheduler"]


def exact_model(convention: str = "conventional", *, time_scale: float = 1.0, signature: str = "positional",
                dim: int = 2) -> ExactModel:
    """The model check_sampler hands to a loop (exact velocity of the asymmetric probe mixture), to run a loop on
    it yourself and look at ``model.calls`` (each call's state ``x``, time ``t`` in the convention's units and
    velocity ``v``)."""
    from ..conventions import get_convention
    from ._exact import probe_mixture
    return ExactModel(probe_mixture(dim), get_convention(convention), float(time_scale), signature)

