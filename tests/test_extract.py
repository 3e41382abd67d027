"""extract-lora: a LoRA adapter from a fully fine-tuned model (tiny random Mistral; no real weights)."""

import json

import numpy as np
import pytest
import torch

from prompt_recovery import models
from prompt_recovery.errors import UserError
from prompt_recovery.training.extract import ExtractConfig, extract, low_rank


def test_low_rank_is_exact_up_to_the_rank_and_reports_the_energy_kept():
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(12, 3, generator=g) @ torch.randn(3, 10, generator=g)  # rank 3
    b, a, kept = low_rank(delta, 3)
    assert b.shape == (12, 3) and a.shape == (3, 10)
    assert torch.allclose(b @ a, delta, atol=1e-5) and kept == pytest.approx(1.0)
    b1, a1, kept1 = low_rank(delta, 1)
    s = torch.linalg.svdvals(delta.double())
    assert kept1 == pytest.approx(float(s[0] ** 2 / (s ** 2).sum()), rel=1e-6) and kept1 < 1
    assert torch.linalg.matrix_rank(b1 @ a1) == 1
    b8, a8, kept8 = low_rank(delta, 16)  # a rank above the matrix's size: zero-padded to the adapter's shape
    assert b8.shape == (12, 16) and a8.shape == (16, 10) and torch.allclose(b8 @ a8, delta, atol=1e-5)


def _tuned(tmp_path, rank: int, embedding: bool = False):
    """A 'full fine-tune' of the tiny Mistral: a rank-`rank` change to every targeted linear layer (and to
    the untied embedding and output layer with `embedding`)."""
    model, tok = models.tiny_random("mistral")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "v_proj.weight", "down_proj.weight")) or (
                    embedding and name.endswith(("embed_tokens.weight", "lm_head.weight"))):
                out, inp = p.shape
                p += 0.3 * torch.randn(out, rank, generator=g) @ torch.randn(rank, inp, generator=g) / inp ** 0.5
    d = tmp_path / "tuned"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    (d / models.ADAPTER_META).write_text(json.dumps({"prompt_format": {"name": "chat", "max_text_tokens": 64},
                                                     "base_model": "tiny-random-mistral"}))
    return d, model.eval()


def test_extracted_adapter_reproduces_a_low_rank_fine_tune(tmp_path):
    tuned_dir, tuned = _tuned(tmp_path, rank=2)
    out, stats = extract(ExtractConfig(tuned=str(tuned_dir), rank=4, dtype="float32", output_dir=str(tmp_path / "a"),
                                       target_modules=["q_proj", "v_proj", "down_proj"]))
    assert stats["kept"] == pytest.approx(1.0, abs=1e-6) and stats["layers"] == 3 * 2  # 2 layers in the tiny model
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 4
    assert not (out / "README.md").exists()  # no training files to describe it: no card (and not PEFT's generic one)
    loaded = models.load("tiny-random-mistral", str(out))  # base model named by the fine-tune's metadata
    assert loaded.adapter_meta["prompt_format"]["max_text_tokens"] == 64
    ids = torch.randint(4, 300, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = tuned(input_ids=ids).logits, loaded.model(input_ids=ids).logits
        plain = models.tiny_random("mistral")[0].eval()(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    assert (plain - want).abs().max() > 1e-2  # the fine-tune changed the model: not a vacuous comparison


def test_a_smaller_rank_keeps_less_and_bad_inputs_are_one_line_errors(tmp_path):
    tuned_dir, _ = _tuned(tmp_path, rank=4)
    (tuned_dir / "train_config.yaml").write_text("model: tiny-random-mistral\nfinetune: full\nlearning_rate: 5.0e-05\n")
    (tuned_dir / "train_summary.json").write_text(json.dumps({"examples": 10, "train_seconds": 60}))
    _, stats = extract(ExtractConfig(tuned=str(tuned_dir), rank=1, output_dir=str(tmp_path / "a1")))
    assert 0 < stats["kept"] < 0.9
    readme = (tmp_path / "a1" / "README.md").read_text()  # the project's adapter card, saying where it came from
    assert "# prompt-recovery LoRA adapter" in readme and "rank-1 truncated SVD" in readme and "| fine-tuning | full |" in readme
    saved = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(tmp_path / "a1" / "adapter_model.safetensors"))
    assert saved and all(v.dtype == torch.bfloat16 for v in saved.values())
    with pytest.raises(UserError, match="not a fully fine-tuned model directory"):
        extract(ExtractConfig(tuned=str(tmp_path), output_dir=str(tmp_path / "x")))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an adapter folder"):
        extract(ExtractConfig(tuned=str(tuned_dir), output_dir=str(tmp_path / "busy")))
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def _tied_pair(tmp_path, base_dir):
    """A 'full fine-tune' of `tied_base` (output layer tied to the embedding, as in SmolLM2): rank-2 changes
    to q_proj and to the shared embedding/output weight."""
    from transformers import AutoModelForCausalLM

    tok = models.load_tokenizer(str(base_dir))
    tuned = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if name.endswith(("q_proj.weight", "embed_tokens.weight")):
                out, inp = p.shape
                p += 0.5 * torch.randn(out, 2, generator=g) @ torch.randn(2, inp, generator=g) / inp ** 0.5
    assert tuned.lm_head.weight is tuned.model.embed_tokens.weight
    tuned.save_pretrained(tmp_path / "tuned")
    tok.save_pretrained(tmp_path / "tuned")
    (tmp_path / "tuned" / models.ADAPTER_META).write_text(json.dumps({"prompt_format": {"name": "chat"},
                                                                      "base_model": str(base_dir)}))
    return base_dir, tmp_path / "tuned", tuned


def test_the_embedding_change_is_extracted_and_moves_the_tied_output_layer(tmp_path, tied_base):
    from safetensors.torch import load_file

    from prompt_recovery.inference import gguf_merge

    base_dir, tuned_dir, tuned = _tied_pair(tmp_path, tied_base)
    out, stats = extract(ExtractConfig(tuned=str(tuned_dir), rank=4, dtype="float32", output_dir=str(tmp_path / "a"),
                                       target_modules=["q_proj"]))
    assert stats["embedding"] and stats["layers"] == 2 + 1  # q_proj in 2 layers + the embedding
    assert stats["kept"] == pytest.approx(1.0, abs=1e-6)  # the tied tensor counted once, wholly kept
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["ensure_weight_tying"] is True and "embed_tokens" in cfg["target_modules"]
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_embedding_A" in k for k in saved)
    assert not any("base_layer" in k for k in saved)  # the factors only, not a copy of the base embedding
    ids = torch.randint(4, 300, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = tuned(input_ids=ids).logits
        merged = models.load(str(base_dir), str(out))
        unmerged = models.load(str(base_dir), str(out), merge=False)
        got, got_unmerged = merged.model(input_ids=ids).logits, unmerged.model(input_ids=ids).logits
        plain = models.load(str(base_dir), "none").model(input_ids=ids).logits
    assert (plain - want).abs().max() > 1e-2
    assert torch.allclose(got_unmerged, want, atol=1e-4), (got_unmerged - want).abs().max()
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()  # the shared delta merged once, not twice
    assert merged.model.lm_head.weight is merged.model.model.embed_tokens.weight
    # the llama.cpp merge adds the same embedding delta (the GGUF of a tied model has no output.weight)
    _, deltas = gguf_merge.read_lora(out)
    base_emb = models.load_base(str(base_dir), "cpu", "float32")[0].model.embed_tokens.weight.detach()
    assert "output.weight" not in deltas
    np.testing.assert_allclose(deltas["token_embd.weight"], (tuned.model.embed_tokens.weight.detach() - base_emb).numpy(),
                               atol=1e-5)
    # without the embedding: the output layer's change is lost
    _, lin = extract(ExtractConfig(tuned=str(tuned_dir), rank=4, dtype="float32", output_dir=str(tmp_path / "b"),
                                   target_modules=["q_proj"], embedding=False))
    assert not lin["embedding"] and lin["layers"] == 2 and lin["kept"] < 0.9
    with torch.no_grad():
        lost = models.load(str(base_dir), str(tmp_path / "b")).model(input_ids=ids).logits
    assert (lost - want).abs().max() > 1e-2


def test_an_untied_output_layer_is_extracted_as_a_linear_layer(tmp_path):
    tuned_dir, tuned = _tuned(tmp_path, rank=2, embedding=True)
    out, stats = extract(ExtractConfig(tuned=str(tuned_dir), rank=4, output_dir=str(tmp_path / "a"),
                                       target_modules=["q_proj", "v_proj", "down_proj"]))
    assert stats["embedding"] and stats["layers"] == 3 * 2 + 2  # + embedding + output layer
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert not cfg["ensure_weight_tying"] and {"embed_tokens", "lm_head"} <= set(cfg["target_modules"])
    from safetensors.torch import load_file

    assert all(v.dtype == torch.bfloat16 for v in load_file(str(out / "adapter_model.safetensors")).values())
    ids = torch.randint(4, 300, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = tuned(input_ids=ids).logits, models.load("tiny-random-mistral", str(out)).model(input_ids=ids).logits
    assert torch.allclose(got, want, atol=0.05), (got - want).abs().max()  # bfloat16 factors
