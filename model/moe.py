"""Mixture of experts with a shared expert and auxiliary-loss-free load balancing.

Routing follows DeepSeek-V3: sigmoid affinities pick the top-k experts after adding a per-expert
bias that is *not* trained by gradients; instead ``update_balance_bias`` nudges it toward the
experts that got too few tokens. The gate weights use the unbiased affinities, so balancing never
distorts what the model computes for a chosen expert.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SwiGLU(nn.Module):
    """The Llama MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(hidden_states)) * self.up_proj(hidden_states))


class MoE(nn.Module):
    """Routed top-k experts plus always-on shared experts."""

    def __init__(self, hidden_size: int, intermediate_size: int, num_experts: int, top_k: int,
                 shared_experts: int, bias_update_rate: float):
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.bias_update_rate = bias_update_rate
        self.router = nn.Linear(hidden_size, num_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(hidden_size, intermediate_size) for _ in range(num_experts))
        self.shared = SwiGLU(hidden_size, intermediate_size * shared_experts) if shared_experts else None
        # selection-only bias of the loss-free balancer, and the token count per expert of the last batch
        self.register_buffer("balance_bias", torch.zeros(num_experts), persistent=True)
        self.register_buffer("last_load", torch.zeros(num_experts), persistent=False)

    def route(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Experts (N, k) and their gate weights (N, k) for flat tokens (N, d)."""
        affinity = torch.sigmoid(self.router(tokens).float())  # (N, E)
        chosen = torch.topk(affinity + self.balance_bias, self.top_k, dim=-1).indices  # (N, k)
        gates = affinity.gather(-1, chosen)
        gates = gates / gates.sum(-1, keepdim=True).clamp_min(1e-9)
        return chosen, gates

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = hidden_states.shape
        tokens = hidden_states.reshape(-1, shape[-1])  # (N, d)
        chosen, gates = self.route(tokens)
        output = torch.zeros_like(tokens, dtype=torch.float32)
        flat_expert = chosen.reshape(-1)  # (N·k,)
        flat_token = torch.arange(tokens.shape[0], device=tokens.device).repeat_interleave(self.top_k)
        flat_gate = gates.reshape(-1)
        order = torch.argsort(flat_expert, stable=True)
        counts = torch.bincount(flat_expert, minlength=self.num_experts)
        if self.training:
            self.last_load.copy_(counts.float())
        start = 0
        for expert_id, count in enumerate(counts.tolist()):
            if count == 0:
                continue
            rows = order[start:start + count]
            start += count
            token_ids = flat_token[rows]
            expert_out = self.experts[expert_id](tokens[token_ids])
            output.index_add_(0, token_ids, expert_out.float() * flat_gate[rows, None])
        if self.shared is not None:
            output = output + self.shared(tokens).float()
        return output.to(hidden_states.dtype).reshape(shape)

    @torch.no_grad()
    def update_balance_bias(self, load: torch.Tensor | None = None) -> None:
        """Raise the bias of under-loaded experts and lower it for over-loaded ones (call per step)."""
        load = self.last_load if load is None else load.float()
        self.balance_bias += self.bias_update_rate * torch.sign(load.mean() - load)
