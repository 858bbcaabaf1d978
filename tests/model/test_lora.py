"""Low-rank deltas on the upper SWA layers (``HSAConfig.lora_rank``): zero at start, removed by the KL teacher's
base behaviour, saved and refused like every other config field, and added by training to weights without them."""
import pytest
import torch

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hsa_memory.model.modeling import HSALayer, takes_lora


def perturb(model: HSAForCausalLM, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers:
            if not isinstance(layer, HSALayer) and layer.self_attn.lora is not None:
                for delta in layer.self_attn.lora.values():
                    delta.up.copy_(torch.randn(delta.up.shape, generator=gen) * 0.5)


def test_only_the_swa_layers_above_the_first_hsa_layer_take_deltas(tiny_hsa):
    model = tiny_hsa(lora_rank=4)
    config = model.config
    first = config.hsa_layer_indices[0]
    for index, layer in enumerate(model.model.layers):
        has = not isinstance(layer, HSALayer) and layer.self_attn.lora is not None
        assert has == takes_lora(config, index) == (index > first and config.layer_types[index] == "swa")
    shapes = {name: tuple(d.down.shape) + tuple(d.up.shape)
              for name, d in model.model.layers[first + 1].self_attn.lora.items()}
    attn = model.model.layers[first + 1].self_attn
    assert shapes["q"] == (4, attn.q_proj.in_features, attn.q_proj.out_features, 4)
    assert shapes["o"] == (4, attn.o_proj.in_features, attn.o_proj.out_features, 4)


def test_zero_deltas_leave_the_model_unchanged_and_trained_ones_change_it(tiny_hsa):
    plain = tiny_hsa(seed=3)
    with_it = tiny_hsa(seed=3, lora_rank=4)
    missing, unexpected = with_it.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".lora." in name for name in missing)
    ids = torch.randint(0, 49152, (1, 300))
    torch.testing.assert_close(plain(ids).logits, with_it(ids).logits)
    perturb(with_it)
    assert (plain(ids).logits - with_it(ids).logits).abs().max() > 1e-3


def test_the_kl_teacher_runs_without_the_deltas(tiny_hsa):
    from hsa_memory.training.objectives import base_behaviour

    plain = tiny_hsa(seed=3)
    with_it = tiny_hsa(seed=3, lora_rank=4)
    with_it.load_state_dict(plain.state_dict(), strict=False)
    perturb(with_it)
    ids = torch.randint(0, 49152, (1, 200))
    with base_behaviour(plain):
        want = plain(ids, use_hsa=False).logits
    with base_behaviour(with_it):
        got = with_it(ids, use_hsa=False).logits
    torch.testing.assert_close(got, want)
    # and they are back afterwards
    assert (with_it(ids).logits - plain(ids).logits).abs().max() > 1e-3


def test_checkpoints_with_and_without_deltas_refuse_each_other(tmp_path, tiny_hsa):
    model = tiny_hsa(lora_rank=4)
    perturb(model)
    path = save_checkpoint(model, tmp_path / "with.safetensors")
    again = tiny_hsa(seed=1, lora_rank=4)
    load_checkpoint(again, path)
    # the file holds the project's tensors only (the tiny base differs by seed), in bf16: close, not equal
    saved = {k: v for k, v in model.state_dict().items() if ".lora." in k}
    loaded = {k: v for k, v in again.state_dict().items() if ".lora." in k}
    assert saved.keys() == loaded.keys() and saved
    for name in saved:
        torch.testing.assert_close(loaded[name], saved[name], rtol=1e-2, atol=1e-2, msg=name)
    with pytest.raises(CheckpointError, match="lora_rank"):
        load_checkpoint(HSAForCausalLM(get_preset("tiny")), path)
    plain_path = save_checkpoint(HSAForCausalLM(get_preset("tiny")), tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="lora_rank"):
        load_checkpoint(tiny_hsa(lora_rank=4), plain_path)


def test_training_adds_deltas_to_a_checkpoint_without_them(tiny_hsa, train_tiny):
    trained = train_tiny(tiny_hsa(), "--lora-rank", "4")
    assert trained.config.lora_rank == 4
    ups = [delta.up for index, layer in enumerate(trained.model.layers) if takes_lora(trained.config, index)
           for delta in layer.self_attn.lora.values()]
    assert ups and all(up.abs().max() > 0 for up in ups), "every delta moved off zero in three steps"


def test_training_refuses_another_rank_than_the_resumed_weights_have(tmp_path, tiny_hsa):
    from hsa_memory.training.train import parse_args, prepare

    resume = save_checkpoint(tiny_hsa(lora_rank=4), tmp_path / "rank4.safetensors")
    args = parse_args(["--preset", "tiny", "--resume", str(resume), "--out", str(tmp_path / "run"),
                       "--device", "cpu", "--lora-rank", "8"])
    with pytest.raises(SystemExit, match="already have rank 4"):
        prepare(args)
