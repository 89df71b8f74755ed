"""Toy distributions: registry, shapes, determinism across generators/devices, geometry."""
from __future__ import annotations

import pytest
import torch

from flowlab import FlowlabError
from flowlab.toys import TOYS, get_toy, sample_toy, toy_names


def test_registry_has_the_issue_toys():
    for name in ("eight_gaussians", "two_moons", "checkerboard", "pinwheel", "spiral", "rings"):
        assert TOYS[name].dim == 2
    for name in ("swiss_roll", "torus", "trefoil_knot", "helix", "sphere_shell", "cube_corners"):
        assert TOYS[name].dim == 3
    assert set(toy_names(2)) | set(toy_names(3)) == set(TOYS)
    assert TOYS["eight_gaussians"].gmm is not None and TOYS["two_moons"].gmm is None


@pytest.mark.parametrize("name", list(TOYS))
def test_shape_dtype_determinism(name):
    a = sample_toy(name, 500, generator=torch.Generator().manual_seed(7))
    b = sample_toy(name, 500, generator=torch.Generator().manual_seed(7))
    c = sample_toy(name, 500, generator=torch.Generator().manual_seed(8))
    assert a.shape == (500, TOYS[name].dim) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool(torch.isfinite(a).all())
    assert a.abs().max().item() < 4.0  # roughly the scale of N(0, I)
    d = sample_toy(name, 500, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(d.float(), a)  # drawn in float64, rounded once


def test_geometry_spot_checks():
    g = torch.Generator().manual_seed(0)
    s = sample_toy("sphere_shell", 4000, generator=g, dtype=torch.float64)
    r = s.norm(dim=1)
    assert abs(r.mean().item() - 1.5) < 0.01 and r.std().item() < 0.07
    cb = sample_toy("checkerboard", 4000, generator=g, dtype=torch.float64)
    cell = (cb + 2).floor()
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all())  # only the dark squares
    rings = sample_toy("rings", 4000, generator=g, dtype=torch.float64).norm(dim=1)
    nearest = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    assert (rings[:, None] - nearest).abs().min(1).values.max().item() < 0.25
    e8 = sample_toy("eight_gaussians", 4000, generator=g, dtype=torch.float64)
    assert abs(e8.norm(dim=1).mean().item() - 2.0) < 0.02


def test_cuda_generator_is_not_needed_for_device_placement():
    a = sample_toy("two_moons", 100, generator=torch.Generator().manual_seed(1), device="cpu")
    assert a.device.type == "cpu"


def test_bad_inputs():
    with pytest.raises(FlowlabError, match="unknown distribution 'moons'; valid names: eight_gaussians"):
        sample_toy("moons", 10)
    with pytest.raises(FlowlabError, match="positive integer"):
        sample_toy("spiral", 0)
    with pytest.raises(FlowlabError, match="positive integer"):
        sample_toy("spiral", -5)
    with pytest.raises(FlowlabError, match="unknown distribution"):
        get_toy(None)
