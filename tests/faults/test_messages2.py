"""Second sweep (issue 22): images bounded from their header, messages that name the real cause, Ctrl-C
during `flowlab figures`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from faultkit import ROOT

from flowlab.errors import FlowlabError

PIL = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("size", [(16, 100_000), (12_000, 12_000)])
@pytest.mark.parametrize("loader", ["load_image", "load_mini_image"])
def test_huge_images_are_refused_from_their_header(tmp_path: Path, size, loader: str) -> None:
    import resource

    from flowlab.shape.models import conditioner, image_encoder

    path = tmp_path / "big.png"
    PIL.new("L", size).save(path)  # a few KB on disk
    fn = getattr(conditioner, loader, None) or getattr(image_encoder, loader)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FlowlabError, match=f"is {size[0]}x{size[1]} pixels: decoding it and padding it"):
        fn(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024, f"refusing the image cost {grown_kib / 1024:.0f} MiB"


def test_guidance_that_overflows_is_named() -> None:
    from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline

    with pytest.raises(FlowlabError, match="guidance 1e\\+30 made the velocity overflow"):
        tiny_pipeline(0).sample_latents(tiny_cond(0), steps=3, guidance=1e30)


def test_huge_image_tokens_are_named() -> None:
    from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline

    with pytest.raises(FlowlabError, match="the image tokens reach \\|3e\\+38\\|"):
        tiny_pipeline(0).sample_latents(torch.full_like(tiny_cond(0), 3e38), steps=3)


def test_no_surface_does_not_point_the_cli_user_at_a_missing_flag() -> None:
    from flowlab.shape.decode.mesh import marching_cubes

    with pytest.raises(FlowlabError) as info:
        marching_cubes(torch.full((5, 5, 5), -3.0))
    assert "pass a different iso-level." not in str(info.value) and "level=" in str(info.value)


def test_ctrl_c_during_figures_stops_with_status_130(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "flowlab.cli", "figures", "--out", str(tmp_path / "figs")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not any((tmp_path / "figs").glob("*.png")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "figs" / "index.md").exists()
