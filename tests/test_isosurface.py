"""flowlab.shape.decode.isosurface: torch marching cubes against scikit-image (CPU), and the Chamfer distance."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from flowlab.errors import FlowlabError
from flowlab.shape.decode import _mc_table
from flowlab.shape.decode.isosurface import chamfer_distance, marching_cubes_torch, mesh_agreement
from flowlab.shape.decode.mesh import Mesh, marching_cubes

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def _canonical_triangles(verts: np.ndarray, faces: np.ndarray, ref_verts: np.ndarray) -> set:
    """Oriented triangles as triples of ``ref_verts`` indices (nearest vertex), rotated to start at the smallest."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(ref_verts).query(verts)
    assert dist.max() < 1e-5  # every vertex is one of the reference's
    out = set()
    for t in idx[faces]:
        i = int(np.argmin(t))
        out.add(tuple(np.roll(t, -i)))
    return out


def _sdf_volume(n: int = 41, bounds: float = 1.01) -> np.ndarray:
    ax = np.linspace(-bounds, bounds, n, dtype=np.float32)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    sphere = 0.55 - np.sqrt((x + 0.3) ** 2 + y ** 2 + z ** 2)
    ring = np.sqrt((np.sqrt((x - 0.4) ** 2 + y ** 2) - 0.35) ** 2 + z ** 2)
    return (20 * np.maximum(sphere, 0.15 - ring) + 0.3 * np.sin(7 * x) * np.cos(5 * y)).astype(np.float32)


def test_table_is_the_one_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_mc_table", ROOT / "tools" / "make_mc_table.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.table() == _mc_table.TRIANGLES
    assert gen.EDGES == _mc_table.EDGES
    assert len(_mc_table.TRIANGLES) == 256 and _mc_table.TRIANGLES[0] == [] == _mc_table.TRIANGLES[255]


@pytest.mark.parametrize("shape,seed", [((9, 10, 11), 0), ((6, 6, 6), 1), ((2, 3, 2), 2)])
def test_same_triangles_as_skimage_lorensen_on_a_random_volume(shape, seed):
    from skimage import measure

    vol = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    verts, faces = marching_cubes_torch(torch.from_numpy(vol), to_mesh=False)
    sv, sf, _n, _v = measure.marching_cubes(vol, 0.0, method="lorensen")
    sv = (sv / np.array(vol.shape) * 2.02 - 1.01).astype(np.float32)
    assert verts.shape[0] == sv.shape[0] and faces.shape[0] == sf.shape[0]
    # the same oriented triangles: ours already carry the reference's reversed winding
    assert _canonical_triangles(verts.numpy(), faces.numpy(), sv) == {
        tuple(np.roll(t, -int(np.argmin(t)))) for t in sf[:, ::-1]}


def test_matches_the_reference_lewiner_path_on_a_smooth_field():
    vol = _sdf_volume(41)
    ref = marching_cubes(vol)  # skimage lewiner + trimesh merge: the reference path
    got = marching_cubes_torch(torch.from_numpy(vol), bounds=1.01)
    agree = mesh_agreement(got, ref, samples=None)
    assert abs(agree["vertices"] - agree["ref_vertices"]) <= 0.002 * agree["ref_vertices"]
    assert abs(agree["faces"] - agree["ref_faces"]) <= 0.002 * agree["ref_faces"]
    assert agree["chamfer_rel"] < 1e-4
    # outward normals as the reference: the signed volume of a closed mesh is positive
    v, f = got.vertices, got.faces
    signed = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    ref_signed = np.einsum("ij,ij->i", ref.vertices[ref.faces[:, 0]],
                           np.cross(ref.vertices[ref.faces[:, 1]], ref.vertices[ref.faces[:, 2]])).sum() / 6
    assert signed > 0 and ref_signed > 0 and abs(signed - ref_signed) < 1e-3 * ref_signed


def test_batch_of_one_level_and_no_surface():
    vol = torch.from_numpy(_sdf_volume(17))
    a = marching_cubes_torch(vol[None], level=0.5)
    b = marching_cubes(vol, level=0.5)
    assert mesh_agreement(a, b, samples=None)["chamfer_rel"] < 1e-4
    with pytest.raises(FlowlabError, match="no surface"):
        marching_cubes_torch(torch.ones(5, 5, 5))
    with pytest.raises(FlowlabError, match="volume"):
        marching_cubes_torch(torch.ones(5, 5))


def test_chamfer_distance_known_values():
    a = np.array([[0.0, 0.0, 0.0]])
    b = np.array([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    # a -> b: 1; b -> a: (1 + 3) / 2 = 2; symmetric mean 1.5
    assert chamfer_distance(a, b) == pytest.approx(1.5)
    assert chamfer_distance(b, a) == pytest.approx(1.5)
    m = Mesh(vertices=np.random.default_rng(0).random((50, 3)), faces=np.zeros((0, 3), np.int64))
    assert chamfer_distance(m, m) == 0.0
    shifted = Mesh(vertices=m.vertices + [0.0, 0.0, 1e-3], faces=m.faces)
    assert chamfer_distance(m, shifted, samples=None) == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(FlowlabError):
        chamfer_distance(np.zeros((0, 3)), b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_mesh():
    vol = torch.from_numpy(_sdf_volume(65))
    vc, fc = marching_cubes_torch(vol, to_mesh=False)
    vg, fg = marching_cubes_torch(vol.cuda(), to_mesh=False)
    assert vg.is_cuda and torch.equal(fg.cpu(), fc)
    torch.testing.assert_close(vg.cpu(), vc, rtol=0, atol=1e-6)
