"""Files are written the way users expect (item 13): umask permissions, an existing file's mode kept,
symbolic links written through, no temporary file left on SIGTERM."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import ROOT, run_cli

from flowlab.io import write_atomic


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture()
def umask():
    """Set a umask for one test and restore the old one."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(saved)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_umask_permissions(mask: int, expected: int, umask, tmp_path: Path) -> None:
    umask(mask)
    write_atomic(tmp_path / "new.txt", "hello")
    assert _mode(tmp_path / "new.txt") == expected


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o600, 0o755])
def test_overwriting_keeps_the_existing_mode(existing: int, umask, tmp_path: Path) -> None:
    umask(0o077)
    p = tmp_path / "old.txt"
    p.write_text("old")
    p.chmod(existing)
    write_atomic(p, "new")
    assert p.read_text() == "new" and _mode(p) == existing


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real" / "data.txt"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "created.txt")
    write_atomic(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "real" / "created.txt").read_text() == "made"


def test_cli_out_symlink_is_written_through_and_mode_follows_umask(tmp_path: Path) -> None:
    target = tmp_path / "samples.npz"
    target.write_bytes(b"old")
    target.chmod(0o640)
    (tmp_path / "link.npz").symlink_to(target)
    r = run_cli("sample", "--dist", "eight_gaussians", "--n", "50", "--steps", "2", "--no-metrics",
                "--out", "link.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "link.npz").is_symlink()
    assert target.read_bytes()[:2] == b"PK" and _mode(target) == 0o640  # an .npz (zip), mode kept
    r = run_cli("sample", "--help", cwd=tmp_path)
    assert "symbolic link is written through" in " ".join(r.stdout.split())


SLOW_WRITER = """
import signal, sys, time
from flowlab.io import write_atomic

# Ctrl-C's behaviour whatever the parent did: a non-interactive shell starts background jobs with SIGINT ignored,
# and the child inherits that (this test then waited 60 s for a process that never saw the signal)
signal.signal(signal.SIGINT, signal.default_int_handler)

def slow(fh):
    fh.write(b"partial")
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)

write_atomic(sys.argv[1], slow)
"""


@pytest.mark.parametrize("sig, rc", [(signal.SIGTERM, 143), (signal.SIGINT, None)])
def test_a_signal_during_the_write_leaves_no_temporary_file(sig, rc, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(out)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "writing"
        assert list(tmp_path.glob(".out.bin.*.tmp")), "the writer should hold a temporary file now"
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    if rc is not None:
        assert p.returncode == rc, p.stderr.read()
    else:
        assert p.returncode != 0
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"
    assert out.read_bytes() == b"previous"


def test_the_sigterm_handler_is_restored(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    write_atomic(tmp_path / "x", b"1")
    assert signal.getsignal(signal.SIGTERM) is before
