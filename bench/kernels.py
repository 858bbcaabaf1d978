"""Kernel benchmarks for issue 8: HSA training, decode and prefill against dense attention; SWA options.

Run on a CUDA machine: ``python bench/kernels.py [--out DIR] [--quick]``. Prints markdown tables
(median times) and writes them, with the raw numbers, to DIR (default: the current directory).
Every row that fails is kept with its error, so a miss shows what limited it.

Inputs are random bf16 (never zeros). HSA chunk selections are causal and uniform over the visible
chunks (duplicates possible), chunk weights a softmax of random scores. Decode steps are timed as
CUDA-graph replays (the launches of one step are a few microseconds of GPU work each).

Landmark top-K for decode (at most 16 queries) runs ``landmark_topk_decode`` (many-slice scan + K-slice
merge); ``decode`` times it (and its scan alone) beside the old streaming scan (``landmark_topk_forward``)
and ``torch.topk(q @ Lᵀ)``, and its other merges side by side in the same run (the default is the merge
kernel with bitonic folds): ``topk_sort_us`` (merge kernel, one sort of all candidates: the default until
2026-12-06), ``topk_ticket_us`` (merge fused into the scan by an atomic ticket, bitonic folds);
``sweep`` times its settings at 16M tokens (more merge variants: ticket + sort, ticket with 8 tiles per
slice, a one-warp fold merge kernel). ``--only decode,sweep,prefill`` takes about 2-3 minutes on an H100. ``profile`` splits the short-context
training step (eager vs one CUDA graph, GPU time per kernel from the profiler).
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import os
import time
import traceback

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench, do_bench_cudagraph

from hsa_memory.kernels.hsa_attention import hsa_attention_triton
from hsa_memory.kernels.swa import sliding_window_attention_triton
from hsa_memory.kernels.topk_retrieval import landmark_topk_triton

DEVICE = "cuda"
DT = torch.bfloat16
S = 64
ROWS: dict[str, list[dict]] = {}
# CUDA-graph timings of the decode sections: 10 replays of ~50 ms each (keeps decode+sweep+prefill < 3 min)
GRAPH_REP = 50


def ms(fn, graph=False, rep=200):
    if graph:
        return do_bench_cudagraph(fn, rep=rep, return_mode="median")
    return do_bench(fn, warmup=50, rep=rep, return_mode="median")


def record(table, row):
    ROWS.setdefault(table, []).append(row)
    print(table, json.dumps(row), flush=True)


def attempt(table, row, body):
    try:
        row.update(body())
    except Exception as exc:  # a failed row is a result too: keep what limited it
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        traceback.print_exc()
    torch.cuda.empty_cache()
    record(table, row)


# the kernel knobs (module globals of kernels/hsa_attention/triton.py, read at call time) and the dQ layout
# each profile row changes from the defaults; {} is the defaults. History: the item size (ITEM_PAIRS, session
# 11: no effect), software pipelining of the chunk-major tile loops (BWD_CHUNK_STAGES, session 12: 3 stages
# −15 % on the backward kernel), dQ by fp32 atomics in the chunk kernel or by the token-major kernel
# (backward "token", slower), P rebuilt from the forward's saved log-sum-exp (SAVED_LSE, session 13: −10 % on
# the backward kernel, on since), and the work list grouped by (token block, page) (TOKEN_BLOCK, session 14:
# the output atomics kept in L2, 64K −21-24 %; 4,096 on since, None = by page alone)
KNOBS = ("ITEM_PAIRS", "FWD_CHUNK_STAGES", "BWD_CHUNK_STAGES", "SAVED_LSE", "TOKEN_BLOCK", "BWD_BLOCK_M")
PROFILE_CONFIGS = ({}, {"TOKEN_BLOCK": None}, {"SAVED_LSE": False}, {"BWD_CHUNK_STAGES": 1},
                   {"TOKEN_BLOCK": 8192}, {"TOKEN_BLOCK": 16384}, {"backward": "token"}, {"BWD_BLOCK_M": 128},
                   {"BWD_BLOCK_M": 128, "BWD_CHUNK_STAGES": 1})


def training_profile(lengths, ks, configs=PROFILE_CONFIGS):
    """Where the training step's time goes (issue 8: HSA fwd+bwd against dense at 8K and 64K).

    Per (L, K) and knob setting: the step eager (as ``training`` times it) and as one CUDA-graph replay (no
    host launch cost: what a captured training step would pay), and the GPU time of each kernel over 10
    eager steps from the profiler, so a floor is split into sorting, atomics, launches and the kernels."""
    # importlib: `import a.b.triton as x` resolves the attribute and trips over the package layout
    hsa_triton = importlib.import_module("hsa_memory.kernels.hsa_attention.triton")

    HQ, HK, D = 16, 1, 64
    defaults = {knob: getattr(hsa_triton, knob) for knob in KNOBS}
    for L in lengths:  # the dense baseline in the same run
        q, k, v = (torch.randn(1, HQ, L, D, device=DEVICE, dtype=DT, requires_grad=True) for _ in range(3))
        do = torch.randn(1, HQ, L, D, device=DEVICE, dtype=DT)
        attempt("training_profile", {"L": L, "op": "sdpa causal fwd+bwd"}, lambda: {"eager_ms": ms(
            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(do), rep=300)})
    for L, K, config in itertools.product(lengths, ks, configs):
        knobs = {**defaults, **{k: v for k, v in config.items() if k in KNOBS}}
        backward = config.get("backward", "atomic")
        row = {"L": L, "K": K, **{k.lower(): v for k, v in knobs.items()}, "backward": backward}
        for knob, value in knobs.items():
            setattr(hsa_triton, knob, value)

        def body():
            q = torch.randn(1, L, HQ, D, device=DEVICE, dtype=DT, requires_grad=True)
            mk = torch.randn(1, L, HK, D, device=DEVICE, dtype=DT, requires_grad=True)
            mv = torch.randn(1, L, HK, D, device=DEVICE, dtype=DT, requires_grad=True)
            idx = causal_chunk_idx(L, K)
            w = torch.randn(1, L, HK, K, device=DEVICE).softmax(-1).to(DT).requires_grad_()
            do = torch.randn(1, L, HQ, D, device=DEVICE, dtype=DT)

            def step():
                hsa_attention_triton(q, mk, mv, idx, w, backward=backward).backward(do)

            out = {"eager_ms": ms(step, rep=300)}
            try:
                out["graph_ms"] = ms(step, graph=True, rep=300)
            except Exception as exc:  # capture can fail (a host sync somewhere): that is a finding too
                out["graph_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            for _ in range(3):
                step()
            torch.cuda.synchronize()
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    step()
                torch.cuda.synchronize()
            per_kernel: dict[str, list[float]] = {}
            for e in prof.events():
                if e.device_type == torch.autograd.DeviceType.CUDA:
                    per_kernel.setdefault(e.name, []).append(e.device_time_total)
            ranked = sorted(per_kernel.items(), key=lambda kv: -sum(kv[1]))
            out["gpu_ms"] = sum(sum(t) for _, t in ranked) / 10 / 1e3
            out["launches"] = sum(len(t) for _, t in ranked) // 10
            out["top_kernels"] = "; ".join(
                f"{name[:48]} {sum(t) / 10 / 1e3:.3f} ms x{len(t) // 10}" for name, t in ranked[:8])
            return out

        attempt("training_profile", row, body)
    for knob, value in defaults.items():
        setattr(hsa_triton, knob, value)


def causal_chunk_idx(L, K, HK=1):
    t = torch.arange(L, device=DEVICE).view(1, L, 1, 1)
    visible = t // S
    idx = (torch.rand(1, L, HK, K, device=DEVICE) * visible).long()
    return torch.where(torch.arange(K, device=DEVICE) < visible, idx, -1)


def ceilings():
    x = torch.randn(2 ** 28, device=DEVICE, dtype=DT)  # 512 MiB
    y = torch.empty_like(x)
    t = ms(lambda: y.copy_(x))
    a = torch.randn(8192, 8192, device=DEVICE, dtype=DT)
    b = torch.randn(8192, 8192, device=DEVICE, dtype=DT)
    tg = ms(lambda: a @ b)
    return {"copy_TBps": 2 * x.numel() * 2 / t / 1e9, "bf16_gemm_TFLOPs": 2 * 8192 ** 3 / tg / 1e9}


def training(lengths, ks):
    HQ, HK, D = 16, 1, 64
    for L in lengths:
        row = {"L": L}

        def sdpa():
            q, k, v = (torch.randn(1, HQ, L, D, device=DEVICE, dtype=DT, requires_grad=True) for _ in range(3))
            do = torch.randn(1, HQ, L, D, device=DEVICE, dtype=DT)

            def step():
                F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(do)

            return {"sdpa_fwd_bwd_ms": ms(step, rep=300 if L <= 32768 else 1000)}

        attempt("training", row, sdpa)
        for K in ks:
            for forward, backward in (("chunk", "atomic"), ("token", "atomic"), ("chunk", "token"), ("token", "token")):
                row = {"L": L, "K": K, "forward": forward, "backward": backward}

                def hsa():
                    q = torch.randn(1, L, HQ, D, device=DEVICE, dtype=DT, requires_grad=True)
                    mk = torch.randn(1, L, HK, D, device=DEVICE, dtype=DT, requires_grad=True)
                    mv = torch.randn(1, L, HK, D, device=DEVICE, dtype=DT, requires_grad=True)
                    idx = causal_chunk_idx(L, K)
                    w = torch.randn(1, L, HK, K, device=DEVICE).softmax(-1).to(DT).requires_grad_()
                    do = torch.randn(1, L, HQ, D, device=DEVICE, dtype=DT)
                    leaves = [q, mk, mv, w]

                    def fwd():
                        return hsa_attention_triton(q, mk, mv, idx, w, forward=forward, backward=backward)

                    def step():
                        fwd().backward(do)

                    with torch.no_grad():
                        t_fwd = ms(fwd) if backward == "atomic" else float("nan")
                    t_all = ms(step, rep=300)
                    pairs = int((idx >= 0).sum())
                    # matmul work per (token, chunk) pair: 2 products of (HQ × 64 × D) forward, 5 backward
                    flops = pairs * HQ * S * D * 2 * (2 + 5)
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    step()
                    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
                    for x in leaves:
                        x.grad = None
                    return {"fwd_ms": t_fwd, "fwd_bwd_ms": t_all, "pairs": pairs,
                            "TFLOPs": flops / t_all / 1e9, "peak_extra_MiB": peak}

                attempt("training", row, hsa)
        row = {"L": L, "op": "landmark_topk train (T=L, N=L/64, R=256, K=32, causal)"}

        def topk_train():
            N = L // S
            qr = torch.randn(1, L, 1, 256, device=DEVICE, dtype=DT)
            lm = torch.randn(1, N, 1, 256, device=DEVICE, dtype=DT)
            vis = (torch.arange(L, device=DEVICE) // S).view(1, L)
            return {"topk_ms": ms(lambda: landmark_topk_triton(qr, lm, 32, vis, gumbel_seed=1))}

        attempt("training", row, topk_train)


def decode(memories, topk=32, R=256):
    """One decode step per memory size: the decode top-K path (``topk_us``, the default merge: merge kernel
    with bitonic folds; its scan alone, ``scan_us``), the other merges in the same run (``topk_sort_us``: merge
    kernel sorting all candidates, the default before 2026-12-06; ``topk_ticket_us``: the merge fused into the
    scan by a ticket, with folds; ``*_same``: bit-identical to the default), the old streaming scan
    (``topk_old_us``), plain PyTorch, HSA over the chosen chunks, and
    4 and 16 queries at the largest memory (``decode_queries`` rows)."""
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode, landmark_topk_forward

    HQ, HK, D = 16, 1, 64
    for M in memories:
        N = M // S
        row = {"memory_tokens": M, "landmarks": N}

        def body():
            out = {}
            qr = torch.randn(1, 1, HK, R, device=DEVICE, dtype=DT)
            lm = torch.randn(1, N, HK, R, device=DEVICE, dtype=DT)
            vis = torch.full((1, 1), N, device=DEVICE)
            q = torch.randn(1, 1, HQ, D, device=DEVICE, dtype=DT)
            mk = torch.randn(1, M, HK, D, device=DEVICE, dtype=DT)
            mv = torch.randn(1, M, HK, D, device=DEVICE, dtype=DT)
            scores, idx = landmark_topk_triton(qr, lm, topk, vis)
            w = scores.softmax(-1).to(DT)
            old = landmark_topk_forward(qr, lm, topk, vis, 1.0, None)
            out["same_as_old"] = bool(torch.equal(old[1].sort(-1).values, idx.sort(-1).values))
            # the other merges: the same chunks in the same order and the same scores, bit for bit
            variants = {"sort": dict(merge="kernel", merge_by="sort"), "ticket": dict(merge="ticket", merge_by="fold")}
            for name, kw in variants.items():
                s_v, i_v = landmark_topk_decode(qr, lm, topk, vis, 1.0, None, **kw)
                out[f"{name}_same"] = bool(torch.equal(i_v, idx) and torch.equal(s_v, scores))
            lm2 = lm.view(N, R)
            tt = torch.topk((qr.view(1, R).float() @ lm2.float().T), topk).indices
            out["same_as_fp32_torch"] = bool(torch.equal(tt.sort(-1).values.view(-1), idx.sort(-1).values.view(-1)))

            def step():
                s, i = landmark_topk_triton(qr, lm, topk, vis)
                return hsa_attention_triton(q, mk, mv, i, s.softmax(-1).to(DT))

            with torch.no_grad():
                out["topk_us"] = 1e3 * ms(lambda: landmark_topk_triton(qr, lm, topk, vis), graph=True, rep=GRAPH_REP)
                out["scan_us"] = 1e3 * ms(lambda: landmark_topk_decode(qr, lm, topk, vis, 1.0, None, scan_only=True),
                                          graph=True, rep=GRAPH_REP)
                for name, kw in variants.items():
                    out[f"topk_{name}_us"] = 1e3 * ms(lambda: landmark_topk_decode(qr, lm, topk, vis, 1.0, None, **kw),
                                                      graph=True, rep=GRAPH_REP)
                out["topk_old_us"] = 1e3 * ms(lambda: landmark_topk_forward(qr, lm, topk, vis, 1.0, None),
                                              graph=True, rep=GRAPH_REP)
                out["hsa_us"] = 1e3 * ms(lambda: hsa_attention_triton(q, mk, mv, idx, w), graph=True, rep=GRAPH_REP)
                out["step_us"] = 1e3 * ms(step, graph=True, rep=GRAPH_REP)
                out["step_eager_us"] = 1e3 * ms(step, rep=100)
                out["torch_topk_us"] = 1e3 * ms(lambda: torch.topk(qr.view(1, R) @ lm2.T, topk),
                                                graph=True, rep=GRAPH_REP)
            floor_bytes = N * R * 2 + topk * S * D * 2 * 2 * HK
            out["floor_bytes_MB"] = floor_bytes / 1e6
            out["floor_us_at_3TBps"] = floor_bytes / 3.0e12 * 1e6
            out["step_GBps"] = floor_bytes / (out["step_us"] * 1e-6) / 1e9
            out["topk_GBps"] = N * R * 2 / (out["topk_us"] * 1e-6) / 1e9
            out["topk_ticket_GBps"] = N * R * 2 / (out["topk_ticket_us"] * 1e-6) / 1e9
            out["scan_GBps"] = N * R * 2 / (out["scan_us"] * 1e-6) / 1e9
            try:
                with torch.no_grad():
                    qd = q.transpose(1, 2)
                    kd, vd = mk.transpose(1, 2), mv.transpose(1, 2)  # (1, HK, M, D)
                    out["dense_sdpa_us"] = 1e3 * ms(lambda: F.scaled_dot_product_attention(qd, kd, vd, enable_gqa=True))
                    out["dense_floor_us"] = 2 * M * D * 2 * HK / 3.0e12 * 1e6
            except Exception as exc:
                out["dense_sdpa_us"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            return out

        attempt("decode", row, body)
    M = memories[-1]
    N = M // S
    for T in (4, 16):
        row = {"memory_tokens": M, "landmarks": N, "queries": T}

        def body16():
            qr = torch.randn(1, T, HK, R, device=DEVICE, dtype=DT)
            lm = torch.randn(1, N, HK, R, device=DEVICE, dtype=DT)
            vis = torch.full((1, T), N, device=DEVICE)
            with torch.no_grad():
                out = {"topk_us": 1e3 * ms(lambda: landmark_topk_triton(qr, lm, topk, vis), graph=True, rep=GRAPH_REP),
                       "topk_old_us": 1e3 * ms(lambda: landmark_topk_forward(qr, lm, topk, vis, 1.0, None),
                                               graph=True, rep=GRAPH_REP),
                       "torch_topk_us": 1e3 * ms(lambda: torch.topk(qr.view(T, R) @ lm.view(N, R).T, topk),
                                                 graph=True, rep=GRAPH_REP)}
                # the other merges (the ticket merge takes the T rows one after another in one program)
                base = landmark_topk_triton(qr, lm, topk, vis)
                for name, kw in (("sort", dict(merge="kernel", merge_by="sort")),
                                 ("ticket", dict(merge="ticket", merge_by="fold"))):
                    fn = lambda kw=kw: landmark_topk_decode(qr, lm, topk, vis, 1.0, None, **kw)
                    s_v, i_v = fn()
                    out[f"{name}_same"] = bool(torch.equal(i_v, base[1]) and torch.equal(s_v, base[0]))
                    out[f"topk_{name}_us"] = 1e3 * ms(fn, graph=True, rep=GRAPH_REP)
            out["topk_GBps"] = N * R * 2 / (out["topk_us"] * 1e-6) / 1e9
            return out

        attempt("decode_queries", row, body16)


def decode_topk_sweep(M=16 * 2 ** 20, topk=32, R=256):
    """Decode-path settings for one query (and 16) against the largest memory: the bandwidth-bound case.

    Knobs: landmark tile (block_n), landmark-dimension step (block_r), tiles per slice (None: the
    default slicing, about 4 programs per SM), warps, pipeline stages, and the merge (``merge``: "kernel" or
    "ticket", ``merge_by``: "sort" or "fold", ``merge_warps`` of the merge kernel; None: the default).
    ``scan_us`` is the scan alone (timed once per scan setting).
    """
    from hsa_memory.kernels.topk_retrieval.triton import landmark_topk_decode

    N = M // S
    lm = torch.randn(1, N, 1, R, device=DEVICE, dtype=DT)
    configs = [  # T, block_n, block_r, tiles_per_slice, warps, stages
        (1, 128, 64, None, 4, 3), (1, 128, 64, 1, 4, 3), (1, 128, 64, 4, 4, 3), (1, 128, 64, 8, 4, 3),
        (1, 64, 64, 1, 4, 3), (1, 64, 64, 4, 4, 3), (1, 256, 64, 1, 4, 3), (1, 256, 64, 2, 4, 3),
        (1, 128, 128, None, 4, 2), (1, 64, 256, None, 4, 2), (1, 128, 64, None, 8, 3), (1, 128, 64, None, 4, 2),
        (1, 128, 64, None, 4, 4),
        (16, 128, 64, None, 4, 3), (16, 64, 64, None, 4, 3), (16, 128, 64, 4, 8, 3),
    ]
    configs = [c + (None, None, None) for c in configs]
    # the merges beyond those ``decode`` times (kernel + sort, ticket + fold at the default slicing):
    # ticket + sort, ticket + fold on fewer and wider slices (8 tiles: half the slices), a one-warp fold merge
    configs += [(1, 128, 64, None, 4, 3, "ticket", "sort", None), (1, 128, 64, 8, 4, 3, "ticket", "fold", None),
                (1, 128, 64, None, 4, 3, "kernel", "fold", 1)]
    refs, scans = {}, {}
    for T, block_n, block_r, tiles, warps, stages, merge, merge_by, merge_warps in configs:
        row = {"queries": T, "block_n": block_n, "block_r": block_r, "tiles_per_slice": tiles, "num_warps": warps,
               "num_stages": stages, "merge": merge, "merge_by": merge_by, "merge_warps": merge_warps}

        def body():
            if T not in refs:
                qr = torch.randn(1, T, 1, R, device=DEVICE, dtype=DT)
                vis = torch.full((1, T), N, device=DEVICE)
                refs[T] = (qr, vis, landmark_topk_decode(qr, lm, topk, vis, 1.0, None)[1].sort(-1).values)
            qr, vis, ref = refs[T]
            kw = dict(block_n=block_n, block_r=block_r, tiles_per_slice=tiles, num_warps=warps, num_stages=stages)
            merge_kw = dict(merge=merge, merge_by=merge_by, merge_warps=merge_warps)
            fn = lambda: landmark_topk_decode(qr, lm, topk, vis, 1.0, None, **kw, **merge_kw)
            same = bool(torch.equal(fn()[1].sort(-1).values, ref))
            t = 1e3 * ms(fn, graph=True, rep=GRAPH_REP)
            key = (T, block_n, block_r, tiles, warps, stages)
            if key not in scans:
                scans[key] = 1e3 * ms(lambda: landmark_topk_decode(qr, lm, topk, vis, 1.0, None, scan_only=True, **kw),
                                      graph=True, rep=GRAPH_REP)
            return {"us": t, "scan_us": scans[key], "GBps": N * R * 2 / (t * 1e-6) / 1e9, "same_as_default": same}

        attempt("decode_topk_sweep", row, body)
    ok = [r for r in ROWS.get("decode_topk_sweep", []) if "us" in r and r["queries"] == 1]
    if ok:
        best = min(ok, key=lambda r: r["us"])
        print("decode_topk_sweep best (1 query):", json.dumps(best), flush=True)


def prefill(M=16 * 2 ** 20, T=512, topk=32, R=256):
    HQ, HK, D = 16, 1, 64
    N = M // S
    row = {"memory_tokens": M, "queries": T}

    def body():
        out = {}
        qr = torch.randn(1, T, HK, R, device=DEVICE, dtype=DT)
        lm = torch.randn(1, N, HK, R, device=DEVICE, dtype=DT)
        vis = torch.full((1, T), N, device=DEVICE)
        q = torch.randn(1, T, HQ, D, device=DEVICE, dtype=DT)
        mk = torch.randn(1, M, HK, D, device=DEVICE, dtype=DT)
        mv = torch.randn(1, M, HK, D, device=DEVICE, dtype=DT)

        def step():
            s, i = landmark_topk_triton(qr, lm, topk, vis)
            return hsa_attention_triton(q, mk, mv, i, s.softmax(-1).to(DT))

        def torch_topk():
            return torch.topk(qr.view(T, R) @ lm.view(N, R).T, topk)

        with torch.no_grad():
            for name, fn in (("step", step), ("topk", lambda: landmark_topk_triton(qr, lm, topk, vis)),
                             ("torch_topk", torch_topk)):
                out[f"{name}_ms"] = ms(fn)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                fn()
                torch.cuda.synchronize()
                out[f"{name}_peak_extra_MiB"] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
        out["scores_flop_TFLOPs"] = 2 * T * N * R / (out["topk_ms"] * 1e-3) / 1e12
        return out

    attempt("prefill", row, body)


def topk_kernel_resources():
    """Registers, spills and shared memory of every top-K kernel variant this run compiled (from the JIT)."""
    from hsa_memory.kernels.topk_retrieval import triton as tk

    keep = ("TOPK_PAD", "BLOCK_Q", "BLOCK_N", "BLOCK_R", "MULTI_TILE", "GUMBEL", "SPAD", "NSEL", "WIDTH")
    for name in ("topk_decode_scan_kernel", "topk_decode_merge_kernel", "topk_scan_kernel", "topk_finish_kernel"):
        fn = getattr(tk, name)
        for entry in getattr(fn, "device_caches", {}).values():
            cache = entry[0] if isinstance(entry, tuple) else entry
            for compiled in list(cache.values()):
                row = {"kernel": name}
                try:
                    compiled._init_handles()
                    consts = {}
                    for k, v in getattr(compiled.src, "constants", {}).items():
                        arg = fn.arg_names[k[0]] if isinstance(k, tuple) else k
                        if arg in keep:
                            consts[arg] = v
                    row.update(consts)
                    row.update(num_warps=compiled.metadata.num_warps, num_stages=compiled.metadata.num_stages,
                               n_regs=compiled.n_regs, n_spills=compiled.n_spills,
                               shared_KiB=compiled.metadata.shared / 1024)
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                record("topk_kernel_resources", row)


def swa(lengths, windows):
    from hsa_memory.kernels.swa.flex import sliding_window_attention_flex
    from hsa_memory.kernels.swa.sdpa import sliding_window_attention_sdpa

    B, HQ, HK, D = 1, 9, 3, 64
    for T in lengths:
        for window in windows:
            q = torch.randn(B, T, HQ, D, device=DEVICE, dtype=DT, requires_grad=True)
            k = torch.randn(B, T, HK, D, device=DEVICE, dtype=DT, requires_grad=True)
            v = torch.randn(B, T, HK, D, device=DEVICE, dtype=DT, requires_grad=True)
            sink = torch.zeros(HQ, device=DEVICE, requires_grad=True)
            do = torch.randn(B, T, HQ, D, device=DEVICE, dtype=DT)
            leaves = [q, k, v, sink]

            def timed(fn):
                def step():
                    fn().backward(do)

                return lambda: {"fwd_bwd_ms": ms(step, rep=300), "fwd_ms": ms(lambda: fn().detach())}

            options = {
                "triton (sink)": lambda: sliding_window_attention_triton(q, k, v, window, sink_logits=sink),
                "flex (sink by lse)": lambda: sliding_window_attention_flex(q, k, v, window, sink_logits=sink),
            }
            # SDPA with a mask, 1,024 queries at a time over their window, the sink as a zero key
            options["sdpa blocked mask (sink)"] = lambda: sliding_window_attention_sdpa(
                q, k, v, window, sink_logits=sink)
            qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            options["sdpa causal, no window (floor)"] = lambda: F.scaled_dot_product_attention(
                qt, kt, vt, is_causal=True, enable_gqa=True).transpose(1, 2)  # back to (B, T, HQ, D), as do
            for name, fn in options.items():
                attempt("swa", {"T": T, "window": window, "option": name}, timed(fn))
                for x in leaves:
                    x.grad = None


def markdown():
    lines = []
    for table, rows in ROWS.items():
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        lines.append(f"\n### {table}\n")
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * len(keys))
        for r in rows:
            cells = []
            for k in keys:
                v = r.get(k, "")
                cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".")
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--only", default="ceilings,training,decode,sweep,prefill,swa")
    parser.add_argument("--lengths", help="training/profile sequence lengths, e.g. 8192,16384 (overrides --quick's)")
    parser.add_argument("--profile-configs", choices=("sweep", "default"), default="sweep",
                        help="profile every layout of PROFILE_CONFIGS, or only the kernels' current defaults")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else None
    only = args.only.split(",")
    start = time.time()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, flush=True)
    if "ceilings" in only:
        attempt("ceilings", {}, ceilings)
    if "training" in only:
        training(lengths or ([4096, 8192] if args.quick else [4096, 8192, 16384, 32768, 65536, 131072]), [16, 32])
    if "profile" in only:
        training_profile(lengths or ([4096, 8192] if args.quick else [4096, 8192, 16384]), [16, 32],
                         PROFILE_CONFIGS if args.profile_configs == "sweep" else ({},))
    if "decode" in only:
        decode([65536, 2 ** 20] if args.quick else [65536, 2 ** 20, 4 * 2 ** 20, 16 * 2 ** 20])
    if "sweep" in only:
        decode_topk_sweep(M=2 ** 20 if args.quick else 16 * 2 ** 20)
    if "prefill" in only:
        prefill(M=2 ** 20 if args.quick else 16 * 2 ** 20)
    if any(x in only for x in ("decode", "sweep", "prefill", "training")):
        try:
            topk_kernel_resources()
        except Exception:
            traceback.print_exc()
    if "swa" in only:
        swa([8192] if args.quick else [8192, 32768], [512, 4096])
    text = markdown()
    print(text)
    print(f"\ntotal {time.time() - start:.0f} s")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_kernels.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "bench_kernels.json"), "w") as f:
        json.dump(ROWS, f, indent=1)


if __name__ == "__main__":
    main()
