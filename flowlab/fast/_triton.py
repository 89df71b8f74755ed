"""Triton kernels behind :mod:`flowlab.fast` (imported only when a CUDA fast path runs).

Both kernels run a whole Euler trajectory per block of particles: ``x`` is read once, kept in
registers for every step and written once, so device memory sees one pass over the particles. The
per-step tables (a few KB) stay in L1 / L2.
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..errors import FlowlabError

LOG2E = 1.4426950408889634


def _on(x: Tensor) -> contextlib.AbstractContextManager:
    """Launch on ``x``'s GPU (a no-op context for CPU tensors under ``TRITON_INTERPRET=1``)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# ---- exact isotropic Gaussian mixture ------------------------------------------------------------------

@triton.jit
def _gmm_euler_kernel(x_ptr, out_ptr, tab_ptr, dt_ptr, n, n_steps,
                      D: tl.constexpr, DP: tl.constexpr, KP: tl.constexpr, BLOCK: tl.constexpr):
    # One step's table row: lw2 (KP) | q2 (KP) | c (KP) | ctr (KP, DP) | m (KP, DP); log2 units for lw2, q2.
    ROW: tl.constexpr = KP * (3 + 2 * DP)
    pid = tl.program_id(0)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    d = tl.arange(0, DP)
    k = tl.arange(0, KP)
    mask = (rows[:, None] < n) & (d[None, :] < D)
    offs = rows.to(tl.int64)[:, None] * D + d[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)  # (BLOCK, DP)
    kd = k[:, None] * DP + d[None, :]
    for i in range(n_steps):
        base = tab_ptr + i * ROW
        lw = tl.load(base + k)
        q = tl.load(base + KP + k)
        c = tl.load(base + 2 * KP + k)
        ctr = tl.load(base + 3 * KP + kd)
        mv = tl.load(base + 3 * KP + KP * DP + kd)
        dt = tl.load(dt_ptr + i)
        r = x[:, None, :] - ctr[None, :, :]  # (BLOCK, KP, DP)
        logit = lw[None, :] + q[None, :] * tl.sum(r * r, axis=2)  # (BLOCK, KP), log2 units
        p = tl.exp2(logit - tl.max(logit, axis=1)[:, None])
        scale = dt / tl.sum(p, axis=1)
        pc = tl.sum(p * c[None, :], axis=1)
        pm = tl.sum(p[:, :, None] * mv[None, :, :], axis=1)  # (BLOCK, DP)
        x = x + scale[:, None] * (pc[:, None] * x + pm)
    tl.store(out_ptr + offs, x.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gmm_euler_small_kernel(x_ptr, out_ptr, tab_ptr, dt_ptr, n, n_steps,
                            D: tl.constexpr, K: tl.constexpr, BLOCK: tl.constexpr):
    # dim <= 3, components unrolled: every particle's state and sums are scalars in registers of its
    # thread (no cross-thread reductions). One step's table row: per component k, 9 floats
    # lw2, q2, c, ctr0, ctr1, ctr2, m0, m1, m2 (log2 units for lw2, q2; unused dims are 0).
    ROW: tl.constexpr = 9 * K
    pid = tl.program_id(0)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    mask = rows < n
    base = rows.to(tl.int64) * D
    x0 = tl.load(x_ptr + base, mask=mask, other=0.0).to(tl.float32)
    x1 = tl.zeros([BLOCK], dtype=tl.float32)
    x2 = tl.zeros([BLOCK], dtype=tl.float32)
    if D > 1:
        x1 = tl.load(x_ptr + base + 1, mask=mask, other=0.0).to(tl.float32)
    if D > 2:
        x2 = tl.load(x_ptr + base + 2, mask=mask, other=0.0).to(tl.float32)
    for i in range(n_steps):
        row = tab_ptr + i * ROW
        mx = tl.full([BLOCK], -3.0e38, dtype=tl.float32)
        for k in tl.static_range(K):  # pass 1: the largest logit, for a safe exp2
            r = x0 - tl.load(row + 9 * k + 3)
            d2 = r * r
            if D > 1:
                r = x1 - tl.load(row + 9 * k + 4)
                d2 += r * r
            if D > 2:
                r = x2 - tl.load(row + 9 * k + 5)
                d2 += r * r
            mx = tl.maximum(mx, tl.load(row + 9 * k) + tl.load(row + 9 * k + 1) * d2)
        den = tl.zeros([BLOCK], dtype=tl.float32)
        pc = tl.zeros([BLOCK], dtype=tl.float32)
        pm0 = tl.zeros([BLOCK], dtype=tl.float32)
        pm1 = tl.zeros([BLOCK], dtype=tl.float32)
        pm2 = tl.zeros([BLOCK], dtype=tl.float32)
        for k in tl.static_range(K):  # pass 2: weights and the weighted velocity terms
            r = x0 - tl.load(row + 9 * k + 3)
            d2 = r * r
            if D > 1:
                r = x1 - tl.load(row + 9 * k + 4)
                d2 += r * r
            if D > 2:
                r = x2 - tl.load(row + 9 * k + 5)
                d2 += r * r
            e = tl.exp2(tl.load(row + 9 * k) + tl.load(row + 9 * k + 1) * d2 - mx)
            den += e
            pc += e * tl.load(row + 9 * k + 2)
            pm0 += e * tl.load(row + 9 * k + 6)
            if D > 1:
                pm1 += e * tl.load(row + 9 * k + 7)
            if D > 2:
                pm2 += e * tl.load(row + 9 * k + 8)
        s = tl.load(dt_ptr + i) / den
        x0 = x0 + s * (pc * x0 + pm0)
        x1 = x1 + s * (pc * x1 + pm1)
        x2 = x2 + s * (pc * x2 + pm2)
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + base, x0.to(ty), mask=mask)
    if D > 1:
        tl.store(out_ptr + base + 1, x1.to(ty), mask=mask)
    if D > 2:
        tl.store(out_ptr + base + 2, x2.to(ty), mask=mask)


def _pinned_to(t: Tensor, device: torch.device) -> Tensor:
    """Host -> device without a host sync (through pinned memory, asynchronous copy)."""
    t = t.contiguous()
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def gmm_euler_triton(x: Tensor, tab64: "MixtureTables", *, block: int = 512,  # noqa: F821
                     num_warps: int = 4) -> Tensor:
    """Launch the mixture kernel on ``x: (B, D)`` (CUDA), tables in float64 (packed here, fp32).

    ``dim <= 3``: :func:`_gmm_euler_small_kernel` (components unrolled, K <= 64); else the general
    :func:`_gmm_euler_kernel` (dim <= 8).
    """
    n, dim = x.shape
    s, k = tab64.lw.shape
    xc = x.contiguous()
    out = torch.empty_like(xc)
    dt = _pinned_to(tab64.dt.to(torch.float32), x.device)
    if dim <= 3 and k <= 64:
        packed = torch.zeros(s, k, 9, dtype=torch.float64)
        packed[:, :, 0] = tab64.lw * LOG2E
        packed[:, :, 1] = tab64.q * LOG2E
        packed[:, :, 2] = tab64.c
        packed[:, :, 3:3 + dim] = tab64.ctr
        packed[:, :, 6:6 + dim] = tab64.m
        packed = _pinned_to(packed.to(torch.float32), x.device)
        with _on(x):
            _gmm_euler_small_kernel[(triton.cdiv(n, block),)](xc, out, packed, dt, n, s, D=dim, K=k, BLOCK=block,
                                                              num_warps=num_warps)
        return out
    if k > 64 or dim > 8:
        raise FlowlabError(f"gmm_euler: the Triton kernels hold K <= 64 components in dim <= 8, got K = {k}, "
                           f"dim = {dim}; use backend='torch'")
    kp, dp = max(2, _pow2(k)), max(2, _pow2(dim))
    lw = torch.full((s, kp), -1e30, dtype=torch.float64)
    lw[:, :k] = tab64.lw * LOG2E
    q = torch.zeros(s, kp, dtype=torch.float64)
    q[:, :k] = tab64.q * LOG2E
    c = torch.zeros(s, kp, dtype=torch.float64)
    c[:, :k] = tab64.c
    ctr = torch.zeros(s, kp, dp, dtype=torch.float64)
    ctr[:, :k, :dim] = tab64.ctr
    m = torch.zeros(s, kp, dp, dtype=torch.float64)
    m[:, :k, :dim] = tab64.m
    packed = torch.cat([lw, q, c, ctr.reshape(s, -1), m.reshape(s, -1)], dim=1)
    packed = _pinned_to(packed.to(torch.float32), x.device)
    blk = min(block, 256)
    with _on(x):
        _gmm_euler_kernel[(triton.cdiv(n, blk),)](xc, out, packed, dt, n, s, D=dim, DP=dp, KP=kp, BLOCK=blk,
                                                  num_warps=num_warps)
    return out


# ---- MLP velocity --------------------------------------------------------------------------------------

#: SiLU forms of the MLP kernel (the ``SILU`` constexpr): ``exact`` is ``h * sigmoid(h)`` in fp32 (two
#: special-function ops an element: exp2 and a reciprocal); ``tanh32`` is ``h/2 (1 + tanh(h/2))`` with the
#: hardware ``tanh.approx.f32`` (one op); ``tanh16x2`` is the same in fp16, two elements an op
#: (``tanh.approx.f16x2``). The special-function unit is the MLP trajectory's bottleneck after the matrix
#: products: on an H200 the fp16 trajectory of 1e6 particles x 100 steps takes 214 ms with ``exact`` and
#: 102 ms with ``tanh16x2`` (benchmarks/toy_peers.py prints both).
SILU_MODES = {"exact": 0, "tanh32": 1, "tanh16x2": 2}


@triton.jit
def _silu_to(h, SILU: tl.constexpr, cdt: tl.constexpr):
    """SiLU of an fp32 tile, returned in the matmul dtype ``cdt`` (see :data:`SILU_MODES`)."""
    if SILU == 0:
        return (h * tl.sigmoid(h)).to(cdt)
    elif SILU == 1:
        half = 0.5 * h
        th = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [half], dtype=tl.float32,
                                       is_pure=True, pack=1)
        return (half + half * th).to(cdt)
    else:
        half = (0.5 * h).to(tl.float16)
        th = tl.inline_asm_elementwise("tanh.approx.f16x2 $0, $1;", "=r,r", [half], dtype=tl.float16,
                                       is_pure=True, pack=2)
        return (half + half * th).to(cdt)


@triton.jit
def _first_layer_half(x, co, b1_ptr, w1_ptr, c0: tl.constexpr, D: tl.constexpr, H: tl.constexpr,
                      Q: tl.constexpr):
    """Columns ``[c0, c0 + Q)`` of the first layer, fp32: the step's bias row plus ``x[:, d] * w1[d]``."""
    c = c0 + tl.arange(0, Q)
    h = tl.zeros([x.shape[0], Q], dtype=tl.float32) + tl.load(b1_ptr + c)[None, :]
    for d in tl.static_range(D):
        xd = tl.sum(tl.where(co[None, :] == d, x, 0.0), axis=1)
        h += xd[:, None] * tl.load(w1_ptr + d * H + c)[None, :]
    return h


@triton.jit
def _hidden_half(a_lo, a_hi, w_ptr, b_ptr, c0: tl.constexpr, H: tl.constexpr, Q: tl.constexpr):
    """Columns ``[c0, c0 + Q)`` of a hidden layer: two (BM, Q) x (Q, Q) products, fp32 accumulation, + bias."""
    r = tl.arange(0, Q)
    cols = (c0 + r)[None, :]
    acc = tl.dot(a_lo, tl.load(w_ptr + r[:, None] * H + cols))
    acc = tl.dot(a_hi, tl.load(w_ptr + (Q + r)[:, None] * H + cols), acc)
    return acc + tl.load(b_ptr + c0 + r).to(tl.float32)[None, :]


@triton.jit
def _mlp_euler_kernel(x_ptr, out_ptr, n, n_steps, w_step,
                      b1_ptr, w1_ptr, wh_ptr, bh_ptr, wo_ptr, bo_ptr, dt_ptr,
                      D: tl.constexpr, DO: tl.constexpr, H: tl.constexpr, NH: tl.constexpr,
                      BM: tl.constexpr, SILU: tl.constexpr):
    # x: (n, D) fp32; b1: (S, H) fp32 first-layer bias per step; w1: (D, H) fp32; wh: (NH, H, H) [in, out] in
    # the matmul dtype; bh: (NH, H); wo: (H, DO) zero-padded past D; bo: (DO,) fp32 zero-padded; dt: (S,) fp32.
    # Each activation is two halves of H / 2 columns in registers; a half's columns are finished (products,
    # bias, SiLU, cast) before the next half starts, so at most one fp32 half is live. The output layer is D
    # row reductions in fp32 (a (BM, H/2) x (H/2, DO) tl.dot there faults with an illegal address under
    # Triton 3.6 on Hopper). w_step is 0 at run time: every weight and bias address depends on the step, so
    # the compiler cannot hoist those loads out of the loop into registers (it did, and spilled); they stream
    # from L1 / L2 each step. x stays in registers for all steps: one read and one write of device memory.
    Q: tl.constexpr = H // 2
    pid = tl.program_id(0)
    rows = pid * BM + tl.arange(0, BM)
    co = tl.arange(0, DO)
    c2 = tl.arange(0, Q)
    mask = (rows[:, None] < n) & (co[None, :] < D)
    offs = rows.to(tl.int64)[:, None] * D + co[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)  # (BM, DO), columns >= D stay 0
    cdt: tl.constexpr = wh_ptr.dtype.element_ty
    for i in range(n_steps):
        shift = i * w_step
        w1 = w1_ptr + shift
        b1 = b1_ptr + i * H
        a_lo = _silu_to(_first_layer_half(x, co, b1, w1, 0, D, H, Q), SILU, cdt)
        a_hi = _silu_to(_first_layer_half(x, co, b1, w1, Q, D, H, Q), SILU, cdt)
        for layer in tl.static_range(NH):
            wl = wh_ptr + shift + layer * H * H
            bl = bh_ptr + shift + layer * H
            n_lo = _silu_to(_hidden_half(a_lo, a_hi, wl, bl, 0, H, Q), SILU, cdt)
            n_hi = _silu_to(_hidden_half(a_lo, a_hi, wl, bl, Q, H, Q), SILU, cdt)
            a_lo, a_hi = n_lo, n_hi
        f_lo = a_lo.to(tl.float32)
        f_hi = a_hi.to(tl.float32)
        wo = wo_ptr + shift
        v = tl.zeros([BM, DO], dtype=tl.float32)
        for j in tl.static_range(D):
            wo_lo = tl.load(wo + c2 * DO + j).to(tl.float32)
            wo_hi = tl.load(wo + (Q + c2) * DO + j).to(tl.float32)
            vj = tl.sum(f_lo * wo_lo[None, :], axis=1) + tl.sum(f_hi * wo_hi[None, :], axis=1)
            v += tl.where(co[None, :] == j, vj[:, None], 0.0)
        x = x + tl.load(dt_ptr + i) * (v + tl.load(bo_ptr + shift + co)[None, :])
    tl.store(out_ptr + offs, x, mask=mask)


def silu_mode(silu: str, dtype: torch.dtype) -> int:
    """The kernel's ``SILU`` constexpr for ``silu`` ("fast" or "exact", checked by the caller) and the dtype.

    "fast" is ``tanh16x2`` for fp16 and ``tanh32`` for bf16 (bf16 activations can exceed fp16's range);
    ``exact`` everywhere the inline PTX cannot run (ROCm).
    """
    if silu == "exact" or torch.version.hip is not None:
        return SILU_MODES["exact"]
    return SILU_MODES["tanh16x2"] if dtype == torch.float16 else SILU_MODES["tanh32"]


def mlp_euler_triton(x32: Tensor, tab: "MLPTables", *, block: int = 128, num_warps: int = 8,  # noqa: F821
                     num_stages: int = 1, silu: str = "fast") -> Tensor:
    """Launch :func:`_mlp_euler_kernel` on ``x32: (B, D)`` fp32 (CUDA); returns fp32 ``(B, D)``."""
    n, dim = x32.shape
    nh, hdim = tab.wh.shape[0], tab.bias1.shape[1]
    if hdim < 32 or hdim > 512 or hdim & (hdim - 1) or nh < 1 or dim > 16:
        raise FlowlabError(f"mlp_euler: the Triton kernel needs a hidden width that is a power of two in [32, 512], "
                           f"depth >= 2 and dim <= 16; got width {hdim}, {nh} hidden products, dim {dim}; "
                           "use backend='graph' or 'torch'")
    if isinstance(block, bool) or not isinstance(block, int) or block < 16 or block & (block - 1):
        raise FlowlabError(f"mlp_euler: block must be a power of two >= 16, got {block!r}")
    mode = silu_mode(silu, tab.wh.dtype)
    do = max(16, _pow2(dim))
    wo = torch.zeros(hdim, do, dtype=tab.wo.dtype, device=x32.device)
    wo[:, :dim] = tab.wo
    bo = torch.zeros(do, dtype=torch.float32, device=x32.device)
    bo[:dim] = tab.bo.float()
    xc = x32.contiguous()
    out = torch.empty_like(xc)
    with _on(x32):
        _mlp_euler_kernel[(triton.cdiv(n, block),)](
            xc, out, n, tab.dt.shape[0], 0, tab.bias1, tab.w1x, tab.wh, tab.bh, wo, bo, tab.dt,
            D=dim, DO=do, H=hdim, NH=nh, BM=block, SILU=mode, num_warps=num_warps, num_stages=num_stages)
    return out
