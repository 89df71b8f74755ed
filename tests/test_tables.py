"""flowlab.teach.tables.claim_table: every entry is a real claim (recorded, raising), printed as one grid."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowlab.claims import CLAIMS_FILE_ENV
from flowlab.errors import FlowlabError
from flowlab.teach.tables import Check, claim_table


def test_table_prints_a_grid_and_records_every_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    record = tmp_path / "claims.jsonl"
    monkeypatch.setenv(CLAIMS_FILE_ENV, str(record))
    claim_table([Check("a [f64]", "a", "f64", 1e-14, 1e-12), Check("a [f32]", "a", "f32", 1e-7, 1e-5),
                 Check("b exact", "b", "f64", True)], corner="id")
    out = capsys.readouterr().out.splitlines()
    assert out == ["PASS  all 3 claims of this table",
                   "id  f64       f32",
                   "--  --------  --------",
                   "a   <= 1e-12  <= 1e-05",
                   "b   exact     -"]
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["claim"] for r in rows] == ["a [f64]", "a [f32]", "b exact"]
    assert all(r["passed"] for r in rows)


def test_a_failing_entry_raises_and_prints_no_table(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(AssertionError, match="claim failed: too big"):
        claim_table([Check("fine", "a", "x", 0.0, 1e-3), Check("too big", "b", "x", 0.5, 1e-3)])
    assert "PASS" not in capsys.readouterr().out
    with pytest.raises(AssertionError, match="claim failed: not so"):
        claim_table([Check("not so", "a", "x", False)])


def test_bad_tables_are_refused() -> None:
    with pytest.raises(FlowlabError, match="no checks"):
        claim_table([])
    with pytest.raises(FlowlabError, match="two checks for row 'a', column 'x'"):
        claim_table([Check("one", "a", "x", True), Check("two", "a", "x", True)])
