"""Triton sliding-window attention (GQA, causal window, learned sink logit): kernels and ``SWAFunction``.

Flash-attention style: the forward streams only the key blocks inside each query block's window and
keeps an online softmax; the sink is an exact null key (the running max starts at the sink logit and
the running sum at 1). The backward recomputes the probabilities from the saved log-sum-exp: one
kernel per key block for dK/dV (looping over the query heads of its KV head and the query blocks that
see it), one per query block for dQ. d(sink) = -Σ_t p_sink(t) · (dO_t · O_t) is a reduction in PyTorch.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
# tiles: (query rows, key columns) for the forward / dQ, and (key rows, query columns) for dK/dV
FWD_BLOCKS = (64, 64)
BWD_BLOCKS = (64, 64)


@triton.jit
def _window_mask(q_pos, k_pos, S, WINDOW):
    return (k_pos[None, :] <= q_pos[:, None]) & (k_pos[None, :] > q_pos[:, None] - WINDOW) & (k_pos[None, :] < S)


@triton.jit
def swa_fwd_kernel(
    q_ptr, k_ptr, v_ptr, sink_ptr, o_ptr, lse_ptr,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_ob, stride_ot, stride_oh,
    T, S, HQ, G, D, WINDOW, qk_scale,
    HAS_SINK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_m = tl.program_id(0).to(tl.int64)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // HQ
    i_h = i_bh % HQ
    i_g = i_h // G
    offset = S - T
    offs_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_m = offs_m < T
    m_d = offs_d < D
    q_pos = offset + offs_m
    b_q = tl.load(q_ptr + i_b * stride_qb + i_h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
                  mask=m_m[:, None] & m_d[None, :], other=0.0)
    if HAS_SINK:
        b_m = tl.zeros([BLOCK_M], dtype=tl.float32) + tl.load(sink_ptr + i_h).to(tl.float32) * 1.4426950408889634
        b_l = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0
    else:
        b_m = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
        b_l = tl.zeros([BLOCK_M], dtype=tl.float32)
    b_acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    lo = tl.maximum(offset + i_m * BLOCK_M - WINDOW + 1, 0) // BLOCK_N * BLOCK_N
    hi = tl.minimum(offset + (i_m + 1) * BLOCK_M, S)
    p_k = k_ptr + i_b * stride_kb + i_g * stride_kh + offs_d[None, :]
    p_v = v_ptr + i_b * stride_vb + i_g * stride_vh + offs_d[None, :]
    for n0 in range(lo, hi, BLOCK_N):
        k_pos = n0 + tl.arange(0, BLOCK_N)
        m_kd = (k_pos < S)[:, None] & m_d[None, :]
        b_k = tl.load(p_k + k_pos[:, None] * stride_ks, mask=m_kd, other=0.0)
        b_v = tl.load(p_v + k_pos[:, None] * stride_vs, mask=m_kd, other=0.0)
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision=DOT_PRECISION) * qk_scale
        b_s = tl.where(_window_mask(q_pos, k_pos, S, WINDOW), b_s, float("-inf"))
        b_m_new = tl.maximum(b_m, tl.max(b_s, 1))
        b_m_safe = tl.where(b_m_new == float("-inf"), 0.0, b_m_new)
        b_p = tl.exp2(b_s - b_m_safe[:, None])
        b_alpha = tl.exp2(b_m - b_m_safe)
        b_l = b_l * b_alpha + tl.sum(b_p, 1)
        b_acc = b_acc * b_alpha[:, None] + tl.dot(b_p.to(b_v.dtype), b_v, input_precision=DOT_PRECISION)
        b_m = b_m_new
    b_o = b_acc / b_l[:, None]
    tl.store(o_ptr + i_b * stride_ob + i_h * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :],
             b_o.to(o_ptr.dtype.element_ty), mask=m_m[:, None] & m_d[None, :])
    # log2-domain log-sum-exp of the scaled scores, sink included
    tl.store(lse_ptr + i_bh * T + offs_m, b_m + tl.log2(b_l), mask=m_m)


@triton.jit
def swa_bwd_dkv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_dob, stride_dot, stride_doh, stride_dkb, stride_dks, stride_dkh,
    T, S, HQ, HK, G, D, WINDOW, sm_scale, qk_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_n = tl.program_id(0).to(tl.int64)
    i_bg = tl.program_id(1).to(tl.int64)
    i_b = i_bg // HK
    i_g = i_bg % HK
    offset = S - T
    k_pos = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_d = offs_d < D
    m_kd = (k_pos < S)[:, None] & m_d[None, :]
    b_k = tl.load(k_ptr + i_b * stride_kb + i_g * stride_kh + k_pos[:, None] * stride_ks + offs_d[None, :],
                  mask=m_kd, other=0.0)
    b_v = tl.load(v_ptr + i_b * stride_vb + i_g * stride_vh + k_pos[:, None] * stride_vs + offs_d[None, :],
                  mask=m_kd, other=0.0)
    b_dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    b_dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    # queries that see these keys: key positions i·BLOCK_N ... (i+1)·BLOCK_N - 1 + WINDOW - 1
    lo = tl.maximum(i_n * BLOCK_N - offset, 0) // BLOCK_M * BLOCK_M
    hi = tl.minimum((i_n + 1) * BLOCK_N - 1 + WINDOW - offset, T)
    for i_j in range(0, G):
        i_h = i_g * G + i_j
        for m0 in range(lo, hi, BLOCK_M):
            offs_m = m0 + tl.arange(0, BLOCK_M)
            m_m = offs_m < T
            m_qd = m_m[:, None] & m_d[None, :]
            b_q = tl.load(q_ptr + i_b * stride_qb + i_h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
                          mask=m_qd, other=0.0)
            p_do = do_ptr + i_b * stride_dob + i_h * stride_doh + offs_m[:, None] * stride_dot + offs_d[None, :]
            b_do = tl.load(p_do, mask=m_qd, other=0.0)
            b_lse = tl.load(lse_ptr + (i_b * HQ + i_h) * T + offs_m, mask=m_m, other=0.0)
            b_delta = tl.load(delta_ptr + (i_b * HQ + i_h) * T + offs_m, mask=m_m, other=0.0)
            b_s = tl.dot(b_q, tl.trans(b_k), input_precision=DOT_PRECISION) * qk_scale
            m_vis = _window_mask(offset + offs_m, k_pos, S, WINDOW) & m_m[:, None]
            b_p = tl.where(m_vis, tl.exp2(b_s - b_lse[:, None]), 0.0)
            b_dv += tl.dot(tl.trans(b_p.to(b_do.dtype)), b_do, input_precision=DOT_PRECISION)
            b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=DOT_PRECISION)
            b_ds = (b_p * (b_dp - b_delta[:, None])).to(b_q.dtype)
            b_dk += tl.dot(tl.trans(b_ds), b_q, input_precision=DOT_PRECISION)
    p_dkv = i_b * stride_dkb + i_g * stride_dkh + k_pos[:, None] * stride_dks + offs_d[None, :]
    tl.store(dk_ptr + p_dkv, (b_dk * sm_scale).to(dk_ptr.dtype.element_ty), mask=m_kd)
    tl.store(dv_ptr + p_dkv, b_dv.to(dv_ptr.dtype.element_ty), mask=m_kd)


@triton.jit
def swa_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
    stride_qb, stride_qt, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    stride_dob, stride_dot, stride_doh, stride_dqb, stride_dqt, stride_dqh,
    T, S, HQ, G, D, WINDOW, sm_scale, qk_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_m = tl.program_id(0).to(tl.int64)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // HQ
    i_h = i_bh % HQ
    i_g = i_h // G
    offset = S - T
    offs_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_m = offs_m < T
    m_d = offs_d < D
    m_qd = m_m[:, None] & m_d[None, :]
    q_pos = offset + offs_m
    b_q = tl.load(q_ptr + i_b * stride_qb + i_h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :],
                  mask=m_qd, other=0.0)
    b_do = tl.load(do_ptr + i_b * stride_dob + i_h * stride_doh + offs_m[:, None] * stride_dot + offs_d[None, :],
                   mask=m_qd, other=0.0)
    b_lse = tl.load(lse_ptr + i_bh * T + offs_m, mask=m_m, other=0.0)
    b_delta = tl.load(delta_ptr + i_bh * T + offs_m, mask=m_m, other=0.0)
    b_dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    lo = tl.maximum(offset + i_m * BLOCK_M - WINDOW + 1, 0) // BLOCK_N * BLOCK_N
    hi = tl.minimum(offset + (i_m + 1) * BLOCK_M, S)
    p_k = k_ptr + i_b * stride_kb + i_g * stride_kh + offs_d[None, :]
    p_v = v_ptr + i_b * stride_vb + i_g * stride_vh + offs_d[None, :]
    for n0 in range(lo, hi, BLOCK_N):
        k_pos = n0 + tl.arange(0, BLOCK_N)
        m_kd = (k_pos < S)[:, None] & m_d[None, :]
        b_k = tl.load(p_k + k_pos[:, None] * stride_ks, mask=m_kd, other=0.0)
        b_v = tl.load(p_v + k_pos[:, None] * stride_vs, mask=m_kd, other=0.0)
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision=DOT_PRECISION) * qk_scale
        m_vis = _window_mask(q_pos, k_pos, S, WINDOW) & m_m[:, None]
        b_p = tl.where(m_vis, tl.exp2(b_s - b_lse[:, None]), 0.0)
        b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=DOT_PRECISION)
        b_ds = (b_p * (b_dp - b_delta[:, None])).to(b_k.dtype)
        b_dq += tl.dot(b_ds, b_k, input_precision=DOT_PRECISION)
    tl.store(dq_ptr + i_b * stride_dqb + i_h * stride_dqh + offs_m[:, None] * stride_dqt + offs_d[None, :],
             (b_dq * sm_scale).to(dq_ptr.dtype.element_ty), mask=m_qd)


def _warps(block_d: int) -> int:
    # 4 warps spill registers once a 64-row tile is 128 wide (sm_90 compile, both Triton versions)
    return 8 if block_d >= 128 else 4


def _strides(x):
    return x.stride(0), x.stride(1), x.stride(2)


class SWAFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton sliding-window kernels; q (B, T, HQ, D), k/v (B, S, HK, D)."""

    @staticmethod
    def forward(ctx, q, k, v, window, sink_logits, sm_scale):
        B, T, HQ, D = q.shape
        S, HK = k.shape[1], k.shape[2]
        q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
        window = S if window is None else int(window)
        BLOCK_D = max(16, triton.next_power_of_2(D))
        precision = "ieee" if q.dtype == torch.float32 else "tf32"
        o = torch.empty_like(q)
        lse = torch.empty(B, HQ, T, dtype=torch.float32, device=q.device)
        has_sink = sink_logits is not None
        sink = sink_logits.contiguous() if has_sink else lse
        BLOCK_M, BLOCK_N = FWD_BLOCKS
        swa_fwd_kernel[(triton.cdiv(T, BLOCK_M), B * HQ)](
            q, k, v, sink, o, lse, *_strides(q), *_strides(k), *_strides(v), *_strides(o),
            T, S, HQ, HQ // HK, D, window, sm_scale * LOG2E,
            HAS_SINK=has_sink, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, DOT_PRECISION=precision,
            num_warps=_warps(BLOCK_D), num_stages=2,
        )
        ctx.save_for_backward(q, k, v, o, lse, *((sink_logits,) if has_sink else ()))
        ctx.window, ctx.sm_scale, ctx.has_sink = window, sm_scale, has_sink
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, *sink = ctx.saved_tensors
        B, T, HQ, D = q.shape
        S, HK = k.shape[1], k.shape[2]
        do = do.contiguous()
        delta = (o.float() * do.float()).sum(-1).transpose(1, 2).contiguous()  # (B, HQ, T)
        BLOCK_D = max(16, triton.next_power_of_2(D))
        precision = "ieee" if q.dtype == torch.float32 else "tf32"
        dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
        dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
        BLOCK_M, BLOCK_N = BWD_BLOCKS
        swa_bwd_dkv_kernel[(triton.cdiv(S, BLOCK_N), B * HK)](
            q, k, v, do, lse, delta, dk, dv, *_strides(q), *_strides(k), *_strides(v), *_strides(do),
            *_strides(dk), T, S, HQ, HK, HQ // HK, D, ctx.window, ctx.sm_scale, ctx.sm_scale * LOG2E,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, DOT_PRECISION=precision,
            # two accumulators (dK, dV): as many registers as one tile twice as wide
            num_warps=_warps(2 * BLOCK_D), num_stages=2,
        )
        swa_bwd_dq_kernel[(triton.cdiv(T, BLOCK_M), B * HQ)](
            q, k, v, do, lse, delta, dq, *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dq),
            T, S, HQ, HQ // HK, D, ctx.window, ctx.sm_scale, ctx.sm_scale * LOG2E,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, DOT_PRECISION=precision,
            num_warps=_warps(BLOCK_D), num_stages=2,
        )
        dsink = None
        if ctx.has_sink:
            # the null key's probability is exp(sink - lse); its value is 0, so dS_sink = -p_sink · delta
            sink_logits = sink[0]
            p_sink = torch.exp2(sink_logits.float().view(1, HQ, 1) * LOG2E - lse)
            dsink = (-(p_sink * delta).sum(dim=(0, 2))).to(sink_logits.dtype)
        return dq, dk, dv, None, dsink, None
