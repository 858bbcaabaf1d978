"""``train.py --profile-steps``: a real run profiles some of its own steps, and every step records its data wait."""
import json

from hsa_memory.model import HSAForCausalLM, get_preset
from hsa_memory.model.checkpoint import save_checkpoint
from hsa_memory.training.train import parse_args, train


def test_a_run_profiles_its_own_steps(tmp_path):
    resume = save_checkpoint(HSAForCausalLM(get_preset("tiny")), tmp_path / "start.safetensors")
    out = tmp_path / "run"
    train(parse_args(["--preset", "tiny", "--resume", str(resume), "--out", str(out), "--steps", "3",
                      "--batch", "2", "--seq-len", "512", "--mix", "agent_memory:1", "--filler", "fallback",
                      "--workers", "0", "--eval", "", "--kl-positions", "8", "--device", "cpu",
                      "--backend", "reference", "--profile-steps", "1"]))
    text = (out / "profile.txt").read_text()
    assert "self_cpu_time_total" in text
    # the model's own work shows up among the operators (matrix products of its layers)
    assert "aten::" in text and ("aten::mm" in text or "aten::addmm" in text or "aten::linear" in text)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["data_wait_s"] >= 0 for r in records)
