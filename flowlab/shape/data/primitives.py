"""Procedural shapes with an analytic signed distance: the training data of the mini model.

Every shape is a small CSG of at most :data:`MAX_PARTS` parts. A part is one of six primitives in its
own frame (y is the axis of symmetry), placed by a rotation and a centre:

=============  ==================================  ==============================
kind           params (a, b, c, r)                 signed distance
=============  ==================================  ==============================
ellipsoid      semi-axes a, b, c                   bound (exact for a sphere)
box            half-extents a, b, c; rounding r    exact
cylinder       radius a, half-height b             exact
cone           base radius a, half-height b        exact (tip up)
torus          ring radius a, tube radius b        exact (ring in the xz plane)
capsule        half-length a, radius b             exact
=============  ==================================  ==============================

The shape's distance is ``max(min_union d_i, max_subtract -d_j)`` (union parts, then cut by the
subtract parts): exact sign everywhere, a lower bound of the distance near the cuts, which is all
sphere tracing and occupancy need. Occupancy is ``sdf < 0`` (inside), like the VAE's positive logits.

:func:`random_shapes` draws the 10 :data:`FAMILIES` with random size, a random rotation (any yaw,
tilts up to 35 degrees) and a random placement in the image plane, scaled so that every shape lies
inside the ball of radius 0.95 (so inside the unit box). The parameters are drawn from a CPU
generator seeded with ``seed``: the same seed gives the same shapes on any device.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import FlowlabError

__all__ = ["FAMILIES", "KINDS", "MAX_PARTS", "ShapeBatch", "random_shapes", "primitive", "surface_points",
           "query_points", "sdf_grid", "occupancy_grid", "volume_iou", "grid_points_ij"]

#: Part primitives (index = kind id).
KINDS = ("ellipsoid", "box", "cylinder", "cone", "torus", "capsule")
#: Shape families (index = family id).
FAMILIES = ("sphere", "ellipsoid", "box", "rounded_box", "cylinder", "cone", "torus", "capsule", "mug", "table")
MAX_PARTS = 6
BOUND_RADIUS = 0.95


class ShapeBatch:
    """B shapes of up to MAX_PARTS parts each. kind (B, P) long (-1 = unused part), params (B, P, 4),
    rot (B, P, 3, 3) world-from-part rotation, center (B, P, 3), sub (B, P) bool, family (B,) long.

    The distance is evaluated part by part, each kind only on the parts of that kind; which parts
    those are is worked out once on the CPU (no device synchronisation while sphere tracing).
    """

    _FIELDS = ("family", "kind", "params", "rot", "center", "sub")

    def __init__(self, family: Tensor, kind: Tensor, params: Tensor, rot: Tensor, center: Tensor, sub: Tensor,
                 _cpu: tuple[Tensor, Tensor] | None = None) -> None:
        self.family, self.kind, self.params, self.rot, self.center, self.sub = family, kind, params, rot, center, sub
        self._cpu = _cpu if _cpu is not None else (kind.cpu(), sub.cpu())
        self._plan_cache = None

    def __len__(self) -> int:
        return int(self.family.shape[0])

    def to(self, device) -> "ShapeBatch":
        return ShapeBatch(*(getattr(self, f).to(device) for f in self._FIELDS), _cpu=self._cpu)

    def __getitem__(self, idx) -> "ShapeBatch":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        if isinstance(idx, Tensor):
            idx_cpu = idx.cpu()
        else:
            idx_cpu = idx
        return ShapeBatch(*(getattr(self, f)[idx] for f in self._FIELDS),
                          _cpu=(self._cpu[0][idx_cpu], self._cpu[1][idx_cpu]))

    @property
    def device(self) -> torch.device:
        return self.params.device

    @property
    def family_names(self) -> list[str]:
        return [FAMILIES[int(i)] for i in self.family.cpu()]

    def _plan(self) -> dict:
        if self._plan_cache is None:
            kind, sub = self._cpu
            qb, qp = torch.nonzero(kind >= 0, as_tuple=True)  # the used parts, (Q,) each
            qk, qs = kind[qb, qp], sub[qb, qp]
            dev = self.device
            self._plan_cache = {
                "b": qb.to(dev), "p": qp.to(dev),
                "kinds": [(k, torch.nonzero(qk == k).squeeze(1).to(dev)) for k in range(len(KINDS)) if (qk == k).any()],
                "union": torch.nonzero(~qs).squeeze(1).to(dev), "cut": torch.nonzero(qs).squeeze(1).to(dev),
                "has_cut": bool(qs.any()),
            }
        return self._plan_cache

    def sdf(self, points: Tensor) -> Tensor:
        """points (B, M, 3) (or (M, 3), shared) -> signed distance (B, M); negative inside."""
        plan = self._plan()
        qb, qp = plan["b"], plan["p"]
        b = len(self)
        if points.ndim == 2:
            pts = points[None].expand(qb.shape[0], -1, -1)
        else:
            pts = points[qb]  # (Q, M, 3)
        m = pts.shape[1]
        local = torch.einsum("qij,qmi->qmj", self.rot[qb, qp], pts - self.center[qb, qp][:, None])  # R^T (p - c)
        params = self.params[qb, qp]  # (Q, 4)
        d = torch.empty(qb.shape[0], m, device=pts.device, dtype=pts.dtype)
        for k, sel in plan["kinds"]:
            d[sel] = _kind_sdf(k, params[sel], local[sel])
        big = torch.finfo(d.dtype).max / 4
        u = plan["union"]
        out = torch.full((b, m), big, device=d.device, dtype=d.dtype)
        out = out.scatter_reduce(0, qb[u][:, None].expand(-1, m), d[u], reduce="amin")
        if plan["has_cut"]:
            c = plan["cut"]
            cut = torch.full((b, m), -big, device=d.device, dtype=d.dtype)
            cut = cut.scatter_reduce(0, qb[c][:, None].expand(-1, m), -d[c], reduce="amax")
            out = torch.maximum(out, cut)
        return out

    def occupancy(self, points: Tensor) -> Tensor:
        """points (B, M, 3) -> bool (B, M), True inside."""
        return self.sdf(points) < 0

    def normals(self, points: Tensor, eps: float = 1e-3) -> Tensor:
        """Unit gradient of the sdf by central differences (one batched evaluation): (B, M, 3)."""
        if points.ndim == 2:
            points = points[None].expand(len(self), -1, -1)
        m = points.shape[1]
        e = torch.eye(3, device=points.device, dtype=points.dtype) * eps
        offsets = torch.cat([e, -e])  # (6, 3)
        d = self.sdf((points[:, None] + offsets[None, :, None]).reshape(len(self), 6 * m, 3)).view(len(self), 6, m)
        g = (d[:, :3] - d[:, 3:]).transpose(1, 2)  # (B, M, 3)
        return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _kind_sdf(kind: int, params: Tensor, p: Tensor) -> Tensor:
    """Distance of local points p (n, M, 3) to n parts of one ``kind`` with params (n, 4) -> (n, M)."""
    a, b, c, r = (params[:, i, None] for i in range(4))  # (n, 1)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    if kind == 0:  # ellipsoid: k0 (k0 - 1) / k1, the usual bound (exact for a sphere)
        s = params[:, None, :3].clamp_min(1e-6)
        k0 = (p / s).norm(dim=-1)
        k1 = (p / (s * s)).norm(dim=-1)
        # at the very centre the bound is 0 / 0: the distance there is the smallest semi-axis
        return torch.where(k1 > 1e-9, k0 * (k0 - 1) / k1.clamp_min(1e-9), -s.amin(dim=-1))
    if kind == 1:  # rounded box: box of half-extents (a, b, c) - r, inflated by r
        q = p.abs() - (params[:, None, :3] - r[..., None])
        return q.clamp_min(0).norm(dim=-1) + q.amax(dim=-1).clamp_max(0) - r
    rho = torch.sqrt(x * x + z * z)
    if kind == 2:  # cylinder radius a, half-height b
        dx, dy = rho - a, y.abs() - b
        return torch.sqrt(dx.clamp_min(0) ** 2 + dy.clamp_min(0) ** 2) + torch.maximum(dx, dy).clamp_max(0)
    if kind == 3:  # cone: radius a at y = -b, tip at y = +b
        return _cone(rho, y, a, b)
    if kind == 4:  # torus: ring radius a in the xz plane, tube radius b
        return torch.sqrt((rho - a) ** 2 + y * y) - b
    if kind == 5:  # capsule along y: segment half-length a, radius b
        yc = y - torch.maximum(torch.minimum(y, a), -a)
        return torch.sqrt(x * x + yc * yc + z * z) - b
    raise AssertionError(kind)


def _cone(rho: Tensor, y: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Exact distance to a solid cone in the (rho, y) half plane: base disc radius a at y = -b, apex (0, b)."""
    # distance to the base disc segment {(s, -b): 0 <= s <= a}
    base = torch.sqrt((rho - rho.clamp(max=a)) ** 2 + (y + b) ** 2)
    # distance to the slanted side from (a, -b) to (0, b)
    ex, ey = -a, 2 * b
    wx, wy = rho - a, y + b
    h = ((wx * ex + wy * ey) / (ex * ex + ey * ey)).clamp(0, 1)
    side = torch.sqrt((wx - h * ex) ** 2 + (wy - h * ey) ** 2)
    # inside: above the base, below the side line (its outward normal is (2b, a))
    inside = (y > -b) & ((rho - a) * 2 * b + (y + b) * a < 0)
    d = torch.minimum(base, side)
    return torch.where(inside, -d, d)


# ---- drawing shapes ---------------------------------------------------------------------------

def _u(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _rot_x(t: Tensor) -> Tensor:
    c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).view(-1, 3, 3)


def _rot_y(t: Tensor) -> Tensor:
    c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(-1, 3, 3)


def _rot_z(t: Tensor) -> Tensor:
    c, s, o, z = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).view(-1, 3, 3)


def _family_parts(fam: int, n: int, g: torch.Generator):
    """Parts in the shape frame for n shapes of one family: kind, params, rot, center, sub (lists per part)."""
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    zero3 = torch.zeros(n, 3, dtype=torch.float64)
    z = torch.zeros(n, dtype=torch.float64)
    parts = []  # (kind, params (n, 4), rot (n, 3, 3), center (n, 3), sub)
    name = FAMILIES[fam]
    if name == "sphere":
        r = _u(g, n, 0.45, 0.85)
        parts.append((0, torch.stack([r, r, r, z], 1), eye, zero3, False))
    elif name == "ellipsoid":
        parts.append((0, torch.stack([_u(g, n, 0.25, 0.85), _u(g, n, 0.25, 0.85), _u(g, n, 0.25, 0.85), z], 1),
                      eye, zero3, False))
    elif name in ("box", "rounded_box"):
        e = torch.stack([_u(g, n, 0.2, 0.7), _u(g, n, 0.2, 0.7), _u(g, n, 0.2, 0.7)], 1)
        r = z if name == "box" else _u(g, n, 0.25, 0.6) * e.amin(1)
        parts.append((1, torch.cat([e, r[:, None]], 1), eye, zero3, False))
    elif name == "cylinder":
        parts.append((2, torch.stack([_u(g, n, 0.2, 0.6), _u(g, n, 0.25, 0.8), z, z], 1), eye, zero3, False))
    elif name == "cone":
        parts.append((3, torch.stack([_u(g, n, 0.3, 0.7), _u(g, n, 0.3, 0.8), z, z], 1), eye, zero3, False))
    elif name == "torus":
        big = _u(g, n, 0.4, 0.65)
        parts.append((4, torch.stack([big, _u(g, n, 0.3, 0.55) * big, z, z], 1), eye, zero3, False))
    elif name == "capsule":
        parts.append((5, torch.stack([_u(g, n, 0.15, 0.5), _u(g, n, 0.18, 0.42), z, z], 1), eye, zero3, False))
    elif name == "mug":
        r, h = _u(g, n, 0.32, 0.5), _u(g, n, 0.38, 0.6)
        wall = _u(g, n, 0.06, 0.1)
        parts.append((2, torch.stack([r, h, z, z], 1), eye, zero3, False))
        hr = _u(g, n, 0.5, 0.7) * h  # handle ring radius
        tube = _u(g, n, 0.05, 0.075)
        centre = torch.stack([r + 0.55 * hr, z, z], 1)
        parts.append((4, torch.stack([hr, tube, z, z], 1), _rot_x(torch.full((n,), math.pi / 2, dtype=torch.float64)),
                      centre, False))
        # the cavity: open at the top, a floor of thickness `wall`
        parts.append((2, torch.stack([r - wall, h, z, z], 1), eye, torch.stack([z, wall + 0.0, z], 1), True))
    elif name == "table":
        w, d = _u(g, n, 0.5, 0.8), _u(g, n, 0.4, 0.75)
        top_t, height = _u(g, n, 0.04, 0.08), _u(g, n, 0.45, 0.8)
        leg_r = _u(g, n, 0.045, 0.08)
        parts.append((1, torch.stack([w, top_t, d, z], 1), eye, torch.stack([z, height - top_t, z], 1), False))
        leg_half = height - top_t
        for sx, sz in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            # legs from y = -height up to the underside of the top (y = height - 2 top_t)
            c = torch.stack([sx * (w - 1.5 * leg_r), -top_t, sz * (d - 1.5 * leg_r)], 1)
            parts.append((2, torch.stack([leg_r, leg_half, z, z], 1), eye, c, False))
    else:  # pragma: no cover - FAMILIES is closed
        raise AssertionError(name)
    return parts


def _bound_radius(kind: int, params: Tensor) -> Tensor:
    a, b, c, r = params.unbind(1)
    if kind == 0:
        return torch.maximum(torch.maximum(a, b), c)
    if kind == 1:
        return torch.sqrt(a * a + b * b + c * c)
    if kind in (2, 3):
        return torch.sqrt(a * a + b * b)
    if kind == 4:
        return a + b
    return a + b


def random_shapes(n: int, seed: int, *, families: list[str] | tuple[str, ...] | None = None,
                  balanced: bool = False, device: torch.device | str = "cpu", dtype=torch.float32,
                  pose: bool = True) -> ShapeBatch:
    """``n`` random shapes, deterministic given ``seed`` (drawn on a CPU generator).

    ``families`` limits the families (default all); ``balanced`` cycles through them in order
    (shape i is family i mod F) instead of drawing each at random. ``pose=False`` keeps the
    canonical orientation and no offset (still scaled into the ball of radius 0.95).
    """
    names = list(FAMILIES) if families is None else list(families)
    bad = [f for f in names if f not in FAMILIES]
    if bad or not names:
        raise FlowlabError(f"unknown shape famil{'y' if len(bad) == 1 else 'ies'} {bad or names}; "
                           f"valid: {', '.join(FAMILIES)}")
    if n < 1:
        raise FlowlabError(f"number of shapes must be >= 1, got {n}")
    g = torch.Generator("cpu").manual_seed(int(seed))
    ids = torch.tensor([FAMILIES.index(f) for f in names])
    if balanced:
        fam = ids[torch.arange(n) % len(ids)]
    else:
        fam = ids[torch.randint(len(ids), (n,), generator=g)]
    kind = torch.full((n, MAX_PARTS), -1, dtype=torch.long)
    params = torch.zeros(n, MAX_PARTS, 4, dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64).repeat(n, MAX_PARTS, 1, 1)
    center = torch.zeros(n, MAX_PARTS, 3, dtype=torch.float64)
    sub = torch.zeros(n, MAX_PARTS, dtype=torch.bool)
    for f in range(len(FAMILIES)):
        idx = torch.nonzero(fam == f).squeeze(1)
        if idx.numel() == 0:
            continue
        fg = torch.Generator("cpu").manual_seed(int(torch.randint(2**62, (1,), generator=g)))
        for j, (k, pr, rt, ct, sb) in enumerate(_family_parts(f, idx.numel(), fg)):
            kind[idx, j] = k
            params[idx, j] = pr
            rot[idx, j] = rt
            center[idx, j] = ct
            sub[idx, j] = sb
    if pose:
        yaw = _u(g, n, 0.0, 2 * math.pi)
        pitch = _u(g, n, -35.0, 35.0) * math.pi / 180
        roll = _u(g, n, -35.0, 35.0) * math.pi / 180
        rg = _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)  # (n, 3, 3)
        offset = torch.stack([_u(g, n, -0.1, 0.1), _u(g, n, -0.1, 0.1), torch.zeros(n, dtype=torch.float64)], 1)
    else:
        rg = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
        offset = torch.zeros(n, 3, dtype=torch.float64)
    rot = rg[:, None] @ rot
    center = torch.einsum("bij,bpj->bpi", rg, center)
    # radius of a ball about `offset` holding every union part
    radius = torch.zeros(n, dtype=torch.float64)
    for j in range(MAX_PARTS):
        for k in range(len(KINDS)):
            m = (kind[:, j] == k) & ~sub[:, j]
            if m.any():
                br = _bound_radius(k, params[m, j]) + center[m, j].norm(dim=1)
                radius[m] = torch.maximum(radius[m], br)
    room = BOUND_RADIUS - offset.norm(dim=1)
    scale = torch.clamp(room / radius, max=1.0)
    params = params * scale[:, None, None]
    center = center * scale[:, None, None] + offset[:, None]
    return ShapeBatch(family=fam, kind=kind, params=params.to(dtype), rot=rot.to(dtype), center=center.to(dtype),
                      sub=sub).to(device)


def primitive(name: str, seed: int = 0, *, device: torch.device | str = "cpu", pose: bool = True) -> ShapeBatch:
    """One shape of family ``name`` (see :data:`FAMILIES`); FlowlabError naming the valid ones otherwise."""
    if name not in FAMILIES:
        raise FlowlabError(f"unknown primitive {name!r}; valid primitives: {', '.join(FAMILIES)}")
    return random_shapes(1, seed, families=[name], device=device, pose=pose)


# ---- points and labels -------------------------------------------------------------------------

def surface_points(shapes: ShapeBatch, n: int, generator: torch.Generator, *, candidates: int = 4,
                   iters: int = 5) -> tuple[Tensor, Tensor]:
    """``n`` points on each surface and their outward unit normals: (B, n, 3) each.

    Candidates uniform in the box are projected onto the zero level set (``p <- p - d n``, ``iters``
    times); those that land within 2e-3 of it are kept and ``n`` drawn among them.
    """
    b, dev = len(shapes), shapes.device
    m = n * candidates
    p = (torch.rand(b, m, 3, generator=generator, device=dev) * 2 - 1)
    for _ in range(iters):
        d = shapes.sdf(p)
        p = (p - d[..., None] * shapes.normals(p)).clamp(-1.0, 1.0)
    d = shapes.sdf(p).abs()
    weight = (d < 2e-3).float() + 1e-12  # every shape has some surface in the box
    pick = torch.multinomial(weight, n, replacement=True, generator=generator)  # (B, n)
    p = torch.gather(p, 1, pick[..., None].expand(-1, -1, 3))
    return p, shapes.normals(p)


def query_points(shapes: ShapeBatch, n_volume: int, n_near: int, generator: torch.Generator,
                 surface: Tensor | None = None, sigmas: tuple[float, ...] = (0.01, 0.05),
                 bounds: float = 1.01, signed: bool = False) -> tuple[Tensor, Tensor]:
    """Labelled queries: ``n_volume`` uniform in the box plus ``n_near`` near the surface (Gaussian
    offsets of surface points, an equal share with each of ``sigmas``; small sigmas put queries on both
    sides of thin parts such as a table leg or a mug handle). Returns points (B, n, 3) and occupancy (B, n)
    float, or with ``signed`` the signed distance (B, n), negative inside (the ``tsdf`` labels)."""
    if not sigmas or any(not (s > 0) for s in sigmas):
        raise FlowlabError(f"query_points: sigmas must be positive distances, got {sigmas!r}")
    b, dev = len(shapes), shapes.device
    vol = (torch.rand(b, n_volume, 3, generator=generator, device=dev) * 2 - 1) * bounds
    if surface is None:
        surface, _ = surface_points(shapes, n_near, generator)
    idx = torch.randint(surface.shape[1], (b, n_near), generator=generator, device=dev)
    near = torch.gather(surface, 1, idx[..., None].expand(-1, -1, 3))
    share = torch.arange(n_near, device=dev) * len(sigmas) // max(1, n_near)  # 0 .. len(sigmas) - 1
    sig = torch.tensor(sigmas, dtype=torch.float32, device=dev)[share].view(1, n_near, 1).expand(b, -1, -1)
    near = (near + sig * torch.randn(b, n_near, 3, generator=generator, device=dev)).clamp(-bounds, bounds)
    pts = torch.cat([vol, near], dim=1)
    return pts, (shapes.sdf(pts) if signed else shapes.occupancy(pts).float())


def grid_points_ij(resolution: int, bounds: float = 1.01, device="cpu") -> Tensor:
    """The (R + 1)^3 points of flowlab's decoding grid (volume.grid_axis, 'ij'): ((R + 1)^3, 3)."""
    from ..decode.volume import grid_axis

    ax = grid_axis(resolution, bounds).to(device)
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)


@torch.no_grad()
def sdf_grid(shapes: ShapeBatch, resolution: int = 64, bounds: float = 1.01, chunk: int = 65536) -> Tensor:
    """Analytic signed distance on the decoding grid: (B, R + 1, R + 1, R + 1), same layout as decode_dense."""
    pts = grid_points_ij(resolution, bounds, shapes.device)
    out = torch.cat([shapes.sdf(pts[i:i + chunk]) for i in range(0, pts.shape[0], chunk)], dim=1)
    n = resolution + 1
    return out.view(len(shapes), n, n, n)


@torch.no_grad()
def occupancy_grid(shapes: ShapeBatch, resolution: int = 64, bounds: float = 1.01, chunk: int = 65536) -> Tensor:
    """Analytic occupancy on the decoding grid: bool (B, R + 1, R + 1, R + 1) (:func:`sdf_grid` < 0)."""
    return sdf_grid(shapes, resolution, bounds, chunk) < 0


def volume_iou(a: Tensor, b: Tensor) -> Tensor:
    """Volumetric IoU of two boolean occupancy volumes (B, ...) -> (B,) (1 when both are empty)."""
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
