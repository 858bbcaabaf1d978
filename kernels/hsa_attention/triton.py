"""Triton HSA chunk attention: kernels, launchers and ``HSAAttentionFunction``.

The work is organised by chunk, not by token. The (token, KV head, slot) pairs are sorted by the
page they read (``plan_pairs``), and each run of pairs on one page is cut into work items. A program
loads its page's K/V once and runs dense tiles of (tokens × query heads) rows against it, so any
query/KV head ratio fills the matrix units (ratio 1 packs 64 tokens in a tile, ratio 16 packs 4).
Outputs and dQ reach their tokens by fp32 atomic adds; dK/dV are summed per item in registers and
added once per item. The backward pass visits each (token, chunk) pair once: no O(L²/64) scan.

Without sorting (decode: a handful of tokens), each pair is its own work item.
Token-major kernels (one program per token and KV head, looping over its chunks, no atomics) are
the alternative for the forward and for dQ; ``bench/kernels.py`` times both layouts.

Memory K/V are read as a pool of pages (P, S, HK, D): a contiguous (B, N·S, HK, D) memory is the
pool of its B·N chunks, and a paged memory is the pool itself, indexed directly by chunk_idx.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# pairs per work item in the sorted layout: a popular chunk is split so it cannot serialise the grid
ITEM_PAIRS = 128
# tokens per block when the sorted layout groups pairs by (token block, page) instead of by page alone
# (None = by page alone): programs that run together then add their outputs (and dQ) into one block's
# slab of the fp32 accumulators, which can stay in L2, where by page alone they scatter over all tokens.
# The 64K profile (H100, session 13) blames those scattered atomics for a forward that costs 2× per pair
# what it costs at 8K, where the whole accumulator fits L2. Measured (H100, session 14, bench/RESULTS.md):
# 4096 cuts 64K fwd+bwd by 21-24 % (K = 16 and 32) and leaves 8K as it was; 8192 and 16384 gain less.
TOKEN_BLOCK: int | None = 4096
# rows of a tile in the sorted layout (tokens × padded query heads)
BLOCK_M = 64
# rows of the backward's tiles (None = BLOCK_M), read at call time so bench/kernels.py can sweep them: the
# backward costs the same per pair at 8K and 64K (~108 TFLOP/s of its five products, H100, session 14), so
# larger tiles per K/V page are the next lever to measure (128 may spill: 8 warps hold dK/dV and five tiles)
BWD_BLOCK_M: int | None = None
# below this many query tokens the pairs are not sorted: there is no chunk reuse to win
SORT_MIN_TOKENS = 64
# software-pipelining stages of the chunk-major kernels' tile loops (read at call time, so bench/kernels.py
# can sweep them): 1 = no prefetch of the next tile's gathered Q/dO rows while this tile multiplies.
# Backward None = by shape: 3 stages for half-precision D ≤ 64 (H100, 8K, session 12: the backward kernel
# 1.03 → 0.87 ms at K=16 and 1.80 → 1.52 ms at K=32; 2 stages gave 0.92 / 1.60; the forward gained nothing),
# 1 elsewhere (D=128 and fp32 tiles were not measured with more stages: they may not fit shared memory)
FWD_CHUNK_STAGES = 1
BWD_CHUNK_STAGES: int | None = None
# the forward stores each (pair, head) row's log-sum-exp (base 2) and the backward rebuilds P from it instead
# of a row max and sum (FlashAttention's way); costs E · G · 4 bytes. On since the H100 profile (8K, session
# 13, bench/RESULTS.md): the backward kernel 0.86 → 0.78 ms at K=16 and 1.52 → 1.37 ms at K=32, the forward
# +0.07 ms at K=32 only; the whole fwd+bwd 1.39 → 1.31 ms (K=16) and 2.23 → 2.16 ms (K=32)
SAVED_LSE = True


def _bwd_stages(block_d: int, dtype: torch.dtype) -> int:
    if BWD_CHUNK_STAGES is not None:
        return BWD_CHUNK_STAGES
    return 3 if block_d <= 64 and dtype in (torch.float16, torch.bfloat16) else 1


@triton.jit
def _item(i_item, idx_ptr, item_seg_ptr, item_start_ptr, item_len_ptr,
          T, HK, K, n_pages, pages_per_batch, SORTED: tl.constexpr):
    # returns (KV head, page, first pair, number of pairs) of one work item
    if SORTED:
        seg = tl.load(item_seg_ptr + i_item)
        i_g = seg // n_pages
        page = seg % n_pages
        start = tl.load(item_start_ptr + i_item)
        n_len = tl.load(item_len_ptr + i_item)
    else:
        idx = tl.load(idx_ptr + i_item)
        i_g = (i_item // K) % HK
        i_b = i_item // (HK * K) // T
        page = tl.maximum(idx, 0) + i_b * pages_per_batch
        start = i_item
        n_len = (idx >= 0).to(tl.int64)
    return i_g, page, start, n_len


@triton.jit
def _pairs(order_ptr, start, e, m, SORTED: tl.constexpr):
    # flat (token, KV head, slot) indices of entries e of an item
    if SORTED:
        pair = tl.load(order_ptr + start + e, mask=m, other=0)
    else:
        pair = start + e
    return pair


@triton.jit
def _chunk_softmax_lse(b_q, b_k, qk_scale, DOT_PRECISION: tl.constexpr):
    # softmax over the S keys of one chunk, rows independent, and each row's log2-sum-exp2 of the scaled
    # scores; qk_scale includes log2(e)
    b_s = tl.dot(b_q, tl.trans(b_k), input_precision=DOT_PRECISION) * qk_scale
    b_m = tl.max(b_s, 1)
    b_s = tl.exp2(b_s - b_m[:, None])
    b_l = tl.sum(b_s, 1)
    return b_s / b_l[:, None], b_m + tl.log2(b_l)


@triton.jit
def _probs_from_lse(b_q, b_k, qk_scale, b_lse, DOT_PRECISION: tl.constexpr):
    # the backward's P from the forward's saved log-sum-exp: no row max, no row sum
    b_s = tl.dot(b_q, tl.trans(b_k), input_precision=DOT_PRECISION) * qk_scale
    return tl.exp2(b_s - b_lse[:, None])


@triton.jit
def _chunk_softmax(b_q, b_k, qk_scale, DOT_PRECISION: tl.constexpr):
    # softmax over the S keys of one chunk, rows independent (the unused log-sum-exp compiles away)
    b_p, _ = _chunk_softmax_lse(b_q, b_k, qk_scale, DOT_PRECISION)
    return b_p


@triton.jit
def hsa_fwd_chunk_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, w_ptr, order_ptr, item_seg_ptr, item_start_ptr, item_len_ptr, o_ptr, lse_ptr,
    stride_qt, stride_qh, stride_kp, stride_ks, stride_kh, stride_vp, stride_vs, stride_vh,
    stride_ot, stride_oh,
    T, HK, K, G, D, n_pages, pages_per_batch, qk_scale,
    S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_TOK: tl.constexpr,
    SORTED: tl.constexpr, SAVE_LSE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_item = tl.program_id(0).to(tl.int64)
    i_g, page, start, n_len = _item(i_item, idx_ptr, item_seg_ptr, item_start_ptr, item_len_ptr,
                                    T, HK, K, n_pages, pages_per_batch, SORTED)
    offs_s = tl.arange(0, S)
    offs_d = tl.arange(0, BLOCK_D)
    m_d = offs_d < D
    m_kv = m_d[None, :] & (offs_s[:, None] * 0 < n_len)
    p_k = k_ptr + page * stride_kp + i_g * stride_kh + offs_s[:, None] * stride_ks + offs_d[None, :]
    p_v = v_ptr + page * stride_vp + i_g * stride_vh + offs_s[:, None] * stride_vs + offs_d[None, :]
    b_k = tl.load(p_k, mask=m_kv, other=0.0)
    b_v = tl.load(p_v, mask=m_kv, other=0.0)

    offs_r = tl.arange(0, BLOCK_TOK * BLOCK_G)
    r_tok = offs_r // BLOCK_G
    r_head = offs_r % BLOCK_G
    m_head = r_head < G
    h = i_g * G + r_head
    for i_tile in range(0, tl.cdiv(n_len, BLOCK_TOK)):
        e = i_tile * BLOCK_TOK + r_tok
        m_r = (e < n_len) & m_head
        pair = _pairs(order_ptr, start, e, m_r, SORTED)
        i_bt = pair // (HK * K)
        m_rd = m_r[:, None] & m_d[None, :]
        b_q = tl.load(q_ptr + i_bt[:, None] * stride_qt + h[:, None] * stride_qh + offs_d[None, :],
                      mask=m_rd, other=0.0)
        b_w = tl.load(w_ptr + pair, mask=m_r, other=0.0).to(tl.float32)
        b_p, b_lse = _chunk_softmax_lse(b_q, b_k, qk_scale, DOT_PRECISION)
        if SAVE_LSE:
            tl.store(lse_ptr + pair * G + r_head, b_lse, mask=m_r)
        b_o = tl.dot(b_p.to(b_v.dtype), b_v, input_precision=DOT_PRECISION) * b_w[:, None]
        tl.atomic_add(o_ptr + i_bt[:, None] * stride_ot + h[:, None] * stride_oh + offs_d[None, :],
                      b_o, mask=m_rd, sem="relaxed")


@triton.jit
def hsa_fwd_token_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, w_ptr, o_ptr, lse_ptr,
    stride_qt, stride_qh, stride_kp, stride_ks, stride_kh, stride_vp, stride_vs, stride_vh,
    stride_ot, stride_oh,
    T, HK, K, G, D, pages_per_batch, qk_scale,
    S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_G: tl.constexpr, SAVE_LSE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_bt = tl.program_id(0).to(tl.int64)
    i_g = tl.program_id(1).to(tl.int64)
    i_b = i_bt // T
    offs_s = tl.arange(0, S)
    offs_d = tl.arange(0, BLOCK_D)
    m_d = offs_d < D
    offs_h = tl.arange(0, BLOCK_G)
    m_hd = (offs_h < G)[:, None] & m_d[None, :]
    h = i_g * G + offs_h
    b_q = tl.load(q_ptr + i_bt * stride_qt + h[:, None] * stride_qh + offs_d[None, :], mask=m_hd, other=0.0)
    b_acc = tl.zeros([BLOCK_G, BLOCK_D], dtype=tl.float32)
    base = (i_bt * HK + i_g) * K
    for i_k in range(0, K):
        idx = tl.load(idx_ptr + base + i_k)
        page = tl.maximum(idx, 0) + i_b * pages_per_batch
        m_kv = m_d[None, :] & (offs_s[:, None] * 0 <= idx)
        b_k = tl.load(k_ptr + page * stride_kp + i_g * stride_kh + offs_s[:, None] * stride_ks + offs_d[None, :],
                      mask=m_kv, other=0.0)
        b_v = tl.load(v_ptr + page * stride_vp + i_g * stride_vh + offs_s[:, None] * stride_vs + offs_d[None, :],
                      mask=m_kv, other=0.0)
        b_w = tl.where(idx >= 0, tl.load(w_ptr + base + i_k).to(tl.float32), 0.0)
        b_p, b_lse = _chunk_softmax_lse(b_q, b_k, qk_scale, DOT_PRECISION)
        if SAVE_LSE:
            tl.store(lse_ptr + (base + i_k) * G + offs_h, b_lse, mask=offs_h < G)
        b_acc += tl.dot(b_p.to(b_v.dtype), b_v, input_precision=DOT_PRECISION) * b_w
    tl.store(o_ptr + i_bt * stride_ot + h[:, None] * stride_oh + offs_d[None, :],
             b_acc.to(o_ptr.dtype.element_ty), mask=m_hd)


@triton.jit
def hsa_bwd_chunk_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, w_ptr, do_ptr, order_ptr, item_seg_ptr, item_start_ptr, item_len_ptr, lse_ptr,
    dq_ptr, dk_ptr, dv_ptr, dw_ptr,
    stride_qt, stride_qh, stride_kp, stride_ks, stride_kh, stride_vp, stride_vs, stride_vh,
    stride_dot, stride_doh, stride_dqt, stride_dqh, stride_dkp, stride_dks, stride_dkh,
    T, HK, K, G, D, n_pages, pages_per_batch, sm_scale, qk_scale,
    S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_TOK: tl.constexpr,
    SORTED: tl.constexpr, NEED_DQ: tl.constexpr, NEED_DKV: tl.constexpr, USE_LSE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_item = tl.program_id(0).to(tl.int64)
    i_g, page, start, n_len = _item(i_item, idx_ptr, item_seg_ptr, item_start_ptr, item_len_ptr,
                                    T, HK, K, n_pages, pages_per_batch, SORTED)
    offs_s = tl.arange(0, S)
    offs_d = tl.arange(0, BLOCK_D)
    m_d = offs_d < D
    m_kv = m_d[None, :] & (offs_s[:, None] * 0 < n_len)
    p_k = k_ptr + page * stride_kp + i_g * stride_kh + offs_s[:, None] * stride_ks + offs_d[None, :]
    p_v = v_ptr + page * stride_vp + i_g * stride_vh + offs_s[:, None] * stride_vs + offs_d[None, :]
    b_k = tl.load(p_k, mask=m_kv, other=0.0)
    b_v = tl.load(p_v, mask=m_kv, other=0.0)
    b_dk = tl.zeros([S, BLOCK_D], dtype=tl.float32)
    b_dv = tl.zeros([S, BLOCK_D], dtype=tl.float32)

    offs_r = tl.arange(0, BLOCK_TOK * BLOCK_G)
    r_tok = offs_r // BLOCK_G
    r_head = offs_r % BLOCK_G
    m_head = r_head < G
    h = i_g * G + r_head
    offs_tok = tl.arange(0, BLOCK_TOK)
    for i_tile in range(0, tl.cdiv(n_len, BLOCK_TOK)):
        e = i_tile * BLOCK_TOK + r_tok
        m_r = (e < n_len) & m_head
        pair = _pairs(order_ptr, start, e, m_r, SORTED)
        i_bt = pair // (HK * K)
        m_rd = m_r[:, None] & m_d[None, :]
        b_q = tl.load(q_ptr + i_bt[:, None] * stride_qt + h[:, None] * stride_qh + offs_d[None, :],
                      mask=m_rd, other=0.0)
        b_do = tl.load(do_ptr + i_bt[:, None] * stride_dot + h[:, None] * stride_doh + offs_d[None, :],
                       mask=m_rd, other=0.0)
        b_w = tl.load(w_ptr + pair, mask=m_r, other=0.0).to(tl.float32)
        if USE_LSE:
            b_lse = tl.load(lse_ptr + pair * G + r_head, mask=m_r, other=0.0)
            b_p = _probs_from_lse(b_q, b_k, qk_scale, b_lse, DOT_PRECISION)
        else:
            b_p = _chunk_softmax(b_q, b_k, qk_scale, DOT_PRECISION)
        # delta = dO · O_k (O_k = P V, the chunk's own output): the softmax correction, and (summed over
        # heads) dL/dw. It equals rowsum(P ⊙ dP) with dP = dO Vᵀ, which the gradient needs anyway, so O_k
        # is never formed: one of six tile products saved
        b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=DOT_PRECISION)
        b_delta = tl.where(m_r, tl.sum(b_p * b_dp, 1), 0.0)
        e_tok = i_tile * BLOCK_TOK + offs_tok
        m_tok = e_tok < n_len
        pair_tok = _pairs(order_ptr, start, e_tok, m_tok, SORTED)
        b_dw = tl.sum(tl.reshape(b_delta, (BLOCK_TOK, BLOCK_G)), 1)
        tl.store(dw_ptr + pair_tok, b_dw, mask=m_tok)

        b_ds = (b_p * (b_dp - b_delta[:, None]) * b_w[:, None]).to(b_q.dtype)
        if NEED_DKV:
            b_pw = (b_p * b_w[:, None]).to(b_do.dtype)
            b_dv += tl.dot(tl.trans(b_pw), b_do, input_precision=DOT_PRECISION)
            b_dk += tl.dot(tl.trans(b_ds), b_q, input_precision=DOT_PRECISION)
        if NEED_DQ:
            b_dq = tl.dot(b_ds, b_k, input_precision=DOT_PRECISION) * sm_scale
            tl.atomic_add(dq_ptr + i_bt[:, None] * stride_dqt + h[:, None] * stride_dqh + offs_d[None, :],
                          b_dq, mask=m_rd, sem="relaxed")
    if NEED_DKV:
        p_dkv = page * stride_dkp + i_g * stride_dkh + offs_s[:, None] * stride_dks + offs_d[None, :]
        tl.atomic_add(dk_ptr + p_dkv, b_dk * sm_scale, mask=m_kv, sem="relaxed")
        tl.atomic_add(dv_ptr + p_dkv, b_dv, mask=m_kv, sem="relaxed")


@triton.jit
def hsa_bwd_dq_token_kernel(
    q_ptr, k_ptr, v_ptr, idx_ptr, w_ptr, do_ptr, dq_ptr, lse_ptr,
    stride_qt, stride_qh, stride_kp, stride_ks, stride_kh, stride_vp, stride_vs, stride_vh,
    stride_dot, stride_doh, stride_dqt, stride_dqh,
    T, HK, K, G, D, pages_per_batch, sm_scale, qk_scale,
    S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_G: tl.constexpr, USE_LSE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # dQ without atomics: one program per token and KV head loops over its chunks
    i_bt = tl.program_id(0).to(tl.int64)
    i_g = tl.program_id(1).to(tl.int64)
    i_b = i_bt // T
    offs_s = tl.arange(0, S)
    offs_d = tl.arange(0, BLOCK_D)
    m_d = offs_d < D
    offs_h = tl.arange(0, BLOCK_G)
    m_hd = (offs_h < G)[:, None] & m_d[None, :]
    h = i_g * G + offs_h
    b_q = tl.load(q_ptr + i_bt * stride_qt + h[:, None] * stride_qh + offs_d[None, :], mask=m_hd, other=0.0)
    b_do = tl.load(do_ptr + i_bt * stride_dot + h[:, None] * stride_doh + offs_d[None, :], mask=m_hd, other=0.0)
    b_dq = tl.zeros([BLOCK_G, BLOCK_D], dtype=tl.float32)
    base = (i_bt * HK + i_g) * K
    for i_k in range(0, K):
        idx = tl.load(idx_ptr + base + i_k)
        page = tl.maximum(idx, 0) + i_b * pages_per_batch
        m_kv = m_d[None, :] & (offs_s[:, None] * 0 <= idx)
        b_k = tl.load(k_ptr + page * stride_kp + i_g * stride_kh + offs_s[:, None] * stride_ks + offs_d[None, :],
                      mask=m_kv, other=0.0)
        b_v = tl.load(v_ptr + page * stride_vp + i_g * stride_vh + offs_s[:, None] * stride_vs + offs_d[None, :],
                      mask=m_kv, other=0.0)
        b_w = tl.where(idx >= 0, tl.load(w_ptr + base + i_k).to(tl.float32), 0.0)
        if USE_LSE:
            b_lse = tl.load(lse_ptr + (base + i_k) * G + offs_h, mask=offs_h < G, other=0.0)
            b_p = _probs_from_lse(b_q, b_k, qk_scale, b_lse, DOT_PRECISION)
        else:
            b_p = _chunk_softmax(b_q, b_k, qk_scale, DOT_PRECISION)
        b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=DOT_PRECISION)
        b_delta = tl.sum(b_p * b_dp, 1)  # = dO · (P V), as in the chunk-major kernel
        b_ds = (b_p * (b_dp - b_delta[:, None]) * b_w).to(b_k.dtype)
        b_dq += tl.dot(b_ds, b_k, input_precision=DOT_PRECISION)
    tl.store(dq_ptr + i_bt * stride_dqt + h[:, None] * stride_dqh + offs_d[None, :], b_dq * sm_scale, mask=m_hd)


def plan_pairs(chunk_idx: torch.Tensor, n_pages: int, pages_per_batch: int, item_pairs: int | None = None,
               token_block: int | None = None):
    """Sorts (token, KV head, slot) pairs by the (KV head, page) they read and cuts each run into items.

    With ``token_block`` (default ``TOKEN_BLOCK``) the runs are (block of flat tokens, KV head, page):
    a page read from several blocks gets items in each, ordered block by block.
    Returns order (E,) flat pair indices grouped by run, and per work item its segment
    (g · n_pages + page), first position in ``order`` and length (0 for the spare items at the end:
    the item count is bounded from the shapes so nothing waits on the device).
    """
    item_pairs = item_pairs or ITEM_PAIRS  # read at call time, so bench/kernels.py can sweep it
    token_block = token_block or TOKEN_BLOCK
    B, T, HK, K = chunk_idx.shape
    device = chunk_idx.device
    n_seg = HK * n_pages
    n_blocks = -(-(B * T) // token_block) if token_block else 1
    n_runs = n_blocks * n_seg
    # 32-bit keys where the run ids fit: the GPU radix sort makes one pass per key byte (8 → 4 passes;
    # H100 8K profile, session 13: the sort was 0.05 of the step's 1.30 ms)
    key_dtype = torch.int32 if n_runs < 2**31 - 1 else torch.int64
    b_idx = torch.arange(B, device=device, dtype=key_dtype).view(B, 1, 1, 1) * pages_per_batch
    g_idx = torch.arange(HK, device=device, dtype=key_dtype).view(1, 1, HK, 1) * n_pages
    key = (g_idx + b_idx) + chunk_idx.to(key_dtype)  # (B, T, HK, K): the segment
    if n_blocks > 1:
        flat_token = torch.arange(B * T, device=device, dtype=key_dtype).view(B, T, 1, 1)
        key = key + (flat_token // token_block) * n_seg
    key = torch.where(chunk_idx >= 0, key, n_runs).flatten()
    sorted_key, order = torch.sort(key)
    # each run's end in the sorted keys, by binary search: no scatter-add of E ones (0.04 ms at 8K) and
    # no bincount (it reads the maximum back to the host)
    bounds = torch.arange(n_runs, device=device, dtype=key_dtype)
    run_end = torch.searchsorted(sorted_key, bounds, right=True)
    counts = torch.diff(run_end, prepend=run_end.new_zeros(1))
    pieces = (counts + item_pairs - 1) // item_pairs
    piece_end = torch.cumsum(pieces, 0)
    n_items = key.numel() // item_pairs + min(key.numel(), n_runs) + 1
    item = torch.arange(n_items, device=device)
    item_run = torch.searchsorted(piece_end, item, right=True)
    spare = item_run >= n_runs
    item_run = item_run.clamp(max=n_runs - 1)
    first_piece = piece_end[item_run] - pieces[item_run]
    item_start = run_end[item_run] - counts[item_run] + (item - first_piece) * item_pairs
    item_len = torch.clamp(run_end[item_run] - item_start, max=item_pairs)
    item_len = torch.where(spare, 0, item_len)
    item_seg = item_run % n_seg if n_blocks > 1 else item_run
    return order, item_seg, item_start, item_len


def _dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs are multiplied in full precision; half inputs ignore the setting
    return "ieee" if dtype == torch.float32 else "tf32"


class _Layout:
    """Shapes and pool views shared by the forward and backward launches."""

    def __init__(self, q, mem_k, chunk_idx, chunk_size, paged):
        B, T, HQ, D = q.shape
        self.B, self.T, self.HQ, self.D = B, T, HQ, D
        self.HK, self.K = chunk_idx.shape[2], chunk_idx.shape[3]
        self.G = HQ // self.HK
        self.S = chunk_size
        if paged:
            self.n_pages, self.pages_per_batch = mem_k.shape[0], 0
        else:
            self.pages_per_batch = mem_k.shape[1] // chunk_size
            self.n_pages = B * self.pages_per_batch
        self.BLOCK_D = max(16, triton.next_power_of_2(D))
        self.BLOCK_G = triton.next_power_of_2(self.G)

    def pool(self, mem):
        # (P, S, HK, D) view of the memory; a copy only if the chunks are not evenly strided
        mem = mem.reshape(self.n_pages, self.S, self.HK, self.D)
        return mem if mem.stride(-1) == 1 else mem.contiguous()

    def block_tok(self, sorted_pairs, backward=False):
        rows = (BWD_BLOCK_M or BLOCK_M) if backward else BLOCK_M
        rows = rows if sorted_pairs else 16
        if backward and self.BLOCK_D >= 128:
            # the backward holds dK/dV and five row tiles: 64 × 128 spills even with 8 warps;
            # 16 rows is the smallest matrix-unit operand
            rows = max(16, rows // 2)
        block_tok = max(1, rows // self.BLOCK_G)
        # tl.dot needs 16 on every side; the CPU interpreter would not notice fewer
        assert block_tok * self.BLOCK_G >= 16
        return block_tok


def _warps(rows: int, block_d: int) -> int:
    # register use read off sm_90 compiles (both Triton versions): 4 warps spill from 64 × 128 tiles
    return 8 if rows * block_d >= 64 * 128 else 4


# token-major kernels: 16-row products keep whole 64-key K/V operands per warp; 4 warps spill
TOKEN_WARPS = 8


def hsa_forward(q, k_pool, v_pool, chunk_idx, chunk_w, lay: _Layout, sm_scale: float, plan, forward: str,
                lse: torch.Tensor | None = None):
    """Launches one forward; q (B·T, HQ, D), pools (P, S, HK, D), idx/w flat. Returns (B·T, HQ, D) in q's dtype.

    ``lse``: a zeroed (pairs · G,) fp32 buffer to receive each row's log-sum-exp for the backward (or None)."""
    save_lse = lse is not None
    lse = lse if save_lse else chunk_w
    qk_scale = sm_scale * 1.4426950408889634
    common = (q.stride(0), q.stride(1), k_pool.stride(0), k_pool.stride(1), k_pool.stride(2),
              v_pool.stride(0), v_pool.stride(1), v_pool.stride(2))
    precision = _dot_precision(q.dtype)
    if forward == "token":
        o = torch.empty_like(q)
        BLOCK_G = max(16, lay.BLOCK_G)
        hsa_fwd_token_kernel[(lay.B * lay.T, lay.HK)](
            q, k_pool, v_pool, chunk_idx, chunk_w, o, lse, *common, o.stride(0), o.stride(1),
            lay.T, lay.HK, lay.K, lay.G, lay.D, lay.pages_per_batch, qk_scale,
            S=lay.S, BLOCK_D=lay.BLOCK_D, BLOCK_G=BLOCK_G, SAVE_LSE=save_lse, DOT_PRECISION=precision,
            num_warps=TOKEN_WARPS, num_stages=2,
        )
        return o
    o_acc = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    sorted_pairs = plan is not None
    block_tok = lay.block_tok(sorted_pairs)
    order, item_seg, item_start, item_len = plan if sorted_pairs else (chunk_idx,) * 4
    n_items = item_seg.numel() if sorted_pairs else chunk_idx.numel()
    hsa_fwd_chunk_kernel[(n_items,)](
        q, k_pool, v_pool, chunk_idx, chunk_w, order, item_seg, item_start, item_len, o_acc, lse,
        *common, o_acc.stride(0), o_acc.stride(1),
        lay.T, lay.HK, lay.K, lay.G, lay.D, lay.n_pages, lay.pages_per_batch, qk_scale,
        S=lay.S, BLOCK_D=lay.BLOCK_D, BLOCK_G=lay.BLOCK_G, BLOCK_TOK=block_tok,
        SORTED=sorted_pairs, SAVE_LSE=save_lse, DOT_PRECISION=precision,
        num_warps=_warps(block_tok * lay.BLOCK_G, lay.BLOCK_D), num_stages=FWD_CHUNK_STAGES,
    )
    return o_acc.to(q.dtype)


def hsa_backward(q, k_pool, v_pool, chunk_idx, chunk_w, do, lay: _Layout, sm_scale: float, plan, need_dkv: bool,
                 backward: str = "atomic", lse: torch.Tensor | None = None):
    """Returns dq (B·T, HQ, D) fp32, dk/dv pools fp32 (or None), dw flat fp32.

    ``backward``: "atomic" adds dQ from the chunk-major kernel; "token" leaves dQ to a token-major pass.
    ``lse``: the forward's saved log-sum-exp per row (``hsa_forward``), or None to recompute the softmax.
    """
    use_lse = lse is not None
    lse = lse if use_lse else chunk_w
    token_dq = backward == "token"
    dq = (torch.empty if token_dq else torch.zeros)(q.shape, dtype=torch.float32, device=q.device)
    if need_dkv:
        dk = torch.zeros(k_pool.shape, dtype=torch.float32, device=q.device)
        dv = torch.zeros(v_pool.shape, dtype=torch.float32, device=q.device)
    else:
        dk = dv = dq
    dw = torch.zeros(chunk_w.shape, dtype=torch.float32, device=q.device)
    sorted_pairs = plan is not None
    block_tok = lay.block_tok(sorted_pairs, backward=True)
    order, item_seg, item_start, item_len = plan if sorted_pairs else (chunk_idx,) * 4
    n_items = item_seg.numel() if sorted_pairs else chunk_idx.numel()
    hsa_bwd_chunk_kernel[(n_items,)](
        q, k_pool, v_pool, chunk_idx, chunk_w, do, order, item_seg, item_start, item_len, lse,
        dq, dk, dv, dw,
        q.stride(0), q.stride(1), k_pool.stride(0), k_pool.stride(1), k_pool.stride(2),
        v_pool.stride(0), v_pool.stride(1), v_pool.stride(2),
        do.stride(0), do.stride(1), dq.stride(0), dq.stride(1),
        lay.S * lay.HK * lay.D, lay.HK * lay.D, lay.D,
        lay.T, lay.HK, lay.K, lay.G, lay.D, lay.n_pages, lay.pages_per_batch,
        sm_scale, sm_scale * 1.4426950408889634,
        S=lay.S, BLOCK_D=lay.BLOCK_D, BLOCK_G=lay.BLOCK_G, BLOCK_TOK=block_tok,
        SORTED=sorted_pairs, NEED_DQ=not token_dq, NEED_DKV=need_dkv, USE_LSE=use_lse,
        DOT_PRECISION=_dot_precision(q.dtype),
        # dK/dV accumulators and five row tiles: 4 warps spill at 64 × 64
        num_warps=8, num_stages=_bwd_stages(lay.BLOCK_D, q.dtype),
    )
    if token_dq:
        BLOCK_G = max(16, lay.BLOCK_G)
        hsa_bwd_dq_token_kernel[(lay.B * lay.T, lay.HK)](
            q, k_pool, v_pool, chunk_idx, chunk_w, do, dq, lse,
            q.stride(0), q.stride(1), k_pool.stride(0), k_pool.stride(1), k_pool.stride(2),
            v_pool.stride(0), v_pool.stride(1), v_pool.stride(2),
            do.stride(0), do.stride(1), dq.stride(0), dq.stride(1),
            lay.T, lay.HK, lay.K, lay.G, lay.D, lay.pages_per_batch, sm_scale, sm_scale * 1.4426950408889634,
            S=lay.S, BLOCK_D=lay.BLOCK_D, BLOCK_G=BLOCK_G, USE_LSE=use_lse, DOT_PRECISION=_dot_precision(q.dtype),
            num_warps=TOKEN_WARPS, num_stages=2,
        )
    return dq, (dk if need_dkv else None), (dv if need_dkv else None), dw


class HSAAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: forward by ``hsa_forward``, backward by ``hsa_backward`` (pairs sorted once)."""

    @staticmethod
    def forward(ctx, q, mem_k, mem_v, chunk_idx, chunk_w, sm_scale, chunk_size, paged, forward, backward, sort_pairs):
        lay = _Layout(q, mem_k, chunk_idx, chunk_size, paged)
        q2 = q.reshape(lay.B * lay.T, lay.HQ, lay.D).contiguous()  # (B·T, HQ, D)
        k_pool, v_pool = lay.pool(mem_k), lay.pool(mem_v)  # (P, S, HK, D)
        idx = chunk_idx.contiguous()
        w = chunk_w.contiguous()
        if sort_pairs is None:
            sort_pairs = lay.B * lay.T >= SORT_MIN_TOKENS
        plan = plan_pairs(idx, lay.n_pages, lay.pages_per_batch) if sort_pairs else None
        # zeros: rows of empty slots are never written and must read back as a finite log-sum-exp
        lse = (torch.zeros(idx.numel() * lay.G, dtype=torch.float32, device=q.device)
               if SAVED_LSE and any(ctx.needs_input_grad[:5]) else None)
        o = hsa_forward(q2, k_pool, v_pool, idx, w, lay, sm_scale, plan, forward, lse)
        ctx.lay, ctx.sm_scale, ctx.sorted, ctx.backward_mode = lay, sm_scale, sort_pairs, backward
        ctx.mem_shape, ctx.mem_dtype = mem_k.shape, mem_k.dtype
        ctx.has_lse = lse is not None
        ctx.save_for_backward(q2, k_pool, v_pool, idx, w, *((lse,) if lse is not None else ()), *(plan or ()))
        return o.view(q.shape)

    @staticmethod
    def backward(ctx, do):
        q2, k_pool, v_pool, idx, w, *rest = ctx.saved_tensors
        lse, plan = (rest[0], rest[1:]) if ctx.has_lse else (None, rest)
        lay = ctx.lay
        do2 = do.reshape(q2.shape).contiguous()
        need_dkv = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        dq, dk, dv, dw = hsa_backward(q2, k_pool, v_pool, idx, w, do2, lay, ctx.sm_scale,
                                      plan if ctx.sorted else None, need_dkv, ctx.backward_mode, lse)
        dq = dq.to(q2.dtype).view(lay.B, lay.T, lay.HQ, lay.D)
        if need_dkv:
            dk = dk.to(ctx.mem_dtype).view(ctx.mem_shape)
            dv = dv.to(ctx.mem_dtype).view(ctx.mem_shape)
        return dq, dk, dv, None, dw.to(w.dtype), None, None, None, None, None, None
