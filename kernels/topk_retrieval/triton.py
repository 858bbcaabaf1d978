"""Triton landmark scoring with a streaming top-K: kernels and launcher.

Each (score, chunk) pair is packed into one int64 key whose order is "score descending, then chunk
ascending" (the reference's stable tie order), so a top-K is a max over keys and needs no index
bookkeeping. ``topk_scan_kernel`` gives each program a block of queries and one slice of the
landmark axis; it streams landmark tiles through the matrix units and keeps a per-query top-K in
registers: a tile whose keys all fall under every query's current K-th best is dropped after one
compare; a few survivors are inserted largest first, many take one merge by sorting networks.
``topk_finish_kernel`` merges the slices' partial top-Ks and unpacks scores and indices. That pair is
the prefill/training path (many queries).

Decode (at most ``DECODE_MAX_QUERIES`` queries per (batch, head)) is memory-bound: one query against
262,144 landmarks of 256 dims reads 134 MB and does almost no arithmetic. ``topk_decode_scan_kernel``
splits the landmark axis into many slices (about ``DECODE_PROGRAMS_PER_SM`` programs per SM, a slice
of one or a few tiles); a program streams its tiles (landmarks as the matrix-unit's M side, the few
queries padded to 16 as N, the landmark dimension pipelined in ``BLOCK_R`` steps), sorts each tile's
keys once and keeps its slice's top-K, and writes that list and its maximum.
``topk_decode_merge_kernel`` then needs only K of the slices: the global top-K lies in the K slices
with the largest maxima (a slice outside them has K larger maxima above its best element), so it sorts
the slice maxima, gathers those K lists (K² keys) and sorts them. Its work is bounded by the slice
count and K², not by the landmark count.
Two opt-in variants of that merge (``merge`` / ``merge_by`` of ``landmark_topk_decode``, or the environment
variables below), bit-identical in what they choose: ``merge="ticket"`` fuses it into the scan (each program
takes a ticket from a per-(b, h) counter after writing its list; the program that takes the last ticket
merges, then resets the counter), which saves the second launch; ``merge_by="fold"`` replaces its two sorts
by bitonic top-K networks: the K largest slice maxima by sorting blocks of K and folding pairs of blocks,
and the K lists, which arrive sorted, by folds only (log2 K rounds, each a bitonic merge of K keys per pair
of lists, instead of one sort of K² keys).
Nothing of size (queries × chunks) is ever stored.
"""
from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

from .reference import hash32

# the key of an empty slot: below every packed (score, chunk) key
SENT: tl.constexpr = tl.constexpr(-(2 ** 63))
# a tile with more survivors than this (for some query) is merged by sorting, not by insertion
INSERT_LIMIT = 4
# split-K over landmarks: aim for this many programs, each slice at least one tile, at most this many slices
TARGET_PROGRAMS = 528
MAX_SPLITS = 128
# decode path: at most this many queries per (batch, head) row group; programs per SM to aim for;
# at most this many slices (the merge sorts one key per slice)
DECODE_MAX_QUERIES = 16
# the merge sorts K lists of K keys in one program: above K = 64 that stops fitting, so larger K scan
DECODE_MAX_TOPK = 64
# 4, not 8: on the H200 at 16M tokens, 4 tiles of 128 landmarks per slice (512 slices) took 64 µs against
# 78 µs for 2 tiles (1,024 slices: the merge gathers more) and 74 µs for 8 (bench/RESULTS.md, "Kernels")
DECODE_PROGRAMS_PER_SM = 4
DECODE_MAX_SLICES = 4096
# The decode path ran on an H200 on 2026-12-05 (its tests vs the reference pass there, bench/RESULTS.md
# "Kernels"), so it serves at most 16 queries everywhere; HSA_TOPK_DECODE=0 turns it off (the streaming
# scan then serves decode too), HSA_TOPK_DECODE=1 forces it on.
DECODE_SWITCH = os.environ.get("HSA_TOPK_DECODE", "auto")
# The decode merge: "kernel" (a second launch, the default) or "ticket" (fused into the scan: the last program
# of each (b, h) merges; taken for one query per (b, h) only, more queries keep the merge kernel, which
# merges their rows in parallel). HSA_TOPK_DECODE_MERGE_BY: "fold" (bitonic top-K networks, the default) or
# "sort" (one sort of all candidates). Timed on the H100 on 2026-12-06 (bench/RESULTS.md, "Decode merge"),
# both choosing the same chunks as "sort" bit for bit: at 16M tokens, 1 query, kernel+fold 63.7 µs, ticket
# 64.2 µs, kernel+sort 73.9 µs; with 4 / 16 queries kernel+fold 98.7 / 315 µs vs ticket 154 / 472 µs. So
# the second launch costs little; the sort was the cost: fold is the default, the ticket stays opt-in.
DECODE_MERGE = os.environ.get("HSA_TOPK_DECODE_MERGE", "kernel")
DECODE_MERGE_BY = os.environ.get("HSA_TOPK_DECODE_MERGE_BY", "fold")
# the ticket merge is taken by default (HSA_TOPK_DECODE_MERGE=ticket) up to this many queries per (b, h)
DECODE_TICKET_MAX_QUERIES = 1


def decode_path_enabled(device: torch.device) -> bool:
    if DECODE_SWITCH in ("0", "1"):
        return DECODE_SWITCH == "1"
    return True


@triton.jit
def _hash32(x):
    # lowbias32 on uint32, bit for bit the reference's ``hash32``
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    x = x ^ (x >> 16)
    return x


@triton.jit
def _gumbel(row_hash, i_h, offs_n):
    # Gumbel(0, 1) noise of (row, head, chunk), the reference's ``gumbel_noise``
    x = _hash32(row_hash[:, None] ^ (i_h * 65599 + offs_n)[None, :].to(tl.uint32))
    u = (x.to(tl.float64) + 0.5) / 4294967296.0
    return (-tl.log(-tl.log(u))).to(tl.float32)


@triton.jit
def _pack(rank, offs_n):
    # int64 key ordered by (rank descending, chunk ascending); rank float32, offs_n int64
    bits = rank.to(tl.int32, bitcast=True)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (bits.to(tl.int64) << 32) | (4294967295 - offs_n)


@triton.jit
def _unpack(key):
    hi = (key >> 32).to(tl.int32)
    bits = hi ^ ((hi >> 31) & 0x7FFFFFFF)
    return bits.to(tl.float32, bitcast=True), 4294967295 - (key & 4294967295)


@triton.jit
def _leading(x, HALVINGS: tl.constexpr):
    # the first x.shape[1] / 2**HALVINGS columns of x (rows, cols)
    for _ in tl.static_range(HALVINGS):
        x = tl.reshape(x, (x.shape[0], 2, x.shape[1] // 2))
        x, _rest = tl.split(tl.permute(x, (0, 2, 1)))
    return x


@triton.jit
def _topk_update(best, key, LOG_N_OVER_K: tl.constexpr, INSERT_LIMIT: tl.constexpr):
    # running top-K of each row of best (rows, K), updated with one tile of keys (rows, N).
    # A tile without survivors (keys above the row's K-th best) costs one compare. A few survivors are
    # inserted largest first, replacing the row's minimum (after K insertions the rest cannot enter);
    # more than INSERT_LIMIT take one sorted merge (bitonic networks, each stage a shuffle on the GPU).
    cand = tl.where(key > tl.min(best, 1)[:, None], key, SENT)
    n_cand = tl.max(tl.sum((cand != SENT).to(tl.int32), 1), 0)
    if n_cand > INSERT_LIMIT:
        top = _leading(tl.sort(key, 1, descending=True), LOG_N_OVER_K)
        both = tl.reshape(tl.join(best, top), (best.shape[0], 2 * best.shape[1]))
        best = _leading(tl.sort(both, 1, descending=True), 1)
    else:
        cols = tl.arange(0, best.shape[1])
        for _ in range(0, tl.minimum(n_cand, best.shape[1])):
            x = tl.max(cand, 1)
            low, pos = tl.min(best, 1, return_indices=True)
            take = (cols[None, :] == pos[:, None]) & (x > low)[:, None]
            best = tl.where(take, x[:, None], best)
            cand = tl.where(cand == x[:, None], SENT, cand)
    return best


@triton.jit
def _axis_bit(N_AXES: tl.constexpr, AXIS: tl.constexpr):
    # 0, 1 along AXIS of a hypercube [2] * N_AXES (size 1 along the others, for broadcasting)
    return tl.reshape(tl.arange(0, 2), [1] * AXIS + [2] + [1] * (N_AXES - AXIS - 1))


@triton.jit
def _bitonic_pass(h, S: tl.constexpr, DIR_BIT: tl.constexpr):
    # h: keys as a hypercube [2] * n over their flat index (axis a holds index bit n - 1 - a). Sorts every
    # bitonic run of 2**S consecutive keys: descending where index bit DIR_BIT is 0, ascending where it is 1,
    # all descending when DIR_BIT >= n. One compare-exchange per bit S - 1 ... 0; an element's partner is its
    # own key XOR the XOR of its pair along that axis (no data movement but one pairwise reduction).
    n: tl.constexpr = len(h.shape)
    for i in tl.static_range(S):
        first = _axis_bit(n, n - S + i) == 0
        if DIR_BIT < n:
            take_max = first == (_axis_bit(n, n - 1 - DIR_BIT) == 0)
        else:
            take_max = first
        other = h ^ tl.xor_sum(h, n - S + i, keep_dims=True)
        h = tl.where((h > other) == take_max, h, other)
    return h


@triton.jit
def _top_set(x, LOG_N: tl.constexpr, LOG_K: tl.constexpr):
    # the 2**LOG_K largest of the 2**LOG_N keys of x, in no particular order, as a vector (bitonic top-K,
    # LOG_N > LOG_K): sort blocks of 2**LOG_K keys, alternately descending and ascending; then fold pairs of
    # blocks (the elementwise max of a descending and an ascending block holds the larger half of their union,
    # as one bitonic run) and merge the runs alternately again, until one block remains
    h = tl.reshape(x, [2] * LOG_N)
    for s in tl.static_range(1, LOG_K + 1):
        h = _bitonic_pass(h, s, s)
    for i in tl.static_range(LOG_N - LOG_K):
        h = tl.max(h, LOG_N - i - 1 - LOG_K)
        if i < LOG_N - LOG_K - 1:
            h = _bitonic_pass(h, LOG_K, LOG_K)
    return tl.reshape(h, (2 ** LOG_K,))


@triton.jit
def _fold_lists(lists, LOG_L: tl.constexpr, LOG_K: tl.constexpr):
    # lists (2**LOG_L, 2**LOG_K): even rows sorted descending, odd rows ascending. The 2**LOG_K largest of all,
    # descending (1, 2**LOG_K): LOG_L rounds of folding pairs of rows and merging the bitonic results
    # (alternately, the last one descending)
    h = tl.reshape(lists, [2] * (LOG_L + LOG_K))
    for i in tl.static_range(LOG_L):
        h = tl.max(h, LOG_L - i - 1)
        h = _bitonic_pass(h, LOG_K, LOG_K)
    return tl.reshape(h, (1, 2 ** LOG_K))


@triton.jit
def topk_scan_kernel(
    q_ptr, l_ptr, vis_ptr, part_ptr,
    stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
    T, HK, N, R, n_per_split, n_splits, scale, seed_hash,
    TOPK_PAD: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
    LOG_N_OVER_K: tl.constexpr, INSERT_LIMIT: tl.constexpr, GUMBEL: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_q = tl.program_id(0).to(tl.int64)
    i_bh = tl.program_id(1).to(tl.int64)
    i_split = tl.program_id(2).to(tl.int64)
    i_b = i_bh // HK
    i_h = i_bh % HK
    offs_q = i_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    m_q = offs_q < T
    vis = tl.load(vis_ptr + i_b * T + offs_q, mask=m_q, other=0).to(tl.int64)
    n_lo = i_split * n_per_split
    n_hi = tl.minimum(tl.minimum(n_lo + n_per_split, N), tl.max(vis, 0))
    if GUMBEL:
        row_hash = _hash32(_hash32(seed_hash.to(tl.uint32) ^ i_b.to(tl.uint32)) ^ offs_q.to(tl.uint32))
    p_q = q_ptr + i_b * stride_qb + i_h * stride_qh + offs_q[:, None] * stride_qt
    p_l = l_ptr + i_b * stride_lb + i_h * stride_lh
    offs_r = tl.arange(0, BLOCK_R)
    best = tl.full([BLOCK_Q, TOPK_PAD], SENT, tl.int64)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        offs_n = (n0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        m_n = offs_n < n_hi
        b_s = tl.zeros([BLOCK_Q, BLOCK_N], dtype=tl.float32)
        for r0 in range(0, R, BLOCK_R):
            m_r = (r0 + offs_r) < R
            b_q = tl.load(p_q + (r0 + offs_r)[None, :], mask=m_q[:, None] & m_r[None, :], other=0.0)
            b_l = tl.load(p_l + offs_n[:, None] * stride_ln + (r0 + offs_r)[None, :],
                          mask=m_n[:, None] & m_r[None, :], other=0.0)
            b_s += tl.dot(b_q, tl.trans(b_l), input_precision=DOT_PRECISION)
        b_s = b_s * scale
        if GUMBEL:
            b_rank = b_s + _gumbel(row_hash, i_h, offs_n)
        else:
            b_rank = b_s
        m_key = (offs_n[None, :] < vis[:, None]) & m_n[None, :] & (b_rank > float("-inf"))
        key = tl.where(m_key, _pack(b_rank, offs_n[None, :]), SENT)
        best = _topk_update(best, key, LOG_N_OVER_K, INSERT_LIMIT)
    cols = tl.arange(0, TOPK_PAD)
    p_part = part_ptr + (((i_b * T + offs_q[:, None]) * HK + i_h) * n_splits + i_split) * TOPK_PAD + cols[None, :]
    tl.store(p_part, best, mask=m_q[:, None])


@triton.jit
def _emit_topk(top, i_row, q_ptr, l_ptr, score_ptr, index_ptr,
               stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
               T, HK, R, topk, scale, TOPK_PAD: tl.constexpr, BLOCK_R: tl.constexpr, GUMBEL: tl.constexpr):
    # unpack one row's top keys (1, TOPK_PAD), best first, and write scores and indices
    cols = tl.arange(0, TOPK_PAD)[None, :]
    valid = top != SENT
    score, n = _unpack(top)
    if GUMBEL:
        # the keys ranked score + noise: recompute the clean scores of the chosen chunks
        i_h = i_row % HK
        i_t = (i_row // HK) % T
        i_b = i_row // HK // T
        offs_r = tl.arange(0, BLOCK_R)
        acc = tl.zeros([1, TOPK_PAD], dtype=tl.float32)
        for r0 in range(0, R, BLOCK_R):
            m_r = (r0 + offs_r) < R
            b_q = tl.load(q_ptr + i_b * stride_qb + i_t * stride_qt + i_h * stride_qh + r0 + offs_r,
                          mask=m_r, other=0.0).to(tl.float32)
            p_l = l_ptr + i_b * stride_lb + i_h * stride_lh + tl.reshape(n, (TOPK_PAD,))[:, None] * stride_ln
            b_l = tl.load(p_l + (r0 + offs_r)[None, :], mask=tl.reshape(valid, (TOPK_PAD,))[:, None] & m_r[None, :],
                          other=0.0).to(tl.float32)
            acc += tl.reshape(tl.sum(b_l * b_q[None, :], 1), (1, TOPK_PAD))
        score = acc * scale
    tl.store(score_ptr + i_row * topk + cols, tl.where(valid, score, float("-inf")), mask=cols < topk)
    tl.store(index_ptr + i_row * topk + cols, tl.where(valid, n, -1), mask=cols < topk)


@triton.jit
def topk_finish_kernel(
    part_ptr, q_ptr, l_ptr, score_ptr, index_ptr,
    stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
    T, HK, R, width, topk, scale,
    WIDTH: tl.constexpr, TOPK_PAD: tl.constexpr, BLOCK_R: tl.constexpr, LOG_W_OVER_K: tl.constexpr,
    SORT: tl.constexpr, GUMBEL: tl.constexpr,
):
    # one program per (b, t, h) row: merge the slices' top-Ks, unpack, write best first
    i_row = tl.program_id(0).to(tl.int64)
    offs_w = tl.arange(0, WIDTH)
    keys = tl.load(part_ptr + i_row * width + offs_w[None, :], mask=offs_w[None, :] < width, other=SENT)
    cols = tl.arange(0, TOPK_PAD)[None, :]
    if SORT:
        top = _leading(tl.sort(keys, 1, descending=True), LOG_W_OVER_K)
    else:
        top = tl.full([1, TOPK_PAD], SENT, tl.int64)
        for i in range(0, topk):
            x = tl.max(keys, 1)
            top = tl.where(cols == i, x[:, None], top)
            keys = tl.where(keys == x[:, None], SENT, keys)
    _emit_topk(top, i_row, q_ptr, l_ptr, score_ptr, index_ptr,
               stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
               T, HK, R, topk, scale, TOPK_PAD, BLOCK_R, GUMBEL)


@triton.jit
def _decode_merge_row(part_ptr, max_ptr, i_row, n_slices, slice_n,
                      SPAD: tl.constexpr, NSEL: tl.constexpr, TOPK_PAD: tl.constexpr, LOG_S_OVER_SEL: tl.constexpr,
                      LOG_SEL: tl.constexpr, LOG_TOPK: tl.constexpr, FOLD: tl.constexpr, CACHE: tl.constexpr):
    # The top TOPK_PAD keys of one (b, t, h) row, best first (1, TOPK_PAD). They lie in the NSEL = min(slices, K)
    # slices with the largest maxima: select those, gather their lists (NSEL × K keys, each sorted descending),
    # merge. FOLD: bitonic selection and folds; else two full sorts.
    offs_s = tl.arange(0, SPAD)
    maxima = tl.load(max_ptr + i_row * n_slices + offs_s[None, :], mask=offs_s[None, :] < n_slices, other=SENT,
                     cache_modifier=CACHE)
    if LOG_S_OVER_SEL > 0:
        if FOLD:
            maxima = _top_set(maxima, LOG_S_OVER_SEL + LOG_SEL, LOG_SEL)  # (NSEL,), any order
        else:
            maxima = _leading(tl.sort(maxima, 1, descending=True), LOG_S_OVER_SEL)  # (1, NSEL)
    maxima = tl.reshape(maxima, (NSEL,))
    _, n = _unpack(maxima)
    i_slice = tl.where(maxima != SENT, n // slice_n, 0)
    cols = tl.arange(0, TOPK_PAD)[None, :]
    if FOLD:
        # odd rows read back to front: the lists alternate descending / ascending, as the folds want
        cols = tl.where((tl.arange(0, NSEL) % 2 == 1)[:, None], TOPK_PAD - 1 - cols, cols)
    cand = tl.load(part_ptr + (i_row * n_slices + i_slice[:, None]) * TOPK_PAD + cols,
                   mask=(maxima != SENT)[:, None], other=SENT, cache_modifier=CACHE)
    if FOLD:
        top = _fold_lists(cand, LOG_SEL, LOG_TOPK)
    else:
        cand = tl.reshape(cand, (1, NSEL * TOPK_PAD))
        top = _leading(tl.sort(cand, 1, descending=True), LOG_SEL)
    return top


@triton.jit
def topk_decode_scan_kernel(
    q_ptr, l_ptr, vis_ptr, part_ptr, max_ptr, score_ptr, index_ptr, count_ptr,
    stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
    T, HK, N, R, slice_n, n_slices, scale, seed_hash, topk,
    TOPK_PAD: tl.constexpr, BLOCK_Q: tl.constexpr, QPAD: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_R: tl.constexpr, LOG_N_OVER_K: tl.constexpr, MULTI_TILE: tl.constexpr, GUMBEL: tl.constexpr,
    DOT_PRECISION: tl.constexpr, TICKET: tl.constexpr, SPAD: tl.constexpr, NSEL: tl.constexpr,
    LOG_S_OVER_SEL: tl.constexpr, LOG_SEL: tl.constexpr, LOG_TOPK: tl.constexpr, FOLD: tl.constexpr,
    MERGE_BLOCK_R: tl.constexpr,
):
    # program (slice, b·h): the slice's top-K for the (at most BLOCK_Q) queries of (b, h); with TICKET, the
    # program that finishes last among the slices of (b, h) then merges them (see below)
    i_slice = tl.program_id(0).to(tl.int64)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // HK
    i_h = i_bh % HK
    rows = tl.arange(0, BLOCK_Q)
    m_row = rows < T
    vis = tl.load(vis_ptr + i_b * T + rows, mask=m_row, other=0).to(tl.int64)
    n_lo = i_slice * slice_n
    n_hi = tl.minimum(tl.minimum(n_lo + slice_n, N), tl.max(vis, 0))
    if GUMBEL:
        row_hash = _hash32(_hash32(seed_hash.to(tl.uint32) ^ i_b.to(tl.uint32)) ^ rows.to(tl.uint32))
    offs_q = tl.arange(0, QPAD)
    offs_r = tl.arange(0, BLOCK_R)
    p_q = q_ptr + i_b * stride_qb + i_h * stride_qh + offs_q[:, None] * stride_qt
    p_l = l_ptr + i_b * stride_lb + i_h * stride_lh
    best = tl.full([BLOCK_Q, TOPK_PAD], SENT, tl.int64)
    for n0 in range(n_lo, n_hi, BLOCK_N):
        offs_n = (n0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        m_n = offs_n < n_hi
        # scores transposed, (landmarks, queries): the landmark tile is the matrix units' M side,
        # the queries (zero rows past T) their narrow N side
        acc = tl.zeros([BLOCK_N, QPAD], dtype=tl.float32)
        for r0 in range(0, R, BLOCK_R):
            m_r = (r0 + offs_r) < R
            b_l = tl.load(p_l + offs_n[:, None] * stride_ln + (r0 + offs_r)[None, :],
                          mask=m_n[:, None] & m_r[None, :], other=0.0)
            b_q = tl.load(p_q + (r0 + offs_r)[None, :], mask=(offs_q < T)[:, None] & m_r[None, :], other=0.0)
            acc = tl.dot(b_l, tl.trans(b_q), acc, input_precision=DOT_PRECISION)
        b_s = tl.trans(acc)  # (QPAD, BLOCK_N)
        if BLOCK_Q < QPAD:
            # keep the first BLOCK_Q query rows: the others are exact zeros, so summing them in is exact
            b_s = tl.sum(tl.reshape(b_s, (QPAD // BLOCK_Q, BLOCK_Q, BLOCK_N)), 0)
        b_s = b_s * scale
        if GUMBEL:
            b_rank = b_s + _gumbel(row_hash, i_h, offs_n)
        else:
            b_rank = b_s
        m_key = (offs_n[None, :] < vis[:, None]) & m_n[None, :] & (b_rank > float("-inf"))
        key = tl.where(m_key, _pack(b_rank, offs_n[None, :]), SENT)
        top = _leading(tl.sort(key, 1, descending=True), LOG_N_OVER_K)
        if MULTI_TILE:
            both = tl.reshape(tl.join(best, top), (BLOCK_Q, 2 * TOPK_PAD))
            best = _leading(tl.sort(both, 1, descending=True), 1)
        else:
            best = top
    row = (i_b * T + rows) * HK + i_h
    cols = tl.arange(0, TOPK_PAD)
    tl.store(part_ptr + (row[:, None] * n_slices + i_slice) * TOPK_PAD + cols[None, :], best, mask=m_row[:, None])
    tl.store(max_ptr + row * n_slices + i_slice, tl.max(best, 1), mask=m_row)
    if TICKET:
        # The merge, fused. Every program of (b, h) takes a ticket from its counter once its list and maximum
        # are stored; the one that draws n_slices - 1 is the last, every other list is complete, and it merges.
        # On a GPU the programs run concurrently, so the order of memory operations matters:
        # 1. the barrier: all threads of this program have issued their stores above before thread 0 goes on
        #    (Triton gives a scalar atomic to one thread and broadcasts its result through shared memory);
        # 2. the ticket, an atomic add with release semantics at GPU scope: it makes this program's stores
        #    (those of its other threads included: release is cumulative over what the barrier ordered before
        #    it) visible before its increment is;
        # 3. the last ticket holder read the counter after all n_slices - 1 other increments (one modification
        #    order per address); its acquire (the same acq_rel atomic) orders their released stores before its
        #    own later loads, and the ticket's broadcast (shared memory, a barrier) passes that order on to all
        #    its threads. Its loads also skip L1 (.cg): nothing cached on this SM before the ticket is read.
        # 4. it then resets the counter to 0 with a plain store: no program of this launch touches the counter
        #    after the last ticket, and the next launch on the stream starts after this one has ended, so a
        #    buffer reused across calls (and CUDA-graph replays) always starts at 0.
        # Under TRITON_INTERPRET=1 the programs run one after another: only the last one (slice n_slices - 1)
        # merges; the tests check the result, not the concurrency.
        tl.debug_barrier()
        ticket = tl.atomic_add(count_ptr + i_bh, 1, sem="acq_rel", scope="gpu")
        if ticket == n_slices - 1:
            for t in range(0, T):
                i_row = (i_b * T + t) * HK + i_h
                top = _decode_merge_row(part_ptr, max_ptr, i_row, n_slices, slice_n, SPAD, NSEL, TOPK_PAD,
                                        LOG_S_OVER_SEL, LOG_SEL, LOG_TOPK, FOLD, ".cg")
                _emit_topk(top, i_row, q_ptr, l_ptr, score_ptr, index_ptr,
                           stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
                           T, HK, R, topk, scale, TOPK_PAD, MERGE_BLOCK_R, GUMBEL)
            tl.store(count_ptr + i_bh, 0)


@triton.jit
def topk_decode_merge_kernel(
    part_ptr, max_ptr, q_ptr, l_ptr, score_ptr, index_ptr,
    stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
    T, HK, R, n_slices, slice_n, topk, scale,
    SPAD: tl.constexpr, NSEL: tl.constexpr, TOPK_PAD: tl.constexpr, BLOCK_R: tl.constexpr,
    LOG_S_OVER_SEL: tl.constexpr, LOG_SEL: tl.constexpr, LOG_TOPK: tl.constexpr, GUMBEL: tl.constexpr,
    FOLD: tl.constexpr,
):
    # one program per (b, t, h) row: merge the slices' lists (``_decode_merge_row``), unpack, write
    i_row = tl.program_id(0).to(tl.int64)
    top = _decode_merge_row(part_ptr, max_ptr, i_row, n_slices, slice_n, SPAD, NSEL, TOPK_PAD, LOG_S_OVER_SEL,
                            LOG_SEL, LOG_TOPK, FOLD, "")
    _emit_topk(top, i_row, q_ptr, l_ptr, score_ptr, index_ptr,
               stride_qb, stride_qt, stride_qh, stride_lb, stride_ln, stride_lh,
               T, HK, R, topk, scale, TOPK_PAD, BLOCK_R, GUMBEL)


@functools.lru_cache(maxsize=64)
def _seed_hash(seed: int) -> int:
    return int(hash32(torch.tensor(seed, dtype=torch.int64)))


def _log2(x: int) -> int:
    return x.bit_length() - 1


def landmark_topk_forward(queries, landmarks, topk, visible_upto, scale, gumbel_seed, block_n=None, n_splits=None,
                          sort=None, num_warps=None, num_stages=3, block_r=None):
    """Launches the scan and the merge; shapes as ``landmark_topk_reference``. Returns (scores, indices).

    ``sort`` (default: on CUDA) lets tiles with many survivors merge by sorting networks; Triton's CPU
    interpreter runs those element by element, so there it inserts survivors one by one instead.
    """
    B, T, HK, R = queries.shape
    N = landmarks.shape[1]
    device = queries.device
    if queries.stride(-1) != 1:
        queries = queries.contiguous()
    if landmarks.stride(-1) != 1:
        landmarks = landmarks.contiguous()
    vis = visible_upto.to(device=device, dtype=torch.int64).contiguous()
    topk_pad = max(4, triton.next_power_of_2(topk))
    block_q = 16 if T <= 16 else 32
    block_n = block_n or max(64, topk_pad)
    # a landmark tile of at most 32 KiB per pipeline stage
    block_r = block_r or min(128 if queries.element_size() == 4 else 256, max(16, triton.next_power_of_2(R)))
    n_tiles = max(1, triton.cdiv(N, block_n))
    programs = triton.cdiv(T, block_q) * B * HK
    if n_splits is None:
        n_splits = min(MAX_SPLITS, n_tiles, max(1, triton.cdiv(TARGET_PROGRAMS, programs)))
    n_per_split = triton.cdiv(n_tiles, n_splits) * block_n
    n_splits = max(1, triton.cdiv(N, n_per_split))
    part = torch.empty(B * T * HK * n_splits * topk_pad, dtype=torch.int64, device=device)
    gumbel = gumbel_seed is not None
    sort = queries.is_cuda if sort is None else sort
    # bit 32 set: the kernel keeps the low 32 bits, and the argument never specialises to a constant
    seed_hash = _seed_hash(gumbel_seed if gumbel else 0) | (1 << 32)
    precision = "ieee" if queries.dtype == torch.float32 else "tf32"
    strides = (queries.stride(0), queries.stride(1), queries.stride(2),
               landmarks.stride(0), landmarks.stride(1), landmarks.stride(2))
    topk_scan_kernel[(triton.cdiv(T, block_q), B * HK, n_splits)](
        queries, landmarks, vis, part, *strides,
        T, HK, N, R, n_per_split, n_splits, float(scale), seed_hash,
        TOPK_PAD=topk_pad, BLOCK_Q=block_q, BLOCK_N=block_n, BLOCK_R=block_r,
        LOG_N_OVER_K=_log2(block_n // topk_pad), INSERT_LIMIT=INSERT_LIMIT if sort else block_n,
        GUMBEL=gumbel, DOT_PRECISION=precision,
        num_warps=num_warps or (8 if block_q >= 32 else 4), num_stages=num_stages,
    )
    width = n_splits * topk_pad
    WIDTH = triton.next_power_of_2(width)
    scores = torch.empty(B, T, HK, topk, dtype=torch.float32, device=device)
    indices = torch.empty(B, T, HK, topk, dtype=torch.int64, device=device)
    topk_finish_kernel[(B * T * HK,)](
        part, queries, landmarks, scores, indices, *strides,
        T, HK, R, width, topk, float(scale),
        WIDTH=WIDTH, TOPK_PAD=topk_pad, BLOCK_R=block_r, LOG_W_OVER_K=_log2(WIDTH // topk_pad), SORT=sort,
        GUMBEL=gumbel, num_warps=4 if WIDTH <= 1024 else 8,
    )
    return scores, indices


@functools.lru_cache(maxsize=8)
def _sm_count(device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132  # an H100's count, so the CPU interpreter tests the same slicing


def decode_slicing(N, groups, block_n, sm_count, tiles_per_slice=None):
    """(tiles per slice, slices) for a decode scan of N landmarks in ``groups`` (b, h) row groups.

    Aims for ``DECODE_PROGRAMS_PER_SM`` programs per SM (many bytes in flight for a memory-bound scan)
    with whole tiles per slice and at most ``DECODE_MAX_SLICES`` slices.
    """
    n_tiles = max(1, triton.cdiv(N, block_n))
    if tiles_per_slice is None:
        slices = max(1, triton.cdiv(DECODE_PROGRAMS_PER_SM * sm_count, groups))
        tiles_per_slice = triton.cdiv(n_tiles, slices)
    tiles_per_slice = max(tiles_per_slice, triton.cdiv(n_tiles, DECODE_MAX_SLICES))
    return tiles_per_slice, triton.cdiv(n_tiles, tiles_per_slice)


def decode_merge_constants(n_slices: int, topk_pad: int, fold: bool) -> dict:
    """The merge's compile-time shape: slices padded (SPAD), slices it gathers (NSEL = min(SPAD, K)), logs."""
    spad = triton.next_power_of_2(n_slices)
    nsel = min(spad, topk_pad)
    return dict(SPAD=spad, NSEL=nsel, LOG_S_OVER_SEL=_log2(spad // nsel), LOG_SEL=_log2(nsel),
                LOG_TOPK=_log2(topk_pad), FOLD=fold)


# ticket counters of the fused merge, per CUDA device: zeros between launches (each launch's last programs reset
# theirs). Buffers are never freed: a captured CUDA graph keeps the address of the one it was captured with.
_TICKET_COUNTERS: dict = {}
_TICKET_KEEP: list = []


def ticket_counters(device: torch.device, n: int) -> torch.Tensor:
    """At least ``n`` int32 zeros for the ticket merge, reused across calls on a CUDA device.

    The reuse is what keeps a memset out of each call (and out of a captured graph): the kernel leaves the
    counters at 0. Two decode top-Ks that may run at the same time on different streams of one device must
    not share them: pass each its own ``counters=torch.zeros(...)``. Off CUDA (the interpreter), and while a
    stream is being captured before any buffer exists, a fresh zeroed buffer is returned instead.
    """
    if device.type != "cuda":
        return torch.zeros(n, dtype=torch.int32, device=device)
    key = (device.type, device.index if device.index is not None else torch.cuda.current_device())
    buf = _TICKET_COUNTERS.get(key)
    if buf is not None and buf.numel() >= n:
        return buf
    if torch.cuda.is_current_stream_capturing():
        # zeroing now would not run before the replay: the graph gets its own zeros (a memset node)
        return torch.zeros(n, dtype=torch.int32, device=device)
    buf = torch.zeros(max(n, 256), dtype=torch.int32, device=device)
    _TICKET_COUNTERS[key] = buf
    _TICKET_KEEP.append(buf)
    return buf


def landmark_topk_decode(queries, landmarks, topk, visible_upto, scale, gumbel_seed, block_n=None, block_r=None,
                         tiles_per_slice=None, num_warps=None, num_stages=3, merge_warps=None, scan_only=False,
                         merge=None, merge_by=None, counters=None):
    """The decode path (at most ``DECODE_MAX_QUERIES`` queries): many-slice scan, then the K-slice merge.

    Shapes and semantics as ``landmark_topk_reference``; extra memory is (rows × slices × (K + 1)) keys,
    rows = B·T·HK with T ≤ 16. Returns (scores, indices); with ``scan_only`` (for timing) the scan's
    (partial lists, maxima).

    ``merge``: "kernel" (a second launch, one program per row) or "ticket" (fused into the scan: the last
    program of each (b, h) merges its rows, one after another); None: ``HSA_TOPK_DECODE_MERGE`` ("kernel"
    unless set; "ticket" is then taken for at most ``DECODE_TICKET_MAX_QUERIES`` queries). ``merge_by``:
    "sort" or "fold" (bitonic top-K networks); None: ``HSA_TOPK_DECODE_MERGE_BY``. Every combination chooses
    the same chunks in the same order. ``counters`` (ticket merge only): B·HK int32 zeros of the caller's,
    left at zero (default: ``ticket_counters``, shared per device).
    """
    B, T, HK, R = queries.shape
    N = landmarks.shape[1]
    if T > DECODE_MAX_QUERIES or topk > DECODE_MAX_TOPK:
        raise ValueError(f"the decode path takes at most {DECODE_MAX_QUERIES} queries and K <= {DECODE_MAX_TOPK}, "
                         f"got {T} and {topk}")
    if merge is None:
        if DECODE_MERGE not in ("kernel", "ticket"):
            raise ValueError(f"HSA_TOPK_DECODE_MERGE must be 'kernel' or 'ticket', got {DECODE_MERGE!r}")
        merge = "ticket" if DECODE_MERGE == "ticket" and T <= DECODE_TICKET_MAX_QUERIES else "kernel"
    merge_by = merge_by or DECODE_MERGE_BY
    if merge not in ("kernel", "ticket") or merge_by not in ("sort", "fold"):
        raise ValueError(f"merge must be 'kernel' or 'ticket' and merge_by 'sort' or 'fold', "
                         f"got {merge!r}, {merge_by!r}")
    ticket = merge == "ticket" and not scan_only
    device = queries.device
    if queries.stride(-1) != 1:
        queries = queries.contiguous()
    if landmarks.stride(-1) != 1:
        landmarks = landmarks.contiguous()
    vis = visible_upto.to(device=device, dtype=torch.int64).contiguous()
    topk_pad = max(4, triton.next_power_of_2(topk))
    block_q = triton.next_power_of_2(T)
    qpad = 16  # the matrix units' narrowest N side
    # landmark tiles of 128 rows (at least K): 1,024 programs of 2 tiles at 262,144 landmarks on 132 SMs
    block_n = max(block_n or 128, 64, topk_pad)
    # 128 bytes of each landmark row per pipeline step
    block_r = min(block_r or (128 // queries.element_size()), max(16, triton.next_power_of_2(R)))
    tiles, n_slices = decode_slicing(N, B * HK, block_n, _sm_count(device), tiles_per_slice)
    slice_n = tiles * block_n
    rows = B * T * HK
    part = torch.empty(rows * n_slices * topk_pad, dtype=torch.int64, device=device)
    maxima = torch.empty(rows * n_slices, dtype=torch.int64, device=device)
    gumbel = gumbel_seed is not None
    seed_hash = _seed_hash(gumbel_seed if gumbel else 0) | (1 << 32)
    precision = "ieee" if queries.dtype == torch.float32 else "tf32"
    strides = (queries.stride(0), queries.stride(1), queries.stride(2),
               landmarks.stride(0), landmarks.stride(1), landmarks.stride(2))
    merge_consts = decode_merge_constants(n_slices, topk_pad, merge_by == "fold")
    if not scan_only:
        scores = torch.empty(B, T, HK, topk, dtype=torch.float32, device=device)
        indices = torch.empty(B, T, HK, topk, dtype=torch.int64, device=device)
    if ticket:
        if counters is None:
            counters = ticket_counters(device, B * HK)
        elif counters.dtype != torch.int32 or counters.numel() < B * HK or counters.device != device:
            raise ValueError(f"counters must be at least {B * HK} int32 zeros on {device}")
        outputs = (scores, indices, counters)
    else:
        outputs = (maxima, maxima, maxima)  # not touched
    topk_decode_scan_kernel[(n_slices, B * HK)](
        queries, landmarks, vis, part, maxima, *outputs, *strides,
        T, HK, N, R, slice_n, n_slices, float(scale), seed_hash, topk,
        TOPK_PAD=topk_pad, BLOCK_Q=block_q, QPAD=qpad, BLOCK_N=block_n, BLOCK_R=block_r,
        LOG_N_OVER_K=_log2(block_n // topk_pad), MULTI_TILE=tiles > 1, GUMBEL=gumbel, DOT_PRECISION=precision,
        TICKET=ticket, MERGE_BLOCK_R=min(block_r, 64), **merge_consts,
        # fp32 (no tensor-core path for "ieee") spills a little at 4 warps
        num_warps=num_warps or (8 if queries.element_size() == 4 else 4), num_stages=num_stages,
    )
    if scan_only:
        return part, maxima
    if ticket:
        return scores, indices
    width = max(merge_consts["SPAD"], merge_consts["NSEL"] * topk_pad)
    topk_decode_merge_kernel[(rows,)](
        part, maxima, queries, landmarks, scores, indices, *strides,
        T, HK, R, n_slices, slice_n, topk, float(scale),
        TOPK_PAD=topk_pad, BLOCK_R=min(block_r, 64), GUMBEL=gumbel, **merge_consts,
        num_warps=merge_warps or (4 if width <= 1024 else 8),
    )
    return scores, indices


def landmark_topk(queries, landmarks, topk, visible_upto, scale=1.0, gumbel_seed=None):
    """Dispatch: the decode path for at most ``DECODE_MAX_QUERIES`` queries and K <= ``DECODE_MAX_TOPK``,
    else the streaming scan."""
    if queries.shape[1] <= DECODE_MAX_QUERIES and topk <= DECODE_MAX_TOPK and decode_path_enabled(queries.device):
        return landmark_topk_decode(queries, landmarks, topk, visible_upto, scale, gumbel_seed)
    return landmark_topk_forward(queries, landmarks, topk, visible_upto, scale, gumbel_seed)
