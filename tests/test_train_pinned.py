"""Pinned numbers: the loss trace of a fixed tiny training run, and export's merged model against the adapter.

    python -m pytest -q tests/test_train_pinned.py

The loss values were recorded with torch 2.13.0 (CPU) on the tiny random Mistral of `models.tiny_random`
(seeded), the toy fixture rows and the settings of `tiny_cfg` (conftest.py). A change to data order, prompt
format, label masking, loss, optimizer or schedule moves them; a real change must update the pins here on
purpose. The tolerance allows for float summation order on other CPUs (AVX2 vs AVX-512 kernels).
"""

import json
from pathlib import Path

import pytest
import torch

from prompt_recovery import models
from prompt_recovery.training.export import ExportConfig, export
from prompt_recovery.training.train import train

PINNED_LOSSES = [7.21483, 5.96483, 5.02956, 4.02046, 2.55990, 2.19263]


def test_loss_trace_is_pinned(tmp_path, tiny_cfg):
    train(tiny_cfg(tmp_path / "run", max_steps=6, logging_steps=1))
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    losses = [r["loss"] for r in map(json.loads, log) if "loss" in r]
    assert losses == pytest.approx(PINNED_LOSSES, rel=2e-3), losses


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """A LoRA adapter with non-zero B matrices (a freshly initialised one would merge to the base unchanged)."""
    from peft import LoraConfig, get_peft_model

    base, _ = models.tiny_random("mistral")
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    (out / models.ADAPTER_META).write_text(json.dumps({"prompt_format": {"name": "chat", "max_text_tokens": 64}}))
    return out


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_exported_model_gives_the_adapter_models_logits(adapter_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    out = export(ExportConfig(adapter=str(adapter_dir), model="tiny-random-mistral", output_dir=str(tmp_path / "m")))
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    base, _, _ = models.load_base("tiny-random-mistral", "cpu", "float32")
    reference = models.attach_adapter(base, str(adapter_dir)).eval()
    ids = torch.randint(4, 300, (2, 24), generator=torch.Generator().manual_seed(1))

    want = _logits(reference, ids)
    got = _logits(merged, ids)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    plain, _ = models.tiny_random("mistral")
    assert (_logits(plain.eval(), ids) - want).abs().max() > 1e-2  # the adapter changes the model: not a no-op check
    assert not any("lora" in k for k in merged.state_dict())
    assert json.loads((Path(out) / models.ADAPTER_META).read_text())["prompt_format"]["max_text_tokens"] == 64
    # loaded as a model with no adapter, the export keeps the adapter's prompt format (from its own folder)
    assert models.load(str(out), adapter="none").adapter_meta["prompt_format"]["max_text_tokens"] == 64
