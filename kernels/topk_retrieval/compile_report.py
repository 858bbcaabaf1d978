"""Offline sm_90 compile of the top-K kernels: registers, spills and shared memory, no GPU needed.

``python -m kernels.topk_retrieval.compile_report [NAME FILTER]`` from the repo root compiles the configurations the benchmark
launches for R = 256, bf16, K = 32 with ``triton.compile(..., target=GPUTarget("cuda", 90, 32))`` and
prints ``cuobjdump --dump-resource-usage`` for each (STACK > 0 means spilled registers), the opt-in decode
merges included (the scan with the ticket merge fused in, sorting or folding; the fold merge kernel).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import triton as tk

TARGET = GPUTarget("cuda", 90, 32)


def _cuobjdump():
    here = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    return here if os.path.exists(here) else "cuobjdump"


def compile_report(kernel, args: dict, num_warps=4, num_stages=3, ptx=None):
    """args: name -> a type string ("*bf16", "i32:16" = i32 divisible by 16, ...) or a constexpr value.

    ``ptx``: a path to write the kernel's PTX to (to read how atomics and barriers were lowered)."""
    signature, constexprs, attrs = {}, {}, {}
    for i, name in enumerate(kernel.arg_names):
        v = args[name]
        if isinstance(v, str) and (v.startswith("*") or v.split(":")[0] in ("i32", "i64", "fp32")):
            ty, _, hint = v.partition(":")
            signature[name] = ty
            if hint == "16" or ty.startswith("*"):
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "constexpr"
            constexprs[name] = v
    src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    backend = triton.compiler.make_backend(TARGET)
    options = backend.parse_options({"num_warps": num_warps, "num_stages": num_stages})
    ck = triton.compile(src, target=TARGET, options=options.__dict__)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(ck.asm["cubin"])
        f.flush()
        out = subprocess.run([_cuobjdump(), "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", out)
    regs, stack, shared = (int(x) for x in m.groups())
    text = ck.asm["ptx"]
    if ptx:
        with open(ptx, "w") as f:
            f.write(text)
    return {"regs": regs, "stack": stack, "smem_KiB": round((shared + ck.metadata.shared) / 1024, 1),
            "wgmma": "wgmma" in text, "cp.async": "cp.async" in text or "cp.async.bulk" in text}


STRIDES = {n: "i32" for n in ("stride_qb", "stride_qt", "stride_qh", "stride_lb", "stride_ln", "stride_lh")}
# contiguous (B, N, HK, R) tensors with R = 256: every stride is a multiple of 16, as the JIT specialises
STRIDES = {n: "i32:16" for n in STRIDES}


def old_decode_scan(dtype="bf16", K=32, block_n=64, block_r=256, warps=4, stages=3):
    kpad = max(4, triton.next_power_of_2(K))
    args = dict(q_ptr="*" + dtype, l_ptr="*" + dtype, vis_ptr="*i64", part_ptr="*i64", **STRIDES,
                T=1, HK=1, N="i32:16", R="i32:16", n_per_split="i32:16", n_splits="i32",
                scale="fp32", seed_hash="i64",
                TOPK_PAD=kpad, BLOCK_Q=16, BLOCK_N=block_n, BLOCK_R=block_r,
                LOG_N_OVER_K=tk._log2(block_n // kpad), INSERT_LIMIT=tk.INSERT_LIMIT, GUMBEL=False,
                DOT_PRECISION="tf32")
    return compile_report(tk.topk_scan_kernel, args, warps, stages)


def _merge_consts(K, n_slices, fold):
    return tk.decode_merge_constants(n_slices, max(4, triton.next_power_of_2(K)), fold)


def decode_scan(dtype="bf16", K=32, T=1, HK=1, block_n=128, block_r=64, multi=False, gumbel=False, warps=4, stages=3,
                ticket=False, fold=False, n_slices=512, ptx=None):
    kpad = max(4, triton.next_power_of_2(K))
    args = dict(q_ptr="*" + dtype, l_ptr="*" + dtype, vis_ptr="*i64", part_ptr="*i64", max_ptr="*i64",
                score_ptr="*fp32", index_ptr="*i64", count_ptr="*i32", **STRIDES,
                T=T if T == 1 else "i32", HK=HK, N="i32:16", R="i32:16", slice_n="i32:16", n_slices="i32",
                scale="fp32", seed_hash="i64", topk="i32",
                TOPK_PAD=kpad, BLOCK_Q=triton.next_power_of_2(T), QPAD=16, BLOCK_N=block_n, BLOCK_R=block_r,
                LOG_N_OVER_K=tk._log2(block_n // kpad), MULTI_TILE=multi, GUMBEL=gumbel,
                DOT_PRECISION="ieee" if dtype == "fp32" else "tf32", TICKET=ticket, MERGE_BLOCK_R=min(block_r, 64),
                **_merge_consts(K, n_slices, fold))
    return compile_report(tk.topk_decode_scan_kernel, args, warps, stages, ptx)


def decode_merge(dtype="bf16", K=32, n_slices=1024, gumbel=False, warps=None, fold=False):
    consts = _merge_consts(K, n_slices, fold)
    args = dict(part_ptr="*i64", max_ptr="*i64", q_ptr="*" + dtype, l_ptr="*" + dtype, score_ptr="*fp32",
                index_ptr="*i64", **STRIDES, T=1, HK=1, R=256, n_slices="i32:16", slice_n="i32:16", topk="i32",
                scale="fp32", TOPK_PAD=max(4, triton.next_power_of_2(K)), BLOCK_R=64, GUMBEL=gumbel, **consts)
    width = max(consts["SPAD"], consts["NSEL"] * args["TOPK_PAD"])
    return compile_report(tk.topk_decode_merge_kernel, args, warps or (4 if width <= 1024 else 8), 1)


def main():
    print("triton", triton.__version__, "target", TARGET)
    rows = [("old topk_scan_kernel decode (16 q x 64 lm, R tile 256)", lambda: old_decode_scan())]
    for T in (1, 16):
        for bn, br, w, st in ((128, 64, 4, 3), (64, 64, 4, 3), (256, 64, 4, 3), (128, 128, 4, 2), (64, 256, 4, 2),
                              (128, 64, 8, 3), (128, 64, 4, 4)):
            for multi in (False, True):
                rows.append((f"decode scan T={T} BLOCK_N={bn} BLOCK_R={br} warps={w} stages={st} multi={multi}",
                             lambda T=T, bn=bn, br=br, w=w, st=st, multi=multi:
                             decode_scan(T=T, block_n=bn, block_r=br, warps=w, stages=st, multi=multi)))
    rows.append(("decode scan T=1 K=64 multi", lambda: decode_scan(K=64, multi=True)))
    rows.append(("decode scan T=16 K=64 multi", lambda: decode_scan(K=64, T=16, multi=True)))
    rows.append(("decode scan T=1 gumbel multi", lambda: decode_scan(gumbel=True, multi=True)))
    rows.append(("decode scan T=1 fp32 multi", lambda: decode_scan(dtype="fp32", block_r=32, multi=True, warps=8)))
    rows.append(("decode scan T=1 HK dynamic multi", lambda: decode_scan(HK="i32", multi=True)))
    rows.append(("decode scan T=1 fp16 multi", lambda: decode_scan(dtype="fp16", multi=True)))
    for ns in (8, 1024, 2048, 4096):
        rows.append((f"decode merge K=32 slices={ns}", lambda ns=ns: decode_merge(n_slices=ns)))
    rows.append(("decode merge K=64 slices=1024", lambda: decode_merge(K=64)))
    rows.append(("decode merge K=32 slices=1024 gumbel", lambda: decode_merge(gumbel=True)))
    # the merge variants (``merge`` / ``merge_by`` of landmark_topk_decode) at the H100's 16M-token slicing
    rows.append(("decode merge K=32 slices=512 sort", lambda: decode_merge(n_slices=512)))
    for ns in (512, 4096):
        rows.append((f"decode merge K=32 slices={ns} fold", lambda ns=ns: decode_merge(n_slices=ns, fold=True)))
    for fold in (False, True):
        for T, gumbel in ((1, False), (1, True), (16, False)):
            rows.append((f"decode scan+ticket T={T} multi gumbel={gumbel} fold={fold}",
                         lambda T=T, gumbel=gumbel, fold=fold: decode_scan(T=T, multi=True, gumbel=gumbel,
                                                                           ticket=True, fold=fold)))
    rows.append(("decode scan+ticket T=1 fp32 multi fold", lambda: decode_scan(dtype="fp32", block_r=32, multi=True,
                                                                               warps=8, ticket=True, fold=True)))
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    for name, fn in rows:
        if only not in name:
            continue
        try:
            print(f"{name}: {fn()}", flush=True)
        except Exception as exc:  # a config that fails to compile is a result too
            print(f"{name}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)


if __name__ == "__main__":
    main()
