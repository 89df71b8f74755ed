"""Findings and reports: what flowlab's checks of USER code say, in words and with the numbers behind them.

A check (:func:`flowlab.testing.check_sampler`, ``check_prediction``, ``check_scheduler``) returns a
:class:`Report`: ``report.ok`` is True when no finding was made, ``str(report)`` reads as sentences, and
``report.to_dict()`` is JSON-ready (``flowlab check --json``). Every finding has a stable ``code`` from
:data:`FINDING_CODES` so that a CI job can match on it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINDING_CODES", "Finding", "Report"]

#: Stable finding codes and what each one means. Checks may only emit these codes.
FINDING_CODES: dict[str, str] = {
    "wrong_direction": "the loop runs from data towards noise (time runs the wrong way)",
    "noise_as_data": "the loop returns or guides with the noise prediction where the data prediction is meant "
                     "(Hunyuan3D-2 issue #124: x - t v is the noise in the reversed convention)",
    "wasted_last_step": "a model call whose step moves nothing (dt = 0): fewer effective steps than calls",
    "double_shift": "the time shift is applied twice (diffusers #13243)",
    "time_scale": "the model is called with time on the wrong scale (e.g. 0-1 where 0-1000 is expected)",
    "t_vs_sigma": "t is passed where 1 - t (sigma) is meant, or the other way round",
    "fp16_time": "the time is rounded to half precision before the model sees it",
    "not_at_data": "the loop stops short of the data endpoint",
    "sign_flip": "the velocity enters the update with the wrong sign",
    "wrong_shift": "the schedule is shifted by a different amount or in the other direction than expected",
    "wrong_output": "the scheduler expects a different model output (velocity E - D / D - E, epsilon, data, v) than declared",
    "solver_order": "the scheduler's solver order (1 = Euler / DDIM, 2 = Heun / DPM-Solver++(2M), ...) is not the declared one",
    "bad_output": "the loop's output has the wrong shape, dtype or device, or is not finite",
    "mutates_input": "the loop or function overwrites a tensor it was given",
    "unknown_mismatch": "the result is wrong and matches none of the known mistakes",
}


@dataclass(frozen=True)
class Finding:
    """One thing a check found wrong: a stable ``code``, a sentence, and the evidence (numbers) behind it."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in FINDING_CODES:
            raise ValueError(f"unknown finding code {self.code!r}; known codes: {', '.join(FINDING_CODES)}")

    def __str__(self) -> str:
        ev = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.evidence.items())
        return f"[{self.code}] {self.message}" + (f" ({ev})" if ev else "")


@dataclass(frozen=True)
class Report:
    """The result of one check: ``subject`` (what was checked), the findings, and facts measured on the way."""

    subject: str
    findings: tuple[Finding, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)

    def __bool__(self) -> bool:  # `assert report` reads as `assert report.ok`
        return self.ok

    def __str__(self) -> str:
        head = f"{self.subject}: " + ("PASS" if self.ok else f"FAIL ({len(self.findings)} finding"
                                      f"{'s' if len(self.findings) != 1 else ''})")
        lines = [head] + [f"  - {f}" for f in self.findings]
        if self.facts:
            lines.append("  facts: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in self.facts.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "ok": self.ok,
                "findings": [{"code": f.code, "message": f.message, "evidence": _jsonable(f.evidence)}
                             for f in self.findings],
                "facts": _jsonable(self.facts)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, float) for x in v):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return str(v)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    try:  # numpy / torch scalars
        return obj.item()
    except (AttributeError, ValueError, RuntimeError):
        return str(obj)
