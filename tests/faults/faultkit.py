"""Helpers of the fault suite (importable from its test modules)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The checkout whose flowlab the CLI runs; FLOWLAB_CODE_ROOT points the suite at another one (e.g. main, to
#: show that a case fails before its fix: PYTHONPATH=OTHER FLOWLAB_CODE_ROOT=OTHER pytest tests/faults).
ROOT = Path(os.environ.get("FLOWLAB_CODE_ROOT") or Path(__file__).resolve().parents[2])


def run_cli(*argv: str, cwd: Path, timeout: float | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m flowlab.cli ARGV`` in a fresh interpreter (the installed entry point's code path)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env["FLOWLAB_DEVICE"] = "cpu"
    full_env.update(env or {})
    timeout = timeout or float(os.environ.get("FLOWLAB_FAULTS_TIMEOUT", "300"))
    return subprocess.run([sys.executable, "-m", "flowlab.cli", *argv], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
