"""Tests for ``flowlab derive``: text and JSON output, documented keys, usage errors (exit 2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowlab.cli import main

REPO = Path(__file__).resolve().parents[1]
CONVENTION_KEYS = {"convention", "symbol", "sampling", "noise_at", "data_at", "interpolant", "velocity_target",
                   "update_rule", "pred_x0", "pred_x1", "pred_x0_is", "pred_x1_is", "data_prediction",
                   "noise_prediction", "jump_is_exact", "systems"}
MAP_KEYS = {"time", "velocity", "euler_updates_coincide", "pred_x1_reversed_equals_pred_x0_conventional"}


def _json(capsys, *argv: str) -> dict:
    assert main(["derive", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_both_json(capsys):
    out = _json(capsys, "--convention", "both")
    assert set(out) == {"conventions", "map"}
    conv, rev = out["conventions"]
    assert set(conv) == CONVENTION_KEYS and set(rev) == CONVENTION_KEYS
    assert conv["convention"] == "conventional" and rev["convention"] == "reversed"
    # the facts of the convention table, typed independently
    assert (conv["pred_x0"], conv["pred_x0_is"]) == ("x - sigma*v", "data")
    assert (conv["pred_x1"], conv["pred_x1_is"]) == ("x + (1 - sigma)*v", "noise")
    assert (rev["pred_x0"], rev["pred_x0_is"]) == ("x - t*v", "noise")
    assert (rev["pred_x1"], rev["pred_x1_is"]) == ("x + (1 - t)*v", "data")
    assert conv["velocity_target"] == "v = E - D" and rev["velocity_target"] == "v = D - E"
    assert conv["data_prediction"] == "pred_x0" and rev["data_prediction"] == "pred_x1"
    assert set(out["map"]) == MAP_KEYS
    assert out["map"]["euler_updates_coincide"] is True
    assert out["map"]["pred_x1_reversed_equals_pred_x0_conventional"] is True


@pytest.mark.parametrize("name, symbol", [("conventional", "sigma"), ("reversed", "t")])
def test_single_convention_json(capsys, name, symbol):
    out = _json(capsys, "--convention", name)
    (rep,) = out["conventions"]
    assert rep["convention"] == name and rep["symbol"] == symbol
    assert rep["update_rule"] == f"x' = x + ({symbol}' - {symbol})*v"


def test_default_is_both_and_text(capsys):
    assert main(["derive"]) == 0
    text = capsys.readouterr().out
    assert "conventional convention" in text and "reversed convention" in text
    assert "pred_x1 = x + (1 - t)*v" in text and "the DATA" in text
    assert "pred_x0 = x - t*v" in text
    assert "pred_x1(reversed) == pred_x0(conventional): proved" in text
    assert not text.lstrip().startswith("{")


def test_help_documents_every_json_key(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "--help"])
    assert exc.value.code == 0
    help_text = capsys.readouterr().out
    for key in CONVENTION_KEYS | MAP_KEYS:
        assert key in help_text, key


@pytest.mark.parametrize("argv", [
    ["derive", "--convention", "sideways"],
    ["derive", "--convention"],
    ["derive", "--jsn"],
    ["derive", "extra"],
])
def test_bad_flags_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_subprocess_entry_point():
    proc = subprocess.run([sys.executable, "-m", "flowlab.cli", "derive", "--convention", "both", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [c["data_prediction"] for c in out["conventions"]] == ["pred_x0", "pred_x1"]
