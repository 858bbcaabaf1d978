"""Train the HSA modules of a retrofitted base: ``python -m hsa_memory.training.train --help``.

Base frozen; trainable: chunk encoder, retrieval + HSA layers, SWA sink logits, and with ``--lora-rank`` low-rank
deltas on the upper SWA layers. Stages follow the
paper's curriculum adapted to a retrofit (see training/LOG.md): warm-up with every chunk routed
(``--topk 0``), then sparse top-K, then longer sequences. Checkpoints are the project's tensors
only, in bf16, resumable; a time budget stops training with a checkpoint before the limit.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import random
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import torch

from hsa_memory.model.checkpoint import load_checkpoint, project_parameter_names, save_checkpoint
from hsa_memory.model.loading import load_model
from hsa_memory.model.memory import set_kernel_backend
from hsa_memory.model.modeling import (DecoderLayer, HSALayer, Retrieval, set_sliding_window,
                                       takes_lora)

from .batches import answer_weights, collate, collate_teacher
from .evaluate import evaluate, set_topk
from .objectives import (answer_loss, base_behaviour, copy_loss, decoy_loss, distill_loss, kl_to_base,
                         retrieval_loss)
from .step_profile import StepProfiler
from .tasks import FILLERS, job_stream, make_token_example, parse_mix

log = logging.getLogger("hsa_memory.training")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="hsa-smollm2-135m")
    p.add_argument("--resume", type=Path, help="checkpoint to start from (else fresh HSA modules)")
    p.add_argument("--out", type=Path, required=True, help="folder for checkpoints and metrics")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--encoder-lr-scale", type=float, default=0.1,
                   help="lr multiplier for the chunk encoder's transformer layer (copied from a pretrained base "
                        "layer: at the full lr it blew up and collapsed the landmarks in runs 1-3)")
    p.add_argument("--retrieval-weight", type=float, default=1.0,
                   help="weight of the router loss on the evidence chunks (0 = off)")
    p.add_argument("--decoy-weight", type=float, default=0.0,
                   help="weight of the hard-negative router loss: the evidence chunk over the decoy chunks (older "
                        "values, other keys; objectives.decoy_loss). 0 = off; its decoy_top1 is logged either way")
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--value-weight", type=float, default=1.0,
                   help="reply-loss weight of the tokens that spell the answer, against 1 for the wording around "
                        "them (1 = a plain mean over the reply, as in runs 1-14)")
    p.add_argument("--copy-weight", type=float, default=0.0,
                   help="weight of the in-chunk pointer loss: each answer token's query attends to that token in "
                        "the evidence (objectives.copy_loss); 0 = off")
    p.add_argument("--lora-rank", type=int, default=0,
                   help="add low-rank deltas of this rank (zero at start) to the q/k/v/o projections of the SWA layers "
                        "above the first HSA layer (HSAConfig.lora_rank), trained with the rest")
    p.add_argument("--supersession", action="store_true",
                   help="add the supersession penalty to weights trained without it (HSAConfig.hsa_supersession): "
                        "a pick loses fusion weight when a newer pick scores about as high")
    p.add_argument("--recency-bias", action="store_true",
                   help="add the recency-rank bias to weights trained without it (HSAConfig.hsa_recency_bias)")
    p.add_argument("--bias-lr-scale", type=float, default=1.0,
                   help="lr multiplier for the per-rank biases (slot and recency) and the supersession scalars: a few "
                        "scalars that must move by ~1")
    p.add_argument("--topk", type=int, default=None, help="routing top-K while training; 0 = every chunk (warm-up)")
    p.add_argument("--window", type=int, default=None, help="SWA window while training (default: the config's)")
    p.add_argument("--kl-weight", type=float, default=0.5)
    p.add_argument("--kl-positions", type=int, default=64)
    p.add_argument("--distill-weight", type=float, default=0.0,
                   help="self-distillation on the reply: KL to the base reading the evidence in its window")
    p.add_argument("--mix", default="", help="task weights, e.g. s_niah:0.5,agent_memory:0.5")
    p.add_argument("--filler", default="corpora", choices=list(FILLERS),
                   help="corpora+dialogue adds the base model's written dialogue (training.write_dialogue)")
    p.add_argument("--workers", type=int, default=max(1, (mp.cpu_count() or 2) - 2),
                   help="processes tokenising examples; 0 = in this process (tests, quick CPU checks)")
    p.add_argument("--time-budget", type=float, default=0, help="seconds; stop and checkpoint before this")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--gumbel", type=float, default=1.0, help="0 turns off Gumbel noise on selection")
    p.add_argument("--checkpointing", action="store_true", help="recompute layers in backward (less memory)")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="profile this many steps (after 5) of the run itself into OUT/profile.txt (training/step_profile.py)")
    p.add_argument("--eval", default="s_niah:2048,s_niah:8192", help="task:length pairs evaluated at the end")
    p.add_argument("--eval-count", type=int, default=16)
    p.add_argument("--eval-filler", default="corpora", choices=list(FILLERS),
                   help="filler of the end-of-run held-out sets: corpora alone by default, so runs trained with "
                        "or without written dialogue are judged on the same examples as the weights they resume")
    p.add_argument("--backend", default="auto", choices=["auto", "reference", "triton"],
                   help="kernels for SWA, top-K and HSA attention (check with training.backend_parity first)")
    args = p.parse_args(argv)
    # a weight at or below zero would push the answer's tokens (or the pointer) the wrong way: a usage error
    if args.value_weight <= 0:
        p.error("--value-weight must be positive (1 = a plain mean over the reply)")
    if args.copy_weight < 0:
        p.error("--copy-weight must be 0 (off) or positive")
    return args


def prepare(args):
    loaded = load_model(args.preset, checkpoint=args.resume, device=args.device, dtype=torch.float32)
    model = loaded.model
    config = model.config
    if args.window is not None:
        set_sliding_window(model, args.window)
    if args.resume is None:
        init_fresh(model)
    # fusion terms added to weights trained without them (each starts as a no-op)
    for wanted, field, enable in ((args.recency_bias, "hsa_recency_bias", "enable_recency_bias"),
                                  (args.supersession, "hsa_supersession", "enable_supersession")):
        if wanted and not getattr(config, field):
            setattr(config, field, True)
            for layer in model.model.layers:
                if isinstance(layer, HSALayer):
                    getattr(layer.retrieval, enable)()
            model.to(args.device)
    if args.lora_rank and not config.lora_rank:  # low-rank deltas added to weights trained without them
        config.lora_rank = args.lora_rank
        for index, layer in enumerate(model.model.layers):
            if takes_lora(config, index):
                layer.self_attn.enable_lora(args.lora_rank)
        model.to(args.device)
    elif args.lora_rank and args.lora_rank != config.lora_rank:
        raise SystemExit(f"--lora-rank {args.lora_rank}: the resumed weights already have rank {config.lora_rank}")
    trainable = set(project_parameter_names(model))
    params = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
        if name in trainable:
            params.append(param)
    return loaded, model, params


def fusion_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Every retrieval's per-rank biases (slot, recency) and supersession scalars, by parameter name: the
    few learned terms of the fusion softmax, trained at their own lr."""
    return {f"{name}.{attr}": param for name, module in model.named_modules() if isinstance(module, Retrieval)
            for attr in ("slot_bias", "recency_bias", "supersession")
            if (param := getattr(module, attr)) is not None}


def param_groups(model, params, lr_scale_encoder: float, lr_scale_bias: float = 1.0) -> list[dict]:
    """The encoder's pretrained-initialised transformer layers at a reduced lr, the per-rank biases of the
    retrieval softmax (slot, recency) and the supersession scalars at their own lr, the rest at the base lr."""
    encoder_layers = {id(p) for p in model.model.chunk_encoder.layers.parameters()}
    rank_biases = {id(p) for p in fusion_parameters(model).values()}
    slow = [p for p in params if id(p) in encoder_layers]
    biases = [p for p in params if id(p) in rank_biases]
    fast = [p for p in params if id(p) not in encoder_layers and id(p) not in rank_biases]
    groups = [{"params": fast, "lr_scale": 1.0}]
    if slow:
        groups.append({"params": slow, "lr_scale": lr_scale_encoder})
    if biases:
        groups.append({"params": biases, "lr_scale": lr_scale_bias})
    return groups


@torch.no_grad()
def init_fresh(model) -> None:
    """Encoder layer ← the first upper base layer (it reads the same hidden states); sinks at 0 so they learn.

    Only sinks that receive gradients start at 0: training runs the lower decoder without autograd
    (``frozen_lower``), so a lower-layer sink set to 0 would stay a fixed null key that changes the base
    (runs 1-3 shipped 15 such layers); those keep ``SINK_INIT`` (off).
    """
    lower = model.config.num_lower_layers
    source = model.model.layers[lower + 1] if model.config.layer_types[lower] == "hsa" else model.model.layers[lower]
    encoder_layer = model.model.chunk_encoder.layers[0]
    for name, param in encoder_layer.named_parameters():
        src = dict(source.named_parameters()).get(name)
        if src is not None and src.shape == param.shape:
            param.copy_(src)
    for layer in model.model.layers[lower:]:
        if isinstance(layer, DecoderLayer) and layer.self_attn.sink_logits is not None:
            layer.self_attn.sink_logits.zero_()


def lr_at(step: int, args, elapsed: float = 0.0) -> float:
    """Linear warm-up, then cosine to 0.1x. With a --time-budget the cosine follows whichever runs out first,
    steps or seconds: run 13 asked for 3,000 steps, its budget stopped it at 1,262 with the lr still at 0.66x
    peak, and those steps bought nothing (training/LOG.md, sessions 8-9)."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps)
    if args.time_budget:
        progress = max(progress, elapsed / args.time_budget)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batches(args, pool, split="train", seed=None):
    jobs = job_stream(parse_mix(args.mix), args.seq_len - 16, args.seed if seed is None else seed, args.filler, split)
    buffer = []
    made = pool.imap(make_token_example, jobs, chunksize=2) if pool is not None else map(make_token_example, jobs)
    for example in made:
        if example is None or len(example.input_ids) > args.seq_len or example.answer_start == 0:
            continue
        buffer.append(example)
        if len(buffer) == args.batch:
            yield buffer
            buffer = []


@torch.no_grad()
def landmark_spread(landmarks: torch.Tensor) -> float:
    """Mean ‖l − mean‖ / ‖l‖ over a sequence's chunks: ~0.7 for distinct landmarks, → 0 when they collapse."""
    lm = landmarks.detach().float()  # (B, C, R)
    centred = (lm - lm.mean(dim=1, keepdim=True)).norm(dim=-1)
    return (centred / lm.norm(dim=-1).clamp_min(1e-12)).mean().item()


def fusion_scalars(model: torch.nn.Module) -> dict[str, list[float]]:
    """``fusion_parameters``' values, for the log."""
    return {name: param.detach().float().flatten().tolist() for name, param in fusion_parameters(model).items()}


def train(args) -> dict:
    torch.manual_seed(args.seed)
    set_kernel_backend(args.backend)
    args.out.mkdir(parents=True, exist_ok=True)
    loaded, model, params = prepare(args)
    set_topk(model, args.topk, args.seq_len)
    model.model.gradient_checkpointing = args.checkpointing
    optimizer = torch.optim.AdamW(param_groups(model, params, args.encoder_lr_scale, args.bias_lr_scale), lr=args.lr,
                                  betas=(0.9, 0.95), weight_decay=0.01)
    hsa_layers = [layer for layer in model.model.layers if isinstance(layer, HSALayer)]
    retrievals = [layer.retrieval for layer in hsa_layers]
    device = torch.device(args.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    pad = model.config.eos_token_id
    metrics_path = args.out / "metrics.jsonl"
    started = time.time()
    ctx = mp.get_context("spawn")
    history = []
    # after a few warm-up steps (fewer in a run too short for five)
    profiler = StepProfiler(args.out, args.profile_steps, device.type,
                            skip=max(0, min(5, args.steps - args.profile_steps)))
    with (ctx.Pool(args.workers) if args.workers > 0 else nullcontext()) as pool:
        stream = batches(args, pool)
        for step in range(args.steps):
            fetch_started = time.time()
            examples = next(stream)
            # seconds the step waited for its batch: the data workers' share of the step time
            waited = time.time() - fetch_started
            inputs, labels = collate(examples, max(len(e.input_ids) for e in examples), pad)
            inputs, labels = inputs.to(device), labels.to(device)
            lr = lr_at(step, args, time.time() - started)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            model.train()
            with autocast:
                seed = args.seed * 100_000 + step if args.gumbel > 0 else None
                captures, copy_captures = [], []
                for retrieval in retrievals:
                    retrieval.capture = captures
                for layer in hsa_layers:
                    layer.copy_capture = copy_captures if args.copy_weight > 0 else None
                try:
                    hidden = model.model(inputs, gumbel_seed=seed, frozen_lower=True)
                finally:
                    # recomputation under gradient checkpointing must not capture again
                    for retrieval in retrievals:
                        retrieval.capture = None
                    for layer in hsa_layers:
                        layer.copy_capture = None
                weights = None
                if args.value_weight != 1.0:
                    weights = answer_weights(examples, labels.shape[1], args.value_weight).to(device)
                loss, stats = answer_loss(model, hidden, labels, weights)
                total = loss
                r_loss, r_stats = retrieval_loss(captures, [e.evidence_chunks for e in examples],
                                                 [e.answer_start for e in examples], model.config.chunk_size, labels)
                # hard negatives: computed without a graph when off, for the decoy_top1 statistic alone
                with torch.set_grad_enabled(args.decoy_weight > 0):
                    d_loss, d_stats = decoy_loss(captures, [e.evidence_chunks for e in examples],
                                                 [e.decoy_chunks for e in examples], [e.answer_start for e in examples],
                                                 model.config.chunk_size, labels)
                if d_loss is not None:
                    stats.update(d_stats, decoy_loss=d_loss.item())
                    if args.decoy_weight > 0:
                        total = total + args.decoy_weight * d_loss
                if captures:
                    stats["landmark_spread"] = landmark_spread(captures[0][1])
                del captures
                c_loss, c_stats = copy_loss(copy_captures, [e.copy_pairs for e in examples], model.config.chunk_size)
                del copy_captures
                if c_loss is not None:
                    stats.update(c_stats, copy_loss=c_loss.item())
                    total = total + args.copy_weight * c_loss
                if r_loss is not None:
                    stats.update(r_stats, retrieval_loss=r_loss.item())
                    if args.retrieval_weight > 0:
                        total = total + args.retrieval_weight * r_loss
                if args.kl_weight > 0:
                    with torch.no_grad(), base_behaviour(model):
                        teacher = model.model(inputs, use_hsa=False)
                    kl = kl_to_base(model, hidden, teacher, labels, args.kl_positions)
                    total = total + args.kl_weight * kl
                    stats["kl"] = kl.item()
                taught = collate_teacher(examples, pad) if args.distill_weight > 0 else None
                if taught is not None:
                    teacher_inputs, teacher_labels = (t.to(device) for t in taught)
                    with torch.no_grad(), base_behaviour(model):
                        teacher_hidden = model.model(teacher_inputs, use_hsa=False)
                    distill = distill_loss(model, hidden, labels, teacher_hidden, teacher_labels)
                    if distill is not None:
                        total = total + args.distill_weight * distill
                        stats["distill"] = distill.item()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
            optimizer.step()
            profiler.step()
            record = {"step": step, "loss": loss.item(), **stats, "grad_norm": grad_norm, "lr": lr,
                      "tokens": int(inputs.numel()), "data_wait_s": round(waited, 4), "elapsed": time.time() - started,
                      "tasks": sorted({e.task for e in examples})}
            history.append(record)
            with open(metrics_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if step % 10 == 0:
                log.info("step %d loss %.3f exact %.2f kl %.3f retrieval %.3f top1 %.2f decoy %.3f decoy-top1 %.2f "
                         "spread %.2f (%.0fs)", step,
                         record["loss"], record["exact"], record.get("kl", 0.0), record.get("retrieval_loss", float("nan")),
                         record.get("retrieval_top1", float("nan")), record.get("decoy_loss", float("nan")),
                         record.get("decoy_top1", float("nan")), record.get("landmark_spread", float("nan")),
                         record["elapsed"])
            out_of_time = args.time_budget and time.time() - started > args.time_budget
            if (step + 1) % args.save_every == 0 or step + 1 == args.steps or out_of_time:
                save_checkpoint(model, args.out / "checkpoint.safetensors", dtype=torch.bfloat16,
                                extra_metadata={"step": str(step + 1), "saved": datetime.now(timezone.utc).isoformat()})
            if out_of_time:
                log.info("time budget reached at step %d", step)
                break
    profiler.close()
    model.model.gradient_checkpointing = False
    set_topk(model, model.config.hsa_topk, args.seq_len)
    # the few learned fusion scalars, in the log itself: run 16's were known only from its checkpoint, lost
    # with the machine (slot and recency biases per rank; supersession as scale, margin, log temperature)
    for name, value in fusion_scalars(model).items():
        log.info("fusion %s %s", name, [round(v, 4) for v in value])
    evals = []
    for item in filter(None, args.eval.split(",")):
        task, _, length = item.partition(":")
        evals.append(evaluate(model, task, int(length), count=args.eval_count, filler=args.eval_filler))
        log.info("eval %s", evals[-1])
    with open(args.out / "eval.jsonl", "a") as handle:
        for result in evals:
            handle.write(json.dumps({**result, "steps": len(history)}) + "\n")
    return {"steps": len(history), "last": history[-1] if history else None, "seconds": time.time() - started,
            "eval": evals}


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    summary = train(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
