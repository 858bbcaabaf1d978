"""The SWA window is a runtime field (``set_sliding_window``): the same weights read a wider window, either in
every layer or only in the layers above the first HSA layer (the lower layers make the stored landmarks and
stream state, so an ask-time change must leave them alone)."""
import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.modeling import DecoderLayer, HSALayer, set_sliding_window, takes_lora


def windows(model: HSAForCausalLM) -> dict[int, int | None]:
    return {i: layer.self_attn.window for i, layer in enumerate(model.model.layers) if isinstance(layer, DecoderLayer)}


def test_upper_only_widens_exactly_the_layers_above_the_first_hsa_layer():
    model = HSAForCausalLM(get_preset("tiny"))
    config = model.config
    before = windows(model)
    changed = set_sliding_window(model, 4 * config.sliding_window, upper_only=True)
    after = windows(model)
    upper = {i for i in after if takes_lora(config, i)}
    assert changed == len(upper) > 0 and len(upper) < len(after)
    for i, window in after.items():
        assert window == (4 * before[i] if i in upper else before[i]), i
    assert config.sliding_window == before[0]  # the stream state's window: unchanged


def test_all_layers_and_the_config_follow_and_a_wide_window_equals_full_attention():
    torch.manual_seed(0)
    model = HSAForCausalLM(get_preset("tiny")).eval()
    S = model.config.sliding_window
    tokens = torch.randint(0, model.config.vocab_size, (1, 4 * S))
    with torch.no_grad():
        narrow = model.model(tokens, use_hsa=False)
        assert set_sliding_window(model, 8 * S) == len(windows(model))
        assert model.config.sliding_window == 8 * S
        wide = model.model(tokens, use_hsa=False)
        set_sliding_window(model, None)
        full = model.model(tokens, use_hsa=False)
    assert not torch.allclose(narrow, wide)  # the window mattered at this length
    torch.testing.assert_close(wide, full)  # a window over the whole sequence is full attention


def test_visible_chunks_stops_before_the_chunks_the_window_shows_in_full():
    from hsa_memory.model.memory import visible_chunks

    S, W = 4, 10  # the window of position p covers p-9 .. p
    positions = torch.arange(40)
    plain = visible_chunks(positions, S)
    skipped = visible_chunks(positions, S, W)
    assert torch.equal(plain, positions // S)
    for p in range(40):
        # a chunk c is wholly inside the window when c*S >= p - W + 1; the rest stay routable
        expected = sum(1 for c in range(p // S) if c * S < p - W + 1)
        assert skipped[p].item() == expected, p
    assert skipped[:W].eq(0).all()  # nothing outside the window yet


def test_skip_window_routes_only_beyond_the_window_and_is_a_runtime_field(tmp_path):
    import dataclasses

    from hsa_memory.model.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(1)
    # a window of 3 chunks (the tiny preset's 32 tokens hold no whole 64-token chunk)
    config = dataclasses.replace(get_preset("tiny"), sliding_window=3 * get_preset("tiny").chunk_size)
    model = HSAForCausalLM(config).eval()
    S, W = model.config.chunk_size, model.config.sliding_window
    T = 8 * S
    tokens = torch.randint(0, model.config.vocab_size, (1, T))

    def picked(skip: bool) -> list[tuple[int, int]]:
        """(position, chunk id) of every pick of every HSA layer, read from the routers' outputs."""
        model.config.hsa_skip_window = skip
        outputs = []
        hooks = [layer.retrieval.register_forward_hook(lambda m, i, out: outputs.append(out[0][0]))
                 for layer in model.model.layers if isinstance(layer, HSALayer)]
        with torch.no_grad():
            model(tokens)
        for hook in hooks:
            hook.remove()
        return [(p, c) for ids in outputs for p in range(ids.shape[0]) for c in ids[p].flatten().tolist() if c >= 0]

    plain, skipped = picked(False), picked(True)
    assert any(c * S >= p - W + 1 for p, c in plain)  # without the switch, chunks in the window are picked
    assert skipped and all(c * S < p - W + 1 for p, c in skipped)
    path = tmp_path / "w.safetensors"
    save_checkpoint(model, path)
    other = HSAForCausalLM(dataclasses.replace(config, hsa_skip_window=False))
    load_checkpoint(other, path)  # a runtime field: a checkpoint saved with it on loads into a model with it off


def test_a_window_below_one_token_is_refused_and_changes_nothing():
    model = HSAForCausalLM(get_preset("tiny"))
    before = windows(model), model.config.sliding_window
    for bad in (0, -5):
        with pytest.raises(ValueError, match="positive number of tokens"):
            set_sliding_window(model, bad)
    assert (windows(model), model.config.sliding_window) == before


def test_the_scripts_refuse_a_bad_window_by_name():
    import argparse

    from hsa_memory.training.read_options import add_read_arguments, apply_read_arguments

    parser = argparse.ArgumentParser()
    add_read_arguments(parser)
    model = HSAForCausalLM(get_preset("tiny"))
    with pytest.raises(SystemExit):
        apply_read_arguments(parser, parser.parse_args(["--window", "0"]), model)
    assert apply_read_arguments(parser, parser.parse_args([]), model) == {}
    chosen = apply_read_arguments(parser, parser.parse_args(["--window", "64", "--skip-window"]), model)
    assert chosen == {"window": 64, "window_layers": "all", "skip_window": True}
    assert model.config.sliding_window == 64 and model.config.hsa_skip_window
