"""Second sweep (issue 22), outputs: only regular files are replaced, names too long for the file system,
folders of several outputs never written through links that leave them, stale temporary files removed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import run_cli

from flowlab.errors import FlowlabError
from flowlab.io import check_member, check_writable_target, remove_stale_temporaries, write_atomic

TOY = ["--dist", "eight_gaussians", "--device", "cpu", "--n", "10", "--steps", "2", "--no-metrics"]


def test_a_link_to_a_character_device_is_refused(tmp_path: Path) -> None:
    # only the check runs here: a test must never risk replacing /dev/null (as root, code without the fix would)
    link = tmp_path / "out.npz"
    link.symlink_to("/dev/null")
    with pytest.raises(FlowlabError, match="is a character device; flowlab writes only regular files"):
        check_writable_target(link, "--out 'out.npz'")
    assert link.is_symlink() and os.readlink(link) == "/dev/null"


def test_a_link_to_a_fifo_is_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "out.npz"
    link.symlink_to(fifo)
    with pytest.raises(FlowlabError, match=r"\(the target of the link .*\) is a FIFO"):
        write_atomic(link, b"data")
    assert fifo.is_fifo() and link.is_symlink()


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(FlowlabError, match=r"is a FIFO \(named pipe\)"):
        write_atomic(fifo, b"data")
    assert fifo.is_fifo()


def test_a_socket_is_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s.npz"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(FlowlabError, match="is a socket"):
            write_atomic(path, b"data")


def test_the_cli_refuses_a_link_to_a_fifo_before_sampling(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "out.npz").symlink_to(tmp_path / "pipe")
    r = run_cli("sample", *TOY, "--out", "out.npz", cwd=tmp_path, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "(the target of the link 'out.npz') is a FIFO (named pipe)" in r.stderr
    assert (tmp_path / "pipe").is_fifo()


@pytest.mark.parametrize("length", [240, 300])
def test_a_file_name_too_long_is_refused_by_name(tmp_path: Path, length: int) -> None:
    name = "a" * length + ".npz"
    with pytest.raises(FlowlabError, match="use a shorter name"):
        write_atomic(tmp_path / name, b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["sample", *TOY, "--out", "{long}.npz"],
    ["figures", "--only", "time_axes", "--out", "{long}"],
    ["exercises", "--out", "{long}"],
])
def test_cli_names_over_the_limit(tmp_path: Path, command: list[str]) -> None:
    argv = [a.format(long="b" * 300) for a in command]
    r = run_cli(*argv, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "longer than the file system allows" in r.stderr or "use a shorter name" in r.stderr, r.stderr


def test_the_top_seed_works(tmp_path: Path) -> None:
    r = run_cli("sample", "--dist", "eight_gaussians", "--device", "cpu", "--n", "10", "--steps", "2",
                "--seed", "18446744073709551615", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "sliced W2" in r.stdout


@pytest.mark.parametrize("device", ["meta", "mps", "xpu"])
def test_devices_other_than_cpu_and_cuda_are_refused(tmp_path: Path, device: str) -> None:
    from flowlab.device import resolve_device

    with pytest.raises(FlowlabError, match=f"a '{device}' device is not supported"):
        resolve_device(device)


def test_exercises_never_follow_a_link_out_of_the_folder(tmp_path: Path) -> None:
    hand = tmp_path / "hand"
    hand.mkdir()
    outside = tmp_path / "outside.ipynb"
    (hand / "EX_01_predictions.ipynb").symlink_to(outside)  # dangling: writing would create outside.ipynb
    for force in ([], ["--force"]):
        r = run_cli("exercises", "--out", "hand", *force, cwd=tmp_path)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "outside the folder" in r.stderr or "exist" in r.stderr, r.stderr
        assert not outside.exists()
    assert list(hand.iterdir()) == [hand / "EX_01_predictions.ipynb"]


def test_check_member_refuses_links_out_and_read_only_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inside.txt").write_text("x")
    (tmp_path / "d" / "ok_link").symlink_to("inside.txt")
    (tmp_path / "d" / "out_link").symlink_to(tmp_path / "elsewhere.txt")
    assert check_member(tmp_path / "d", "new.txt") == tmp_path / "d" / "new.txt"
    assert check_member(tmp_path / "d", "ok_link", force=True) == tmp_path / "d" / "ok_link"
    with pytest.raises(FlowlabError, match="outside the folder"):
        check_member(tmp_path / "d", "out_link", force=True)
    with pytest.raises(FlowlabError, match="exists; pass --force"):
        check_member(tmp_path / "d", "inside.txt")
    if os.geteuid() != 0:
        os.chmod(tmp_path / "d" / "inside.txt", 0o444)
        with pytest.raises(FlowlabError, match="read-only"):
            check_member(tmp_path / "d", "inside.txt", force=True)


def test_a_killed_writer_leaves_a_temporary_file_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    code = ("import os, signal, sys; from flowlab.io import write_atomic\n"
            "def w(fh):\n    fh.write(b'partial'); fh.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            f"write_atomic({str(target)!r}, w)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert r.returncode == -9
    left = list(tmp_path.glob(".out.bin.*.tmp"))
    assert len(left) == 1 and not target.exists()
    # a live writer's temporary file (this process's PID) and another file's are kept
    mine = tmp_path / f".out.bin.{os.getpid()}.abcd1234.tmp"
    mine.write_bytes(b"live")
    other = tmp_path / ".other.bin.1.abcd1234.tmp"
    other.write_bytes(b"not ours")
    write_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not left[0].exists()
    assert mine.exists() and other.exists()
    assert remove_stale_temporaries(target) == []
