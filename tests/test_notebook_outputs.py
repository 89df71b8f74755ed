"""Stored notebook outputs must not depend on round-off: they are compared exactly by nbval on other CPUs.

Rules, applied to every committed notebook (tutorials and exercises):

1. No cell result (``execute_result``) is a bare float: a cell never echoes a measured number.
2. No printed number carries more than :data:`MAX_SIGNIFICANT` significant digits (a raw float printed
   with ``print(x)`` or ``repr``).
3. A claim line prints its tolerance, never the measured value; a number inside the claim's statement
   (an input such as ``t = 0.80``, or a value formatted in, ``f"... SW2 {x:.2f} ..."``) carries at most
   :data:`CLAIM_SIGNIFICANT` significant digits, so the line is the same wherever the claim holds.

Rules 1-3 catch what a scan can see; whether the remaining printed numbers are the same on every CPU is
shown by running every notebook under several CPU configurations (``tools/portability.py``,
``pytest -m portability``). The scanner is tested below on outputs that break each rule (so it can fail)
and on ones that keep them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
MAX_SIGNIFICANT = 5
CLAIM_SIGNIFICANT = 3

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+|\.\d+)(?![\w.])", re.I)
_BARE_FLOAT = re.compile(r"\s*(?:tensor\(|np\.float\d*\(|array\()?\s*[-+]?(?:\d+\.\d*|\.\d+)(?:e[-+]?\d+)?"
                         r"(?:,\s*dtype=\w+(?:\.\w+)?)?\)?\s*", re.I)
_CLAIM_TOL = re.compile(r"^PASS  .*  \(error <= ([0-9.e+-]+)\)$")


def significant_digits(number: str) -> int:
    mantissa = number.lower().split("e")[0].lstrip("+-")
    digits = mantissa.replace(".", "").lstrip("0")
    return len(digits)


def _output_text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    return "".join(output.get("data", {}).get("text/plain", ""))


def cell_problems(outputs: list[dict]) -> list[str]:
    """What breaks the rules in one cell's outputs (empty when the cell is portable)."""
    problems = []
    for output in outputs:
        text = _output_text(output)
        if output.get("output_type") == "execute_result" and _BARE_FLOAT.fullmatch(text):
            problems.append(f"the cell echoes a raw number as its result: {text.strip()[:40]!r}")
            continue
        for line in text.splitlines():
            claim_line = _CLAIM_TOL.match(line)
            body = line[: line.rindex("  (error <=")] if claim_line else line
            limit = CLAIM_SIGNIFICANT if claim_line else MAX_SIGNIFICANT
            for number in _NUMBER.findall(body):
                if significant_digits(number) > limit:
                    where = "a claim's statement" if claim_line else "a printed line"
                    problems.append(f"{number} has {significant_digits(number)} significant digits (more than "
                                    f"{limit}) in {where}: {line.strip()[:80]!r}")
    return problems


def notebook_problems(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code":
            found += [f"{path.relative_to(ROOT)} cell {index}: {p}" for p in cell_problems(cell.get("outputs", []))]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_notebook_outputs_are_portable(path: Path) -> None:
    problems = notebook_problems(path)
    assert not problems, "outputs that depend on round-off:\n" + "\n".join(problems)


def test_there_are_notebooks_to_scan() -> None:
    assert len(NOTEBOOKS) >= 10


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _result(text: str) -> dict:
    return {"output_type": "execute_result", "data": {"text/plain": text}, "execution_count": 1, "metadata": {}}


@pytest.mark.parametrize("outputs", [
    [_result("2.9638409614562988e-05")],                       # the echo issue 22 found in notebook 04
    [_result("tensor(0.1234)")],
    [_result("0.5")],
    [_stream("max difference 0.123456789\n")],                  # a raw float print
    [_stream("PASS  sliced W2 0.03836 is below 0.05  (error <= 1e-02)\n")],   # measured value in a statement
    [_stream("PASS  radius 0.4876 matches  (error <= 5e-03)\n")],
    [_stream("PASS  fp16 rounding below 4.282e-4  (error <= 5e-04)\n")],
])
def test_scanner_rejects_round_off_outputs(outputs) -> None:
    assert cell_problems(outputs)


@pytest.mark.parametrize("outputs", [
    [_stream("PASS  x equals y  (error <= 1e-03)\n")],
    [_stream("PASS  radius  (error <= 5e-03)\n"), _stream("mean radius 0.49, 50 calls, 49 effective steps\n")],
    [_stream("PASS  sliced W2 0.04 is below 0.05 at t = 0.3  (error <= 1e-02)\n")],
    [_stream("times: [0, 0.11111, 0.22222, 1] (11 points)\n")],
    [_result("'done'")],
    [_stream("N = 4: [0.0, 0.3333, 0.6667, 1.0]\n")],
])
def test_scanner_accepts_portable_outputs(outputs) -> None:
    assert cell_problems(outputs) == []


def test_significant_digits() -> None:
    assert significant_digits("0.004876") == 4 and significant_digits("-12.50") == 4
    assert significant_digits("3.20e-07") == 3 and significant_digits("100.5") == 4
