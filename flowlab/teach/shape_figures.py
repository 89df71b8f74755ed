"""Figures for the shape notebooks: shaded meshes on labelled, equal-aspect 3-D axes; renders."""
from __future__ import annotations

import numpy as np

from ..shape.decode.mesh import Mesh

__all__ = ["plot_mesh_axes", "show_render", "family_gallery_data", "family_gallery"]


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


def family_gallery_data(pipe=None, *, seed: int = 0, steps: int = 50, guidance: float = 5.0,
                        resolution: int = 64) -> list[dict]:
    """One shape of each of the ten families (``primitive(name, seed)``, as ``flowlab shape --primitive``
    draws it): its 64 px render, the analytic truth and what ``pipe`` (default: the shipped mini model)
    generates from the render (reversed convention, ``steps`` calls, CFG ``guidance``, noise seed ``seed``),
    both on the (R + 1)^3 grid, R = ``resolution``. Returns one dict per family: name, render, truth and
    generated meshes (None where the field has no surface) and the volumetric IoU."""
    import torch

    from ..errors import FlowlabError
    from ..shape.data.primitives import FAMILIES, grid_points_ij, primitive, volume_iou
    from ..shape.data.render import render, to_model_input
    from ..shape.decode.mesh import marching_cubes

    if pipe is None:
        from ..shape.load.mini import load_mini

        pipe = load_mini()
    pts = grid_points_ij(resolution)
    n = resolution + 1
    rows = []
    for name in FAMILIES:
        shape = primitive(name, seed=seed)
        rgba = render(shape, 64)
        with torch.no_grad():
            cond = pipe.encode_image(to_model_input(rgba))
            lat = pipe.sample_latents(cond, steps=steps, guidance=guidance, convention="reversed", seed=seed)
            logits = pipe.decode_volume(lat, octree=resolution, chunk_size=20000, decode="dense")
            sdf = shape.sdf(pts).view(n, n, n)
        try:
            generated = pipe.mesh(logits)
        except FlowlabError:  # the field never crosses 0
            generated = None
        rows.append({"family": name, "render": rgba, "truth": marching_cubes(-sdf), "generated": generated,
                     "iou": float(volume_iou(logits > 0, (sdf < 0)[None])[0])})
    return rows


def family_gallery(rows: list[dict] | None = None, **kw):
    """The gallery figure of :func:`family_gallery_data` (computed with ``kw`` when ``rows`` is None): one
    column a family; rows: the render (the model's input), the analytic truth, the generated mesh with its IoU."""
    import matplotlib.pyplot as plt

    rows = family_gallery_data(**kw) if rows is None else rows
    fig = plt.figure(figsize=(2.0 * len(rows), 6.4))
    for j, r in enumerate(rows):
        show_render(r["render"], fig.add_subplot(3, len(rows), j + 1), r["family"])
        ax = fig.add_subplot(3, len(rows), len(rows) + j + 1, projection="3d")
        plot_mesh_axes(r["truth"], ax, title="truth", color=(0.6, 0.8, 0.6))
        ax = fig.add_subplot(3, len(rows), 2 * len(rows) + j + 1, projection="3d")
        plot_mesh_axes(r["generated"], ax, title=f"generated, IoU {r['iou']:.2f}")
    fig.suptitle("the mini model on one shape of each family: render (input), truth, generated "
                 "(reversed, 50 calls, CFG 5)", fontsize=10)
    fig.tight_layout()
    return fig
