"""`flowlab figures` and flowlab.teach.figures: every figure written and non-empty, names kept, bad input refused,
the axes hold what they claim to show."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # this test process only; notebook kernels keep their inline backend
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from flowlab.teach import figures  # noqa: E402
from flowlab.cli import main  # noqa: E402
from flowlab.errors import FlowlabError  # noqa: E402

# The lecturer's guide and notebooks refer to these names: renaming one is a breaking change.
NAMES = ["segment_jumps", "time_axes", "shift_schedules", "trajectories_2d", "loss_curve", "sw2_vs_calls",
         "guidance_trajectories", "predictions_over_t"]


def test_registry_names_are_the_documented_ones() -> None:
    assert list(figures.REGISTRY) == NAMES
    for name, spec in figures.REGISTRY.items():
        assert spec.name == name and len(spec.shows) > 40 and spec.notebook in {"01", "02", "03", "05", "06"}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    out = tmp_path_factory.mktemp("figs") / "new_folder"  # created by the command
    assert main(["figures", "--out", str(out), "--dpi", "60"]) == 0
    return out


def test_every_figure_is_written_as_a_png(written: Path) -> None:
    for name in NAMES:
        data = (written / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 5000, f"{name}.png is suspiciously small ({len(data)} bytes)"
    leftovers = [p.name for p in written.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers


def test_index_lists_every_figure_with_what_it_shows(written: Path) -> None:
    index = (written / "index.md").read_text()
    for name, spec in figures.REGISTRY.items():
        assert f"[{name}.png]({name}.png)" in index
        assert spec.shows in index


def test_svg_and_pdf(tmp_path: Path) -> None:
    assert main(["figures", "--out", str(tmp_path), "--format", "svg", "--only", "time_axes"]) == 0
    svg = (tmp_path / "time_axes.svg").read_text()
    assert "<svg" in svg and "</svg>" in svg
    assert main(["figures", "--out", str(tmp_path), "--format", "pdf", "--only", "segment_jumps"]) == 0
    assert (tmp_path / "segment_jumps.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.md", "segment_jumps.pdf"] + ["time_axes.svg"]


def test_bad_format_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["figures", "--out", str(tmp_path), "--format", "jpg"])
    assert exc.value.code == 2
    assert "invalid choice: 'jpg'" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["file", "no_parent", "unknown_name", "dpi"])
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    a_file = tmp_path / "a_file.png"
    a_file.write_bytes(b"keep me")
    argv, expect = {
        "file": (["--out", str(a_file)], "is not a folder"),
        "no_parent": (["--out", str(tmp_path / "missing" / "deeper")], "does not exist; create it first"),
        "unknown_name": (["--out", str(tmp_path), "--only", "segment_jump"], "unknown figure(s) segment_jump"),
        "dpi": (["--out", str(tmp_path), "--dpi", "5"], "--dpi must be an integer from 30 to 600"),
    }[case]
    assert main(["figures", *argv]) == 1
    err = capsys.readouterr().err
    assert "flowlab figures: error:" in err and expect in err
    assert a_file.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.png"]  # nothing half-written


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_unwritable_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["figures", "--out", str(ro), "--only", "time_axes"]) == 1
    assert "not writable" in capsys.readouterr().err


def test_guidance_axes_hold_every_wrong_sample() -> None:
    ts, runs = figures.guidance_runs(n=300, steps=20)
    wrong = runs[[k for k in runs if k.startswith("wrong")][0]]
    far = float(wrong[-1].abs().max())
    assert far > 20  # the wrong endpoint throws samples far out: the point of the figure
    fig = figures.guidance_trajectories(ts, runs)
    try:
        for ax in fig.axes:
            lo, hi = ax.get_ylim()
            assert lo <= -far and hi >= far
    finally:
        plt.close(fig)


def test_trajectory_axes_hold_every_drawn_point() -> None:
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(5, 30, 2, generator=g)
    wrong = 9 * torch.randn(5, 30, 2, generator=g)
    fig = figures.trajectories_2d({"conventional": xs, "reversed": xs}, wrong)
    try:
        far = float(wrong.abs().max())
        for ax in fig.axes:
            assert ax.get_xlim()[1] >= far and ax.get_ylim()[0] <= -far
    finally:
        plt.close(fig)


def test_segment_jumps_refuses_an_endpoint_time() -> None:
    with pytest.raises(FlowlabError, match="strictly between 0 and 1"):
        figures.segment_jumps(1.0)


def test_widget_only_under_a_jupyter_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWLAB_WIDGETS", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert not figures.widget_frontend()  # nbval / nbconvert: static figure only
    monkeypatch.setenv("FLOWLAB_WIDGETS", "1")
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        pytest.skip("ipywidgets not installed (notebooks extra)")
    assert figures.widget_frontend()
    monkeypatch.setenv("FLOWLAB_WIDGETS", "0")
    monkeypatch.setenv("JPY_SESSION_NAME", "/x.ipynb")
    assert not figures.widget_frontend()
    monkeypatch.delenv("FLOWLAB_WIDGETS")
    assert figures.widget_frontend()
