"""The sphere-tracing renderer: silhouette size, background, shading direction, image round trip."""
from __future__ import annotations

import math

import pytest
import torch

from flowlab.shape.models.image_encoder import load_mini_image
from flowlab.shape.data.primitives import ShapeBatch, primitive
from flowlab.shape.data.render import CAMERA_DISTANCE, PLANE_HALF, render, to_model_input, to_pil

pytestmark = pytest.mark.usefixtures("one_thread")


def _sphere(r: float, center=(0.0, 0.0, 0.0)) -> ShapeBatch:
    kind = torch.tensor([[0]])
    params = torch.tensor([[[r, r, r, 0.0]]])
    return ShapeBatch(torch.tensor([0]), kind, params, torch.eye(3)[None, None], torch.tensor([[center]]),
                      torch.zeros(1, 1, dtype=torch.bool))


def test_sphere_silhouette_has_the_perspective_area_and_a_white_transparent_background() -> None:
    r = 0.6
    img = render(_sphere(r), 64, supersample=2)
    assert img.shape == (1, 4, 64, 64) and float(img.min()) >= 0 and float(img.max()) <= 1
    # a sphere of radius r seen from distance D projects onto the plane z = 0 as a disc of radius r D / sqrt(D^2 - r^2)
    rho = r * CAMERA_DISTANCE / math.sqrt(CAMERA_DISTANCE ** 2 - r ** 2)
    expected = math.pi * rho ** 2 / (2 * PLANE_HALF) ** 2
    assert abs(float(img[0, 3].mean()) / expected - 1) < 0.02
    corners = img[0, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert torch.equal(corners[:3], torch.ones(3, 4)) and torch.equal(corners[3], torch.zeros(4))


def test_y_is_up_in_the_image() -> None:
    up = render(_sphere(0.3, (0.0, 0.5, 0.0)), 48)[0, 3]
    rows = torch.nonzero(up.sum(1) > 0).squeeze(1)
    assert float(rows.float().mean()) < 24  # a sphere moved up (+y) appears in the upper half


def test_upper_left_of_a_sphere_is_lit_more_than_lower_right() -> None:
    img = render(_sphere(0.6), 48)[0]
    lum = img[:3].mean(0)
    assert float(lum[16, 16]) > float(lum[32, 32]) + 0.1


def test_saved_render_reads_back_as_the_model_input() -> None:
    rgba = render(primitive("mug", seed=3), 64)
    back = load_mini_image(to_pil(rgba), 64)
    assert back.shape == (1, 3, 64, 64)
    assert float((back - to_model_input(rgba)).abs().max()) < 2 / 255 * 2 + 1e-6
