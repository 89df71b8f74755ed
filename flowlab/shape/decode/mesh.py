"""Logits volume -> triangle mesh, and mesh export.

Marching cubes is scikit-image's 'lewiner' at ``level`` (0 by default: logits are positive
inside). Vertices are mapped to the box as the reference does, ``verts / (R + 1) * 2b - b``:
note ``R + 1`` (the number of grid points) where ``R`` (the number of cells) would be exact, so
the mesh is shrunk by ``R / (R + 1)`` about ``-b``. Parity with Hunyuan3D-2 needs the same
mapping. The face winding is reversed (``faces[:, ::-1]``) so normals point outwards.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ..._optional import require
from ...errors import FlowlabError
from ...io import write_atomic

__all__ = ["Mesh", "marching_cubes", "export_mesh", "check_mesh", "EXPORT_FORMATS"]

EXPORT_FORMATS = (".glb", ".obj", ".ply")


@dataclass
class Mesh:
    """vertices (V, 3) float64 in the box [-b, b]^3, faces (F, 3) int64, outward winding.

    Exactly what the reference exports: float32 vertices after the mapping, coincident vertices
    merged by trimesh's default processing.
    """

    vertices: np.ndarray
    faces: np.ndarray

    def to_trimesh(self):
        trimesh = require("trimesh", "writing a mesh")

        return trimesh.Trimesh(self.vertices, self.faces, process=False)


def marching_cubes(logits: Tensor | np.ndarray, *, level: float = 0.0, bounds: float = 1.01) -> Mesh:
    """One volume (R + 1, R + 1, R + 1) of logits -> :class:`Mesh`.

    Raises FlowlabError when the volume does not cross ``level`` (no surface).
    """
    measure = require("skimage.measure", "marching cubes (skimage)")

    vol = logits.detach().float().cpu().numpy() if isinstance(logits, Tensor) else np.asarray(logits, np.float32)
    if vol.ndim != 3:
        raise FlowlabError(f"expected one (R+1, R+1, R+1) volume, got shape {vol.shape}")
    lo, hi = float(np.nanmin(vol)), float(np.nanmax(vol))
    if not (lo <= level <= hi) or lo == hi:
        raise FlowlabError(
            f"no surface: the occupancy logits span [{lo:.4g}, {hi:.4g}] and never cross the iso-level "
            f"{level:g}, so there is no mesh to write. Check that the weights are the released ones "
            f"(random or mismatched weights give an empty field), try more steps or another seed "
            f"(from Python: pass another level= to this function).")
    verts, faces, _normals, _values = measure.marching_cubes(vol, level, method="lewiner")
    grid_size = np.array(vol.shape)
    box = np.array([2 * bounds] * 3)
    verts = (verts / grid_size * box + np.array([-bounds] * 3)).astype(np.float32)
    faces = np.ascontiguousarray(faces[:, ::-1])
    # as the reference's export: trimesh with its default processing, which merges coincident vertices
    trimesh = require("trimesh", "writing a mesh")

    tm = trimesh.Trimesh(verts, faces)
    return Mesh(vertices=np.asarray(tm.vertices, dtype=np.float64), faces=np.asarray(tm.faces, dtype=np.int64))


def check_mesh(mesh: Mesh) -> Mesh:
    """A :class:`Mesh` a viewer can open: vertices (V, 3) finite, faces (F, 3) integers in [0, V), V, F >= 1.

    Raises FlowlabError naming the first problem (e.g. a face index past the last vertex)."""
    if not isinstance(mesh, Mesh):
        raise FlowlabError(f"expected a flowlab.shape.decode.mesh.Mesh, got {type(mesh).__name__}")
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 1 or not np.issubdtype(v.dtype, np.number):
        raise FlowlabError(f"mesh vertices have shape {v.shape} ({v.dtype}); expected (V, 3) numbers with V >= 1")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 1 or not np.issubdtype(f.dtype, np.integer):
        raise FlowlabError(f"mesh faces have shape {f.shape} ({f.dtype}); expected (F, 3) integers with F >= 1")
    if not np.isfinite(v).all():
        raise FlowlabError(f"{int((~np.isfinite(v)).any(axis=1).sum())} mesh vertices are NaN or inf; "
                           "a mesh file with them does not open")
    lo, hi = int(f.min()), int(f.max())
    if lo < 0 or hi >= v.shape[0]:
        bad = int(((f < 0) | (f >= v.shape[0])).any(axis=1).sum())
        raise FlowlabError(f"{bad} mesh faces index vertices outside [0, {v.shape[0] - 1}] (indices span "
                           f"[{lo}, {hi}] for {v.shape[0]} vertices); the mesh is inconsistent, nothing written")
    return mesh


def export_mesh(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` as .glb, .obj or .ply (by suffix) atomically: a temp file, then a rename.

    Raises FlowlabError for an unknown suffix or an unwritable destination; nothing is left
    half-written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise FlowlabError(f"cannot write {str(path)!r}: unknown mesh format {suffix or '(none)'!r}; "
                           f"use one of {', '.join(EXPORT_FORMATS)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FlowlabError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist; create it first")
    check_mesh(mesh)
    data = mesh.to_trimesh().export(file_type=suffix[1:])
    if isinstance(data, str):
        data = data.encode()
    write_atomic(path, data)
    return path
