"""write_atomic: whole file or nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from flowlab import FlowlabError
from flowlab.io import write_atomic


def test_writes_bytes_text_and_callables(tmp_path: Path) -> None:
    assert write_atomic(tmp_path / "a.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_atomic(tmp_path / "b.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert write_atomic(tmp_path / "c.bin", lambda fh: fh.write(b"xyz")).read_bytes() == b"xyz"


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(fh) -> None:
        fh.write(b"partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_atomic(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FlowlabError, match="does not exist; create it first"):
        write_atomic(tmp_path / "no" / "such" / "file.txt", "x")
