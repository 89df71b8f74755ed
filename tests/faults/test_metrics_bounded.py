"""Item 12: the metrics' cost is bounded (subsampling above a documented size), values below that size
are the exact full-set values, --out is written before the metrics, --no-metrics skips them.
Speed itself is measured by benchmarks/metrics_speed.py (baseline timed in the same run), not here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowlab.metrics import ENERGY_MAX_SAMPLES, SW2_MAX_SAMPLES, energy_distance, sliced_wasserstein, subsample

pytestmark = pytest.mark.usefixtures("one_thread")


def _full_sw2_by_hand(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """The definition, written out with torch.sort on every row (independent of flowlab's NumPy sort)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(x.dtype)
    a, b = (x @ theta).sort(0).values, (y @ theta).sort(0).values
    return float(((a - b) ** 2).mean(0).mean().sqrt())


def test_documented_limits() -> None:
    assert SW2_MAX_SAMPLES == 20_000 and ENERGY_MAX_SAMPLES == 5_000
    import flowlab.metrics as m

    assert "20,000" in m.__doc__ and "5,000" in m.__doc__


def test_below_the_limit_the_whole_set_is_used_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4000, 2, generator=g), torch.randn(4000, 2, generator=g) + 0.3
    ours = sliced_wasserstein(x, y)
    assert ours == sliced_wasserstein(x, y, max_samples=None)
    assert abs(ours - _full_sw2_by_hand(x, y)) < 1e-6


def test_above_the_limit_a_seeded_subset_is_used() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60_000, 2, generator=g), torch.randn(50_000, 2, generator=g) * 1.2
    sx, sy = subsample(x, SW2_MAX_SAMPLES, 0), subsample(y, SW2_MAX_SAMPLES, 1)
    assert sx.shape == (SW2_MAX_SAMPLES, 2) and sy.shape == (SW2_MAX_SAMPLES, 2)
    rows = {tuple(r) for r in x.tolist()}
    assert all(tuple(r) in rows for r in sx[:200].tolist())  # real rows of x
    assert len({tuple(r) for r in sx.tolist()}) == SW2_MAX_SAMPLES  # without replacement
    assert sliced_wasserstein(x, y) == sliced_wasserstein(sx, sy, max_samples=None)
    # and it estimates the full-set value (the scale difference is 0.2 / sqrt(2) ~ 0.14 in SW2)
    assert abs(sliced_wasserstein(x, y) - _full_sw2_by_hand(x[:50_000], y)) < 0.01


def test_energy_distance_is_bounded_too() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(12_000, 3, generator=g), torch.randn(9_000, 3, generator=g)
    assert energy_distance(x, y) == energy_distance(subsample(x, ENERGY_MAX_SAMPLES, 0),
                                                    subsample(y, ENERGY_MAX_SAMPLES, 1), max_samples=None)
    small = x[:300], y[:200]
    assert energy_distance(*small) == energy_distance(*small, max_samples=None)


def test_numpy_sort_gives_torch_sort_values() -> None:
    from flowlab.metrics import _sort0

    u = torch.randn(3001, 7, generator=torch.Generator().manual_seed(3))
    u[5, 2] = u[9, 2]  # ties
    assert torch.equal(_sort0(u), u.sort(0).values)
    assert torch.equal(_sort0(u.double()), u.double().sort(0).values)


def test_out_is_written_before_the_metrics(tmp_path: Path, monkeypatch, capsys) -> None:
    import flowlab.commands.sample as cmd
    from flowlab.cli import main

    def interrupted(*a, **k):  # Ctrl-C while the metrics run
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "quality", interrupted)
    out = tmp_path / "s.npz"
    rc = main(["sample", "--dist", "eight_gaussians", "--n", "100", "--steps", "2", "--device", "cpu",
               "--out", str(out)])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert np.load(out)["samples"].shape == (100, 2)


def test_no_metrics(tmp_path: Path, capsys) -> None:
    from flowlab.cli import main

    assert main(["sample", "--dist", "eight_gaussians", "--n", "100", "--steps", "2", "--device", "cpu",
                 "--no-metrics", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sliced_w2"] is None and report["energy_distance"] is None and report["n"] == 100
