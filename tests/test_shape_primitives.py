"""Procedural shapes: analytic distances, determinism, placement, surface samples and labels."""
from __future__ import annotations

import math

import pytest
import torch

from flowlab.errors import FlowlabError
from flowlab.shape.data.primitives import (FAMILIES, ShapeBatch, grid_points_ij, occupancy_grid, primitive, query_points,
                                      random_shapes, surface_points, volume_iou)

pytestmark = pytest.mark.usefixtures("one_thread")


def _single(kind: int, params, rot=None, center=(0.0, 0.0, 0.0), family: int = 0) -> ShapeBatch:
    k = torch.full((1, 2), -1, dtype=torch.long)
    k[0, 0] = kind
    p = torch.zeros(1, 2, 4)
    p[0, 0] = torch.tensor(params, dtype=torch.float32)
    r = torch.eye(3).repeat(1, 2, 1, 1)
    if rot is not None:
        r[0, 0] = rot
    c = torch.zeros(1, 2, 3)
    c[0, 0] = torch.tensor(center)
    return ShapeBatch(torch.tensor([family]), k, p, r, c, torch.zeros(1, 2, dtype=torch.bool))


def test_sphere_box_cylinder_torus_capsule_distances_are_exact_at_known_points() -> None:
    pts = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.3, 0.4, 0.0]]])
    d = _single(0, (0.5, 0.5, 0.5, 0.0)).sdf(pts)[0]  # sphere r = 0.5
    assert torch.allclose(d, torch.tensor([-0.5, 0.5, 1.5, 0.0]), atol=1e-6)
    box = _single(1, (0.5, 0.25, 0.1, 0.0))
    q = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.5, 1.25, 0.0], [0.0, 0.0, 0.05]]])
    assert torch.allclose(box.sdf(q)[0], torch.tensor([-0.1, 0.5, math.sqrt(2.0), -0.05]), atol=1e-6)
    cyl = _single(2, (0.5, 1.0, 0.0, 0.0))  # radius 0.5, half-height 1 along y
    q = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 2.0], [1.5, 2.0, 0.0]]])
    assert torch.allclose(cyl.sdf(q)[0], torch.tensor([-0.5, 2.0, 1.5, math.sqrt(2.0)]), atol=1e-6)
    tor = _single(4, (0.6, 0.2, 0.0, 0.0))
    q = torch.tensor([[[0.6, 0.0, 0.0], [0.0, 0.0, -0.6], [0.0, 0.0, 0.0], [0.6, 0.5, 0.0]]])
    assert torch.allclose(tor.sdf(q)[0], torch.tensor([-0.2, -0.2, 0.4, 0.3]), atol=1e-6)
    cap = _single(5, (0.5, 0.25, 0.0, 0.0))
    q = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.3, 0.0], [1.0, 0.0, 0.0]]])
    assert torch.allclose(cap.sdf(q)[0], torch.tensor([0.25, -0.25, 0.75]), atol=1e-6)


def test_cone_distance_sign_and_values() -> None:
    cone = _single(3, (0.5, 0.5, 0.0, 0.0))  # base radius 0.5 at y = -0.5, apex (0, 0.5, 0)
    q = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.49, 0.0], [0.3, 0.3, 0.0]]])
    d = cone.sdf(q)[0]
    assert d[0] < 0 and d[3] < 0 and d[4] > 0
    assert abs(float(d[1]) - 0.5) < 1e-6  # straight above the apex
    assert abs(float(d[2]) - 0.5) < 1e-6  # straight below the base centre
    # a point on the slanted side is at distance 0
    assert abs(float(cone.sdf(torch.tensor([[[0.25, 0.0, 0.0]]]))[0, 0])) < 1e-6


def test_rotation_and_centre_move_the_part() -> None:
    c = math.cos(math.pi / 2)
    rz = torch.tensor([[c, -1.0, 0.0], [1.0, c, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z: y axis -> -x
    cyl = _single(2, (0.1, 0.5, 0.0, 0.0), rot=rz, center=(0.2, 0.0, 0.0))
    d = cyl.sdf(torch.tensor([[[0.6, 0.0, 0.0], [0.2, 0.4, 0.0]]]))[0]  # along the rotated axis / across it
    assert d[0] < 0 and abs(float(d[1]) - 0.3) < 1e-6


def test_random_shapes_are_deterministic_seeded_and_inside_the_unit_ball() -> None:
    a, b, c = random_shapes(40, 5), random_shapes(40, 5), random_shapes(40, 6)
    assert torch.equal(a.params, b.params) and torch.equal(a.rot, b.rot) and torch.equal(a.family, b.family)
    assert not torch.equal(a.params, c.params)
    pts = torch.randn(40, 4000, 3)
    pts = pts / pts.norm(dim=-1, keepdim=True) * 0.96  # just outside the bounding ball
    assert (a.sdf(pts) > 0).all()
    bal = random_shapes(20, 1, balanced=True)
    assert bal.family_names == list(FAMILIES) * 2


def test_unknown_family_lists_the_valid_ones() -> None:
    with pytest.raises(FlowlabError, match="valid primitives: sphere, ellipsoid"):
        primitive("teapot")
    with pytest.raises(FlowlabError, match="torus"):
        random_shapes(3, 0, families=["dodecahedron"])


def test_surface_points_lie_on_the_surface_with_outward_normals() -> None:
    s = random_shapes(10, 2, balanced=True)
    g = torch.Generator().manual_seed(0)
    p, n = surface_points(s, 300, g)
    assert p.shape == (10, 300, 3) and n.shape == (10, 300, 3)
    assert float(s.sdf(p).abs().max()) < 2e-3
    assert torch.allclose(n.norm(dim=-1), torch.ones(10, 300), atol=1e-4)
    # stepping along the normal goes outside, against it inside (away from thin walls: step 5e-3)
    assert float((s.sdf(p + 5e-3 * n) > 0).float().mean()) > 0.98
    assert float((s.sdf(p - 5e-3 * n) < 0).float().mean()) > 0.98
    sphere = _single(0, (0.5, 0.5, 0.5, 0.0))
    p, n = surface_points(sphere, 200, g)
    assert torch.allclose(n, p / p.norm(dim=-1, keepdim=True), atol=1e-3)


def test_query_labels_and_occupancy_grid_follow_the_sdf_sign() -> None:
    s = random_shapes(4, 3)
    g = torch.Generator().manual_seed(1)
    q, occ = query_points(s, 200, 200, g)
    assert torch.equal(occ.bool(), s.sdf(q) < 0)
    assert 0 < float(occ[:, 200:].mean()) < 1  # near-surface queries fall on both sides
    grid = occupancy_grid(s, 12)
    pts = grid_points_ij(12)
    assert grid.shape == (4, 13, 13, 13)
    assert torch.equal(grid.reshape(4, -1), s.sdf(pts) < 0)
    assert float(volume_iou(grid, grid).min()) == 1.0
    empty = torch.zeros_like(grid)
    assert float(volume_iou(grid, empty).max()) == 0.0


def test_sphere_volume_on_the_grid_matches_four_thirds_pi_r_cubed() -> None:
    s = _single(0, (0.6, 0.6, 0.6, 0.0))
    occ = occupancy_grid(s, 80)
    cell = (2.02 / 80) ** 3
    assert abs(float(occ.sum()) * cell / (4 / 3 * math.pi * 0.6 ** 3) - 1) < 0.02
