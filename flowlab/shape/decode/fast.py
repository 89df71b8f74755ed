"""Fast paths for the shape model on a GPU, each checked against the readable path it replaces.

The readable modules (:mod:`.dit`, :mod:`.vae`, :mod:`.volume`, :mod:`.pipeline`) stay the
definition; nothing here changes what is computed, only how:

* :func:`compile_blocks`: regional ``torch.compile`` of the DiT's blocks, in place (one compiled
  graph per block class, reused by every block of that class; the state-dict keys do not change).
  Fuses the element-wise work around the matrix products (LayerNorm + modulation, the float32
  QK RMSNorm, GELU, gates). :func:`uncompile_blocks` undoes it.
* :class:`GraphedVelocity`: one CUDA graph per velocity call (``model(x, t) -> v``, e.g. a
  :class:`~flowlab.shape.pipeline.DiTVelocity` with its CFG batch): one launch instead of a few
  thousand.
* :func:`skip_noop_steps`: drops the zero-length last step of the compatibility schedule
  (``t = 1 -> 1``): ``x + 0 * v = x`` for finite ``v``, so N calls become N - 1 with the same result.
* :func:`decode_dense_fast`: the dense volume decode with the key / value once, fixed-size chunks
  (the last one padded, so a compiled query sees one shape) written into one preallocated volume
  (no list of chunks and concatenation: half the peak memory of the volume), and an optional
  compiled query.
* :func:`decode_hierarchical_fast`: :func:`flowlab.shape.decode.volume.decode_hierarchical` (coarse to fine,
  the network only near the surface) with the same fixed-size chunks and optional compiled query;
  the points of each level are grouped in space (:func:`flowlab.shape.decode.volume.brick_order`), which the
  adaptive key / value selection of :func:`selected_query` relies on.

Direction of time is the model's (reversed for Hunyuan3D-2: t = 0 noise, t = 1 data).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import FlowlabError
from ..models.dit import ShapeDiT
from ..models.vae import KV, GeoDecoder
from .volume import (RELEASE_OCTREE, brick_order, grid_axis, grid_points, octree_levels, query_selected,
                     refine_level)

__all__ = ["compile_blocks", "uncompile_blocks", "GraphedVelocity", "skip_noop_steps", "decode_dense_fast",
           "compiled_query", "marching_cubes_parallel", "decode_hierarchical_fast", "selected_query"]

#: A velocity model ``model(x, t) -> v``: x (B, N, C), t (B,) -> v (B, N, C).
Velocity = Callable[[Tensor, Tensor], Tensor]


def compile_blocks(dit: ShapeDiT, *, backend: str = "inductor", mode: str | None = None) -> ShapeDiT:
    """Compile each double- and single-stream block of ``dit`` in place (regional compilation).

    Blocks of one class share their compiled code, so the compile cost is that of two blocks, not 48.
    Returns ``dit`` (the same object). Shapes are static: a new token count compiles once more.
    """
    if not isinstance(dit, ShapeDiT):
        raise FlowlabError(f"compile_blocks needs a ShapeDiT, got {type(dit).__name__}")
    for block in [*dit.double_blocks, *dit.single_blocks]:
        block.compile(backend=backend, mode=mode, dynamic=False)
    return dit


def uncompile_blocks(dit: ShapeDiT) -> ShapeDiT:
    """Undo :func:`compile_blocks`: the blocks run eagerly again. Returns ``dit``."""
    for block in [*dit.double_blocks, *dit.single_blocks]:
        block._compiled_call_impl = None
    return dit


class GraphedVelocity:
    """``model(x, t) -> v`` replayed from one captured CUDA graph.

    Captured on the first call for that call's shapes (after ``warmup`` eager calls on a side
    stream); later calls copy ``x`` and ``t`` into the static inputs, replay, and return a copy of
    the static output. Calls with other shapes, dtypes or devices raise FlowlabError. The model must
    do no host synchronisation and keep its other inputs (weights, cond) at fixed addresses.

    x: (B, ...) on a CUDA device, t: (B,) -> v: like x.
    """

    def __init__(self, model: Velocity, *, warmup: int = 2) -> None:
        if not callable(model):
            raise FlowlabError(f"GraphedVelocity needs a callable model(x, t) -> v, got {type(model).__name__}")
        if warmup < 1:
            raise FlowlabError(f"warmup must be >= 1 (capture needs warmed-up kernels), got {warmup}")
        self.model = model
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self._x: Tensor | None = None
        self._t: Tensor | None = None
        self._v: Tensor | None = None
        self.replays = 0

    def _capture(self, x: Tensor, t: Tensor) -> None:
        self._x, self._t = x.clone(), t.clone()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.model(self._x, self._t)
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._v = self.model(self._x, self._t)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        if x.device.type != "cuda":
            raise FlowlabError(f"GraphedVelocity runs on CUDA tensors; x is on {x.device} (call the model directly)")
        if self.graph is None:
            self._capture(x, t)
        elif (x.shape, x.dtype, x.device, t.shape, t.dtype) != (self._x.shape, self._x.dtype, self._x.device,
                                                                  self._t.shape, self._t.dtype):
            raise FlowlabError(f"GraphedVelocity was captured for x {tuple(self._x.shape)} {self._x.dtype}, "
                               f"t {tuple(self._t.shape)} {self._t.dtype}; got x {tuple(x.shape)} {x.dtype}, "
                               f"t {tuple(t.shape)} {t.dtype}: build another one for these shapes")
        self._x.copy_(x)
        self._t.copy_(t)
        self.graph.replay()
        self.replays += 1
        return self._v.clone()


def skip_noop_steps(schedule: Tensor) -> Tensor:
    """Drop zero-length steps (``t[i + 1] == t[i]``) from a 1-D schedule (T + 1,) -> (T' + 1,).

    Hunyuan3D-2's compatibility schedule ends ``..., 1, 1``: its last model call moves nothing.
    The Euler update of a zero step returns ``x`` exactly (for a finite velocity), so sampling the
    shortened schedule gives the same samples with one model call fewer. Direction of time unchanged.
    """
    if not isinstance(schedule, Tensor) or schedule.ndim != 1 or schedule.numel() < 2:
        raise FlowlabError("schedule must be a 1-D tensor with at least 2 points")
    keep = torch.ones(schedule.shape[0], dtype=torch.bool)
    keep[1:] = schedule[1:].cpu() != schedule[:-1].cpu()
    out = schedule[keep.to(schedule.device)]
    if out.numel() < 2:
        raise FlowlabError("the schedule has no step of non-zero length")
    return out


def compiled_query(geo: GeoDecoder, *, backend: str = "inductor", mode: str | None = None
                   ) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``fn(points (B, P, 3), k, v (B, H, N, D)) -> logits (B, P)``: :meth:`GeoDecoder.query`, compiled.

    The key / value pair is passed as tensors (not a :class:`KV` object), so one compiled graph serves
    every shape of the same size.
    """
    def query(points: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return geo.query(points, KV(k=k, v=v))

    return torch.compile(query, backend=backend, mode=mode, dynamic=False)


def selected_query(geo: GeoDecoder, topk: int, *, group: int = 1024, probes: int = 32, compile: bool = False,
                   backend: str = "inductor", mode: str | None = None) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``fn(points (B, P, 3), k, v) -> logits (B, P)`` with adaptive key / value selection
    (:func:`flowlab.shape.decode.volume.query_selected`: each group of ``group`` points attends to its ``topk``
    most important latent tokens). P must be a multiple of ``group`` (the fast decoders' chunk sizes are).
    """
    if topk < 1 or group < 1 or probes < 1:
        raise FlowlabError(f"topk, group and probes must be >= 1, got {topk}, {group}, {probes}")

    def query(points: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return query_selected(geo, points, KV(k=k, v=v), topk=topk, group=group, probes=probes)

    query.group = group  # the decoders round their chunk size to a multiple of it
    if compile:
        compiled = torch.compile(query, backend=backend, mode=mode, dynamic=False)
        compiled.group = group
        return compiled
    return query


def _query_points(kv: KV, axis: Tensor, flat: Tensor, out: Tensor, step: int,
                  query: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``out[:, flat] = query(grid points at flat)`` in chunks of exactly ``step`` points (the last one
    padded with copies of its final point; the copies write the same value again)."""
    total = flat.shape[0]
    b = out.shape[0]
    for start in range(0, total, step):
        idx = flat[start:start + step]
        if idx.shape[0] < step:
            idx = torch.cat([idx, idx[-1:].expand(step - idx.shape[0])])
        points = grid_points(axis, idx)[None].expand(b, -1, -1)
        out[:, idx] = query(points, kv.k, kv.v).float()


@torch.no_grad()
def decode_hierarchical_fast(geo: GeoDecoder, tokens: Tensor, resolution: int = RELEASE_OCTREE, *, bounds: float = 1.01,
                             chunk_size: int = 131072, min_resolution: int = 63, threshold: float = 0.95,
                             query: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Coarse-to-fine logits, as :func:`flowlab.shape.decode.volume.decode_hierarchical` (the same levels,
    the same near-surface points, the same upsampling), with every chunk exactly ``chunk_size`` points
    (rounded up to a multiple of ``query.group`` for a :func:`selected_query`), so that one compiled
    query serves all of them. With a :func:`selected_query` each level's points are queried in
    :func:`brick_order`, so that a group of points is compact in space.

    tokens: (B, N, width). Returns (B, R + 1, R + 1, R + 1) float32, positive = inside.
    """
    if chunk_size < 1:
        raise FlowlabError(f"chunk size must be >= 1, got {chunk_size}")
    if tokens.ndim != 3:
        raise FlowlabError(f"tokens must be (B, N, width) decoded latent tokens, got shape {tuple(tokens.shape)}")
    if query is None:
        def query(points: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return geo.query(points, KV(k=k, v=v))
    group = int(getattr(query, "group", 1))
    step = -(-chunk_size // group) * group
    dev = tokens.device
    b = tokens.shape[0]
    kv = geo.prepare(tokens)
    levels = octree_levels(resolution, min_resolution)
    n = levels[0] + 1
    out = torch.empty(b, n ** 3, dtype=torch.float32, device=dev)
    order = (lambda f, m: brick_order(f, m)) if group > 1 else (lambda f, m: f)  # only selection needs it
    _query_points(kv, grid_axis(levels[0], bounds).to(dev), order(torch.arange(n ** 3, device=dev), n), out, step,
                  query)
    logits = out.view(b, n, n, n)
    for res in levels[1:]:
        n = res + 1
        fine, flat = refine_level(logits, res, threshold)
        del logits
        _query_points(kv, grid_axis(res, bounds).to(dev), order(flat, n), fine, step, query)
        logits = fine.view(b, n, n, n)
    return logits


@torch.no_grad()
def decode_dense_fast(geo: GeoDecoder, tokens: Tensor, resolution: int = RELEASE_OCTREE, *, bounds: float = 1.01,
                      chunk_size: int = 131072,
                      query: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Logits on the full ``(R + 1)^3`` grid, as :func:`flowlab.shape.decode.volume.decode_dense`.

    Differences from the readable one (values agree up to the matrix kernels' round-off for another
    row count): every chunk has exactly ``chunk_size`` points (the last is padded with copies of the
    final grid point and the padding dropped), and each chunk is written into one preallocated
    float32 volume. ``query``: ``fn(points, k, v) -> logits`` (e.g. :func:`compiled_query`);
    default the readable :meth:`GeoDecoder.query`.

    tokens: (B, N, width). Returns (B, R + 1, R + 1, R + 1) float32, positive = inside.
    """
    if chunk_size < 1:
        raise FlowlabError(f"chunk size must be >= 1, got {chunk_size}")
    if tokens.ndim != 3:
        raise FlowlabError(f"tokens must be (B, N, width) decoded latent tokens, got shape {tuple(tokens.shape)}")
    axis = grid_axis(resolution, bounds).to(tokens.device)
    n = axis.shape[0]
    total = n ** 3
    kv = geo.prepare(tokens)
    if query is None:
        def query(points: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return geo.query(points, KV(k=k, v=v))
    b = tokens.shape[0]
    out = torch.empty(b, total, dtype=torch.float32, device=tokens.device)
    step = min(chunk_size, total)
    offsets = torch.arange(step, device=tokens.device)
    for start in range(0, total, step):
        m = min(step, total - start)
        flat = (offsets + start).clamp_max(total - 1)  # (step,): the padding repeats the last point
        points = grid_points(axis, flat)[None].expand(b, -1, -1)  # (B, step, 3)
        out[:, start:start + m] = query(points, kv.k, kv.v)[:, :m]
    return out.view(b, n, n, n)


def _slab_marching_cubes(args: tuple) -> tuple:
    """Worker: skimage 'lewiner' on one x-slab; vertices shifted to the whole volume's index frame."""
    from skimage import measure

    slab, level, x0 = args
    lo, hi = float(slab.min()), float(slab.max())
    if not (lo <= level <= hi) or lo == hi:
        return None
    verts, faces, _normals, _values = measure.marching_cubes(slab, level, method="lewiner")
    verts[:, 0] += x0
    return verts, faces


def marching_cubes_parallel(logits: Tensor, *, level: float = 0.0, bounds: float = 1.01, pool=None,
                            slabs: int = 16):
    """:func:`flowlab.shape.decode.mesh.marching_cubes` with the volume cut into x-slabs run in parallel.

    Adjacent slabs share one grid plane, so every cube is triangulated exactly once (the Lewiner
    tables decide a cube from its own 8 values); vertices on a shared plane come out of both slabs
    with the same coordinates and are merged, as the readable path merges coincident vertices. Same
    vertex mapping (``verts / (R + 1) * 2b - b``), face winding and merging as the readable path.

    logits: (R + 1, R + 1, R + 1), positive inside. ``pool``: an executor with ``map`` (e.g. a
    ``concurrent.futures.ProcessPoolExecutor``; skimage holds the GIL, so threads do not help); None runs the
    slabs one after another. Raises FlowlabError when the volume does not cross ``level``.
    """
    import numpy as np
    import trimesh

    from .mesh import Mesh

    vol = logits.detach().float().cpu().numpy() if isinstance(logits, Tensor) else np.asarray(logits, np.float32)
    if vol.ndim != 3:
        raise FlowlabError(f"expected one (R+1, R+1, R+1) volume, got shape {vol.shape}")
    lo, hi = float(np.nanmin(vol)), float(np.nanmax(vol))
    if not (lo <= level <= hi) or lo == hi:
        raise FlowlabError(f"no surface: the occupancy logits span [{lo:.4g}, {hi:.4g}] and never cross the "
                           f"iso-level {level:g}, so there is no mesh to write")
    n = vol.shape[0]
    slabs = max(1, min(int(slabs), n - 1))
    cuts = np.linspace(0, n - 1, slabs + 1).round().astype(int)
    jobs = [(np.ascontiguousarray(vol[a:b + 1]), level, float(a)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    results = list(pool.map(_slab_marching_cubes, jobs) if pool is not None else map(_slab_marching_cubes, jobs))
    verts_l, faces_l, offset = [], [], 0
    for r in results:
        if r is None:
            continue
        verts_l.append(r[0])
        faces_l.append(r[1] + offset)
        offset += r[0].shape[0]
    verts = np.concatenate(verts_l)
    faces = np.concatenate(faces_l)
    grid_size = np.array(vol.shape)
    verts = (verts / grid_size * np.array([2 * bounds] * 3) + np.array([-bounds] * 3)).astype(np.float32)
    faces = np.ascontiguousarray(faces[:, ::-1])
    tm = trimesh.Trimesh(verts, faces)
    return Mesh(vertices=np.asarray(tm.vertices, dtype=np.float64), faces=np.asarray(tm.faces, dtype=np.int64))
