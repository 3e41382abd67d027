"""LoRA training on a tiny random Mistral: loss, which weights change, reload, resume, 2-process DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prompt_recovery import models
from prompt_recovery.prompting import get_format, prompt_ids
from prompt_recovery.train import RecoveryDataset, TrainConfig, load_rows, split_by_original, train

TOY = str(Path(__file__).parent / "fixtures" / "toy_triples.csv")


def tiny_cfg(out, **kw):
    base = dict(train_data=TOY, output_dir=str(out), model="tiny-random-mistral", val_fraction=0.2,
                learning_rate=3e-2, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=30,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                warmup_ratio=0.0, logging_steps=1, lora_r=8, lora_alpha=16, lora_dropout=0.0, max_text_tokens=64,
                max_length=128, seed=0, lr_scheduler_type="constant")
    base.update(kw)
    return TrainConfig(**base)


def log_records(out):
    return [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(tiny_cfg(out))


def test_loss_is_finite_and_decreases(trained):
    losses = [r["loss"] for r in log_records(trained.output_dir) if "loss" in r]
    assert len(losses) >= 25 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5, losses


def test_only_lora_weights_change(trained):
    fresh, _ = models.tiny_random("mistral")
    trained_sd = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                  for k, v in trained.model.state_dict().items()}
    for name, w in fresh.state_dict().items():
        assert torch.equal(trained_sd[name], w), f"base weight {name} changed"
    lora_b = [v for k, v in trained.model.state_dict().items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: non-zero means trained
    saved = load_file(str(trained.output_dir / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)


def test_output_directory_contents(trained):
    out = trained.output_dir
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "train_config.yaml",
              "train_log.jsonl", "loss.png", "README.md", "prompt_recovery.json"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "prompt_recovery.json").read_text())
    assert meta["prompt_format"] == {"name": "chat", "max_text_tokens": 64}
    card = (out / "README.md").read_text()
    assert "| LoRA rank r | 8 |" in card and "tiny-random-mistral" in card and "training time" in card
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_saved_adapter_reloads_and_generates_the_same_tokens(trained):
    from peft import PeftModel

    fresh, tok = models.tiny_random("mistral")
    reloaded = PeftModel.from_pretrained(fresh, trained.output_dir).eval()
    model = trained.model.eval()
    ids = torch.tensor([prompt_ids(tok, "The cat sat on the mat.", "Arr the cat be on the mat.",
                                   get_format("chat", 64, tok))])
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        assert torch.equal(model.generate(input_ids=ids, **kw), reloaded.generate(input_ids=ids, **kw))


def test_dataset_labels_keep_eos_and_typos_change_inputs():
    tok = models.tiny_tokenizer(True)
    rows = load_rows(TOY)
    fmt = get_format("chat", 64, tok)
    clean = RecoveryDataset(rows, tok, fmt, 128)
    ex = clean[0]
    assert ex["labels"][-1] == tok.eos_token_id and ex["input_ids"][-1] == tok.eos_token_id
    noisy = RecoveryDataset(rows, tok, fmt, 128, typo_rate=0.3, typo_fraction=1.0)
    assert any(noisy[i]["input_ids"] != clean[i]["input_ids"] for i in range(len(rows)))
    # the target instruction is never noised
    for i in range(len(rows)):
        assert [x for x in noisy[i]["labels"] if x != -100] == [x for x in clean[i]["labels"] if x != -100]


def test_split_by_original_is_disjoint():
    rows = load_rows(TOY) * 2
    tr, va = split_by_original(rows, 0.34, 0)
    assert tr and va and not {r["original_text"] for r in tr} & {r["original_text"] for r in va}
    assert len(tr) + len(va) == len(rows)


def test_resume_continues_the_step_count(tmp_path, capsys):
    out = tmp_path / "resume"
    train(tiny_cfg(out, max_steps=4, eval_steps=2, save_total_limit=3))
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    res = train(tiny_cfg(out, max_steps=6, eval_steps=2, save_total_limit=3))
    assert "resuming from" in capsys.readouterr().out
    steps = [r["step"] for r in log_records(out) if "loss" in r]
    assert steps[:4] == [1, 2, 3, 4] and steps[4:] == [5, 6]  # no step repeated after the restart
    assert json.loads((out / "train_summary.json").read_text())["global_steps"] == 6
    assert res.metrics["train_loss"] > 0


def test_cli_errors_for_bad_training_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,original_text,rewritten_text\n1,a,b\n")
    res = subprocess.run([sys.executable, "-m", "prompt_recovery.cli", "train", str(bad), "--model",
                          "tiny-random-mistral", "--output-dir", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "missing column(s) rewrite_prompt" in res.stderr
    res = subprocess.run([sys.executable, "-m", "prompt_recovery.cli", "train", TOY, "--precision", "fp16",
                          "--model", "tiny-random-mistral", "--output-dir", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "fp16 training needs a GPU" in res.stderr


def test_two_process_ddp_on_cpu_saves_one_adapter(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "prompt_recovery.cli", "train", TOY,
           "--model", "tiny-random-mistral", "--output-dir", str(out), "--max-steps", "4",
           "--per-device-train-batch-size", "1", "--gradient-accumulation-steps", "1", "--learning-rate", "1e-2",
           "--val-fraction", "0.2", "--max-text-tokens", "64", "--max-length", "128", "--logging-steps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_steps"] == 4
    assert (out / "adapter_model.safetensors").is_file()
    assert len(list(out.glob("adapter_model*.safetensors"))) == 1


def test_card_collects_evaluation_reports(trained, tmp_path):
    from prompt_recovery.card import add_evaluation

    report = {"metrics": {"n": 3, "scs": 0.25, "bleu": 12.5, "token_f1": 0.4, "category_accuracy": 0.5,
                          "exact_match": 0.0},
              "ci": {"scs": [0.2, 0.3], "bleu": [10.0, 15.0]},
              "baselines": [{"name": "constant: Improve it.", "metrics": {"n": 3, "scs": 0.05, "bleu": 1.0}}]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    add_evaluation(trained.output_dir, {"adapter, dev": path}, note="toy rows")
    ev = json.loads((trained.output_dir / "evaluation.json").read_text())
    assert ev["adapter, dev"]["scs"] == [0.25, 0.2, 0.3] and ev["adapter, dev"]["token_f1"] == 0.4
    assert ev["constant: Improve it. (dev)"]["scs"] == 0.05
    card = (trained.output_dir / "README.md").read_text()
    assert "## Evaluation" in card and "toy rows" in card and "0.2500 [0.2000, 0.3000]" in card
    assert "| LoRA rank r | 8 |" in card  # the training sections survive the refresh
