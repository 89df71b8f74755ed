"""Checks of code flowlab did not write: a user's sampling loop, prediction function or scheduler.

Each check drives the user's code with an EXACT model (a Gaussian mixture whose velocity is known in closed
form) and returns a :class:`~flowlab.testing.report.Report` whose findings name the mistake (see
:data:`~flowlab.testing.report.FINDING_CODES`).
"""
from .report import FINDING_CODES, Finding, Report
from .scheduler import check_scheduler

__all__ = ["FINDING_CODES", "Finding", "Report", "check_scheduler"]
