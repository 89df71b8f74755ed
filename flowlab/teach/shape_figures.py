"""Figures for the shape notebooks: shaded meshes on labelled, equal-aspect 3-D axes; renders."""
from __future__ import annotations

import numpy as np

from ..shape.decode.mesh import Mesh

__all__ = ["plot_mesh_axes", "show_render"]


def plot_mesh_axes(mesh: Mesh | None, ax, *, title: str = "", color=(0.55, 0.65, 0.85), limit: float = 1.0,
                   elev: float = 20.0, azim: float = -110.0):
    """A Lambert-shaded ``mesh`` on the 3-D axis ``ax`` with x, y, z labelled (y up, as the shapes are; the
    default view is from the +z side, like the renders' camera, a little from above),
    the same scale on every axis (the box [-limit, limit]^3) and ``title``. ``None``: an empty box
    marked 'no surface'."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if mesh is not None and len(mesh.faces):
        v = mesh.vertices[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # plot axes (x, -z, y): a rotation, y vertical
        tri = v[mesh.faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        light = np.array([-0.45, -0.5, 0.75])  # the renderer's light (upper left, front) in plot axes
        shade = 0.3 + 0.7 * np.clip(n @ (light / np.linalg.norm(light)), 0, 1)
        ax.add_collection3d(Poly3DCollection(tri, facecolors=np.clip(np.outer(shade, color), 0, 1),
                                             edgecolors="none"))
    else:
        ax.text(0, 0, 0, "no surface", ha="center", va="center", fontsize=9)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_zlim(-limit, limit)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x", labelpad=-10, fontsize=8)
    ax.set_ylabel("z", labelpad=-10, fontsize=8)  # plot y is -z: ticks relabelled below
    ax.set_zlabel("y (up)", labelpad=-10, fontsize=8)
    ticks = [-limit, 0, limit]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{-t:g}" for t in ticks])
    ax.set_zticks(ticks)
    ax.tick_params(labelsize=6, pad=-3)
    ax.view_init(elev=elev, azim=azim)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_render(rgba, ax, title: str = ""):
    """One (4, H, W) render (or a batch of one) in [0, 1] on a 2-D axis, RGB on white."""
    if rgba.ndim == 4:
        rgba = rgba[0]
    ax.imshow(rgba[:3].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
