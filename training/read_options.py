"""Ask-side read settings shared by the evaluation scripts (training.evaluate, training.fluency): the same
weights read with another SWA window or with in-window chunks left out of routing (runtime fields only)."""
from __future__ import annotations

import argparse

import torch

from hsa_memory.model.modeling import set_sliding_window


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=int, help="SWA window at inference (a runtime field; default: the config's)")
    parser.add_argument("--window-layers", choices=("all", "upper"), default="all",
                        help="upper: widen only the layers above the first HSA layer (the stream state and "
                             "landmarks made by the lower layers stay as stored)")
    parser.add_argument("--skip-window", action="store_true",
                        help="route only to chunks not wholly inside the SWA window (HSAConfig.hsa_skip_window)")


def apply_read_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, model: torch.nn.Module) -> dict:
    """Set the chosen read settings on ``model``; returns them (for the output rows), empty when none."""
    if args.window is not None and args.window < 1:
        parser.error(f"--window must be a positive number of tokens, got {args.window}")
    chosen: dict = {}
    if args.window is not None:
        set_sliding_window(model, args.window, upper_only=args.window_layers == "upper")
        chosen.update(window=args.window, window_layers=args.window_layers)
    if args.skip_window:
        model.config.hsa_skip_window = True
        chosen["skip_window"] = True
    return chosen
