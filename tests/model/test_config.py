"""Scenarios: presets validate and round-trip through JSON; bad configs name the bad values;
paper-shaped presets have the sizes their names claim."""
import dataclasses

import pytest
import torch

from hsa_memory.model import PRESETS, ConfigError, HSAConfig, HSAForCausalLM, get_preset
from hsa_memory.model.config import LATER_FIELDS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_json_round_trip(name):
    config = get_preset(name)
    assert HSAConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("field", sorted(LATER_FIELDS))
def test_a_later_field_is_written_only_when_set(field):
    """hsa_recency_bias, hsa_supersession, ...: off, they stay out of the JSON, so older configs and the model
    digest every memory records are unchanged; on, they round-trip."""
    config = get_preset("tiny")
    assert field not in config.to_json()
    assert getattr(HSAConfig.from_json(config.to_json()), field) == LATER_FIELDS[field]
    default = LATER_FIELDS[field]
    value = (not default) if isinstance(default, bool) else default + 4
    on = dataclasses.replace(config, **{field: value})
    assert getattr(HSAConfig.from_json(on.to_json()), field) == value


def test_default_layout_has_two_hsa_groups_in_upper_half():
    config = get_preset("hsa-smollm2-135m")
    assert config.num_lower_layers == 15
    assert config.hsa_layer_indices == [15, 24]
    assert config.layer_types.count("swa") == 30


@pytest.mark.parametrize("changes, message", [
    ({"num_heads": 9, "num_kv_heads": 4}, "num_heads=9 is not a multiple of num_kv_heads=4"),
    ({"hsa_heads": 10, "hsa_kv_heads": 4}, "hsa_heads=10"),
    ({"layer_types": ["hsa", "swa"]}, "first layer is 'hsa'"),
    ({"layer_types": ["swa", "mamba"]}, "unknown entries ['mamba']"),
    ({"hsa_topk": 0}, "hsa_topk=0"),
    ({"lora_rank": -1}, "lora_rank=-1"),
    ({"moe_num_experts": 4, "moe_top_k": 5, "moe_intermediate_size": 8}, "moe_top_k=5"),
])
def test_invalid_config_names_values(changes, message):
    data = get_preset("tiny").to_dict()
    data.update(changes)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        HSAConfig.from_dict(data)


def test_bad_json_and_unknown_fields():
    with pytest.raises(ConfigError, match="not valid JSON"):
        HSAConfig.from_json("{nope")
    with pytest.raises(ConfigError, match="unknown HSAConfig fields \\['colour'\\]"):
        HSAConfig.from_dict({**get_preset("tiny").to_dict(), "colour": "red"})


def _count(config: HSAConfig) -> tuple[int, int]:
    """(total, active) parameters, computed on the meta device (no memory)."""
    with torch.device("meta"):
        model = HSAForCausalLM(config)
    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    if config.moe_num_experts:
        per_expert = 3 * config.hidden_size * config.moe_intermediate_size
        moe_layers = sum(1 for i, t in enumerate(config.layer_types) if t == "swa" and i >= config.moe_first_dense_layers)
        inactive = moe_layers * (config.moe_num_experts - config.moe_top_k) * per_expert
    return total, total - inactive


def test_paper_shaped_presets_have_their_advertised_sizes():
    total, _ = _count(get_preset("hsa-ultralong-0.5b"))
    assert 0.45e9 < total < 0.7e9
    total, active = _count(get_preset("hsa-ultralong-8b-a1b"))
    assert 7.5e9 < total < 9e9
    assert 0.8e9 < active < 1.3e9
