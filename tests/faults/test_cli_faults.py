"""Every CLI fault case (fault_cases.CASES) through a real subprocess: flowlab's message, the right exit
status, no traceback, and an existing output file left untouched."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fault_cases import CASES, EXEMPT
from faultkit import run_cli

from flowlab.cli import _command_modules

ALL = [(name, c) for name, cases in CASES.items() for c in cases]
KEEP = b"an existing output that a failed run must not touch\n"


def test_every_command_has_fault_cases() -> None:
    names = {m.NAME for m in _command_modules()}
    missing = sorted(names - set(CASES) - set(EXEMPT))
    assert not missing, f"commands without fault cases in tests/faults/fault_cases.py: {missing}"
    assert not set(CASES) - names, f"fault cases for unknown commands: {sorted(set(CASES) - names)}"


@pytest.mark.parametrize("name, case", ALL, ids=[f"{n}-{c.id}" for n, c in ALL])
def test_cli_fault(name: str, case, files: dict[str, Path], tmp_path: Path) -> None:
    outs: list[Path] = []

    def fill(arg: str) -> str:
        def out(m: re.Match) -> str:
            p = tmp_path / f"existing.{m.group(1)}"
            p.write_bytes(KEEP)
            outs.append(p)
            return str(p)
        arg = re.sub(r"\{out\.(\w+)\}", out, arg)
        return arg.format(**{k: str(v) for k, v in files.items()})

    argv = [fill(a) for a in case.argv]
    if any(a == str(files["model"]) for a in argv) and "--out" not in argv:
        argv += ["--out", str(tmp_path / "mesh.glb")]
    r = run_cli(*argv, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == case.rc, f"exit {r.returncode}, stderr: {r.stderr}"
    if case.rc == 1:
        assert r.stderr.startswith(f"flowlab {name}: error: "), r.stderr
    for text in case.expect:
        assert text in r.stderr, f"{text!r} not in stderr: {r.stderr}"
    for p in outs:
        assert p.read_bytes() == KEEP, f"{p} was changed by a failed run"
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"
