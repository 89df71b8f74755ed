"""The portability run (tools/portability.py): nbval over every notebook under several CPU configurations.

The full run takes 3-4 min a configuration, so it is opt-in: ``python -m pytest -m portability
tests/test_portability.py`` (or ``python tools/portability.py``). The report logic is tested on every run.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("portability", ROOT / "tools" / "portability.py")
portability = importlib.util.module_from_spec(_spec)
sys.modules["portability"] = portability  # dataclasses look their module up there
_spec.loader.exec_module(portability)


def _outcome(name: str, passed: bool, claims: list[dict]):
    config = portability.Config(name, "default", 1)
    return portability.Outcome(config, passed, "1 passed", 1.0, "DEFAULT 1", claims)


def _claim(statement: str, error: float | None, tol: float, passed: bool = True) -> dict:
    return {"claim": statement, "error": error, "tol": tol, "passed": passed, "kind": "error", "notebook": ""}


def test_margins_take_the_largest_value_over_configurations_and_flag_failures() -> None:
    a = _outcome("a", True, [_claim("x", 1e-6, 1e-5), _claim("y", 0.2, 1.0)])
    b = _outcome("b", False, [_claim("x", 7e-6, 1e-5), _claim("y", None, 1.0, passed=False)])
    rows = {r["claim"]: r for r in portability.claim_margins([a, b])}
    assert rows["x"]["max"] == pytest.approx(7e-6) and rows["x"]["ratio"] == pytest.approx(0.7)
    assert rows["x"]["failed_in"] == [] and rows["y"]["failed_in"] == ["b"]
    text = portability.report([a, b], portability.claim_margins([a, b]), [])
    assert "| near |" in text and "FAILED in b" in text and "FAIL: 1 passed" in text


def test_configurations_cover_what_the_issue_asks() -> None:
    caps = {c.capability for c in portability.CONFIGS}
    threads = {c.omp_threads for c in portability.CONFIGS}
    assert {"default", "avx2", "avx512"} <= caps and {1, 2} <= threads
    assert any(c.torch_threads and c.torch_threads != c.omp_threads for c in portability.CONFIGS)
    assert not portability.supported(portability.Config("z", "avx512", 1), {"avx2"})


@pytest.mark.portability
def test_every_notebook_passes_under_every_cpu_configuration(tmp_path: Path) -> None:
    assert portability.main(["--out", str(tmp_path)]) == 0, (tmp_path / "report.md").read_text()
