"""LoRA training on a tiny random Mistral: loss, which weights change, reload, resume, 2-process DDP."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prompt_recovery import models
from prompt_recovery.prompting import get_format, prompt_ids
from prompt_recovery.training.dataset import RecoveryDataset, hold_out_originals, load_rows
from prompt_recovery.training.train import train

TOY = str(Path(__file__).parent / "fixtures" / "toy_triples.csv")


def log_records(out):
    return [json.loads(line) for line in (Path(out) / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_cfg):
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
    assert meta["prompt_format"] == {"name": "chat", "max_text_tokens": 64, "length_hint": False}
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


def test_recoverer_uses_the_length_hint_the_adapter_records(trained, tmp_path):
    """An adapter trained with `length_hint` records it; `Recoverer.load` reads it back, so recovery prompts
    carry the same Length line as the training examples (and adapters without it get none)."""
    import shutil

    from prompt_recovery import Recoverer

    plain = Recoverer.load("tiny-random-mistral", str(trained.output_dir), backend="transformers")
    assert plain.prompt_format.length_hint is False
    hinted_dir = tmp_path / "hinted"
    shutil.copytree(trained.output_dir, hinted_dir, ignore=shutil.ignore_patterns("checkpoints"))
    meta = json.loads((hinted_dir / models.ADAPTER_META).read_text())
    meta["prompt_format"]["length_hint"] = True
    (hinted_dir / models.ADAPTER_META).write_text(json.dumps(meta))
    hinted = Recoverer.load("tiny-random-mistral", str(hinted_dir), backend="transformers")
    assert hinted.prompt_format == plain.prompt_format.__class__("chat", 64, True)
    text = hinted.tokenizer.decode(hinted.prompt_ids("one two three four", "one"))
    assert "Length: original 4 words, rewritten 1 words (4.0 times shorter)." in text
    assert "Length:" not in plain.tokenizer.decode(plain.prompt_ids("one two three four", "one"))


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


def test_hold_out_originals_is_disjoint():
    rows = load_rows(TOY) * 2
    tr, va = hold_out_originals(rows, 0.34, 0)
    assert tr and va and not {r["original_text"] for r in tr} & {r["original_text"] for r in va}
    assert len(tr) + len(va) == len(rows)


def test_hold_out_originals_compares_normalised_originals_and_keeps_the_old_selection():
    """Copies of an original that differ in case, punctuation or spacing stay on one side (as in `data split`);
    where no two originals differ only so, the rows held out are those the raw-text comparison held out."""
    import random

    rows = [{"original_text": f"Text number {i}.", "rewrite_prompt": "p", "rewritten_text": "r"} for i in range(40)]
    originals = sorted({r["original_text"] for r in rows})  # the previous, raw-text selection
    random.Random(7).shuffle(originals)
    old_held = set(originals[:int(round(len(originals) * 0.25))])
    tr, va = hold_out_originals(rows, 0.25, 7)
    assert {r["original_text"] for r in va} == old_held and len(tr) + len(va) == len(rows)

    copies = rows + [{**r, "original_text": r["original_text"].upper().replace(".", " !")} for r in rows]
    tr, va = hold_out_originals(copies, 0.25, 7)
    assert len(va) == 2 * len(old_held)
    assert not {r["original_text"].lower().strip(" .!") for r in tr} & {r["original_text"].lower().strip(" .!") for r in va}


def test_resume_continues_the_step_count(tmp_path, capsys, tiny_cfg):
    out = tmp_path / "resume"
    train(tiny_cfg(out, max_steps=4, eval_steps=2, save_total_limit=3))
    assert (out / "checkpoints" / "checkpoint-4").is_dir()
    res = train(tiny_cfg(out, max_steps=6, eval_steps=2, save_total_limit=3))
    assert "resuming from" in capsys.readouterr().out
    steps = [r["step"] for r in log_records(out) if "loss" in r]
    assert steps[:4] == [1, 2, 3, 4] and steps[4:] == [5, 6]  # no step repeated after the restart
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_steps"] == 6 and summary["resumed_from_step"] == 4  # it timed updates 5-6 only
    assert "for updates 5-6 (resumed from the checkpoint at update 4" in (out / "README.md").read_text()
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
    from prompt_recovery.training.card import add_evaluation

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


def test_learning_rate_follows_warmup_then_cosine(tmp_path, tiny_cfg):
    """warmup_ratio is resolved to whole steps on every transformers version (0.3 of 10 updates = 3)."""
    import math

    out = tmp_path / "sched"
    train(tiny_cfg(out, max_steps=10, warmup_ratio=0.3, lr_scheduler_type="cosine", learning_rate=1e-3,
                   val_fraction=0.0, val_data=None, max_val_rows=0))
    lrs = {r["step"]: r["learning_rate"] for r in log_records(out) if "learning_rate" in r}

    def expected(step):  # transformers' cosine schedule with 3 warm-up steps, as logged after `step` updates
        s = step - 1
        if s < 3:
            return 1e-3 * s / 3
        return 1e-3 * 0.5 * (1 + math.cos(math.pi * (s - 3) / 7))

    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["warmup_steps"] == 3 and isinstance(summary["warmup_steps"], int)
    assert set(lrs) >= set(range(1, 11))
    for step in range(1, 11):
        assert lrs[step] == pytest.approx(expected(step), abs=1e-9), (step, lrs)


def test_warmup_steps_resolution():
    from types import SimpleNamespace

    from prompt_recovery.errors import UserError
    from prompt_recovery.training.train import total_steps, warmup_steps

    a = SimpleNamespace(max_steps=-1, per_device_train_batch_size=1, world_size=2, gradient_accumulation_steps=4,
                        num_train_epochs=3)
    assert total_steps(100, a) == 3 * math.ceil(50 / 4)
    assert warmup_steps(0.1, total_steps(100, a)) == 4
    assert warmup_steps(0.0, 39) == 0
    a.max_steps = 7
    assert total_steps(100, a) == 7
    with pytest.raises(UserError):
        warmup_steps(1.5, 10)


def test_packed_batch_gives_the_same_loss_and_lora_gradients_as_separate_examples():
    """Packing (one row, position ids restarting) computes what padded separate examples compute."""
    from peft import LoraConfig, get_peft_model

    from prompt_recovery.training.dataset import make_collator

    torch.manual_seed(0)
    base, tok = models.tiny_random("mistral")
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False)).float().eval()
    rows = load_rows(TOY)[:4]
    ds = RecoveryDataset(rows, tok, get_format("chat", 64, tok), 128)
    feats = [ds[i] for i in range(len(ds))]
    assert len({len(f["input_ids"]) for f in feats}) > 1  # different lengths: padding would be needed

    def per_example_losses(batch):
        out = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False)
        logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
        return logits, labels

    packed = make_collator(tok, True, None)(feats)
    assert packed["input_ids"].shape[0] == 1 and "position_ids" in packed
    assert packed["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in feats)  # no padding at all
    padded = make_collator(tok, False, None)(feats)

    def loss_and_grads(batch):
        model.zero_grad()
        logits, labels = per_example_losses(batch)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                                 ignore_index=-100)
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        return loss.detach(), grads, logits.detach(), labels

    lp, gp, logits_p, labels_p = loss_and_grads(packed)
    lu, gu, logits_u, labels_u = loss_and_grads(padded)
    assert lp == pytest.approx(lu.item(), rel=1e-5)
    assert gp.keys() == gu.keys() and gp and len(gp) % 6 == 0  # A and B of 3 modules per layer
    for n in gp:
        torch.testing.assert_close(gp[n], gu[n], rtol=1e-4, atol=1e-6)
    # and example by example: the packed row's target logits equal each padded row's
    mask_p = labels_p[0] != -100
    targets_u = torch.cat([logits_u[i][labels_u[i] != -100] for i in range(len(feats))])
    torch.testing.assert_close(logits_p[0][mask_p], targets_u, rtol=1e-4, atol=1e-5)


def test_packed_training_lowers_loss_and_changes_only_lora_weights(tmp_path, tiny_cfg):
    res = train(tiny_cfg(tmp_path / "packed", packing=True, per_device_train_batch_size=3, max_steps=20))
    losses = [r["loss"] for r in log_records(res.output_dir) if "loss" in r]
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5, losses
    fresh, _ = models.tiny_random("mistral")
    sd = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in res.model.state_dict().items()}
    assert all(torch.equal(sd[n], w) for n, w in fresh.state_dict().items())


def test_auto_precision_on_cpu_follows_what_is_fast_here(monkeypatch):
    from prompt_recovery import hardware
    from prompt_recovery.training.train import precision_flags

    assert hardware.native_bf16({"avx2", "avx512_bf16"}) and hardware.native_bf16({"amx_bf16"})
    assert not hardware.native_bf16({"avx2", "fma", "avx512f"})
    hardware.bf16_faster_than_fp32.cache_clear()
    monkeypatch.setattr(hardware, "native_bf16", lambda flags=None: False)
    assert hardware.bf16_faster_than_fp32() is False  # no native bf16: not even measured
    hardware.bf16_faster_than_fp32.cache_clear()
    monkeypatch.setattr(hardware, "bf16_faster_than_fp32", lambda: False)
    assert precision_flags("auto", "cpu") == ({}, "float32")
    monkeypatch.setattr(hardware, "bf16_faster_than_fp32", lambda: True)
    assert precision_flags("auto", "cpu") == ({"bf16": True}, "float32")
    assert precision_flags("fp32", "cpu") == ({}, "float32")


def test_target_logit_loss_equals_the_full_loss_with_the_same_gradients():
    """Logits only at the instruction positions: the same loss and LoRA gradients as the model's own loss."""
    from peft import LoraConfig, get_peft_model

    from prompt_recovery.training.dataset import make_collator
    from prompt_recovery.training.train import target_logit_loss, target_positions

    torch.manual_seed(0)
    base, tok = models.tiny_random("llama")
    base.config.use_cache = False
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False)).float()
    rows = load_rows(TOY)[:3]
    ds = RecoveryDataset(rows, tok, get_format("chat", 64, tok), 128)
    batch = make_collator(tok, False, 32)([ds[i] for i in range(len(ds))])
    keep = target_positions(batch["labels"])
    n_labels = int((batch["labels"] != -100).sum())
    assert 0 < len(keep) < batch["labels"].shape[1] // 2  # most positions are prompt: their logits are skipped

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    full = model(**batch).loss
    g_full = grads(full)
    mine, out = target_logit_loss(model, batch)
    assert out.logits.shape[1] == len(keep)
    g_mine = grads(mine)
    assert mine.item() == pytest.approx(full.item(), rel=1e-5)
    for n in g_full:
        torch.testing.assert_close(g_mine[n], g_full[n], rtol=1e-4, atol=1e-6)
    # with gradient accumulation the Trainer passes the token count of all micro-batches
    summed, _ = target_logit_loss(model, batch, num_items_in_batch=2 * n_labels)
    assert summed.item() == pytest.approx(full.item() / 2, rel=1e-5)


def test_full_fine_tune_trains_every_weight_and_reloads_as_a_model(tmp_path, tiny_cfg):
    """`finetune: full` trains the base weights themselves and writes a whole model that `--model DIR
    --adapter none` loads with the prompt format it was trained with (read from the model folder)."""
    from prompt_recovery import Recoverer

    out = tmp_path / "full"
    res = train(tiny_cfg(out, finetune="full", learning_rate=3e-3, max_steps=20, length_hint=True))
    losses = [r["loss"] for r in log_records(out) if "loss" in r]
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5, losses
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    fresh, _ = models.tiny_random("mistral")
    saved = load_file(str(out / "model.safetensors"))
    changed = [k for k, w in fresh.state_dict().items() if k in saved and not torch.equal(saved[k], w)]
    assert len(changed) >= 0.9 * len(saved), f"only {len(changed)} of {len(saved)} weights trained"
    assert "fully fine-tuned" in (out / "README.md").read_text() and "LoRA rank" not in (out / "README.md").read_text()

    rec = Recoverer.load(str(out), "none", backend="transformers")
    assert rec.prompt_format == rec.prompt_format.__class__("chat", 64, True)
    ids = torch.tensor([rec.prompt_ids("The cat sat on the mat.", "Arr the cat be on the mat.")])
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=rec.tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.equal(res.model.eval().generate(input_ids=ids, **kw), rec.loaded.model.generate(input_ids=ids, **kw))


def test_full_fine_tune_refuses_a_lora_start(tmp_path, tiny_cfg):
    from prompt_recovery.errors import UserError

    with pytest.raises(UserError, match="init_adapter starts a LoRA run"):
        tiny_cfg(tmp_path, finetune="full", init_adapter=str(tmp_path)).validate()


def test_a_lora_on_the_tied_embedding_moves_the_output_layer_too(tmp_path, tiny_cfg, tied_base):
    """target_modules with embed_tokens on a model whose output layer is tied to it: one LoRA delta for both
    (ensure_weight_tying), saved as factors only; the merged model answers as the trained one."""
    out = tmp_path / "run"
    res = train(tiny_cfg(out, model=str(tied_base), target_modules=["q_proj", "embed_tokens"], max_steps=10))
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["ensure_weight_tying"] is True
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_embedding_A" in k for k in saved) and all("lora_" in k for k in saved)  # no base embedding copy
    emb = res.model.base_model.model.model.embed_tokens
    assert emb.lora_embedding_B["default"].abs().sum() > 0  # starts at zero: trained
    ids = torch.randint(4, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = res.model.eval()(input_ids=ids).logits
        merged = models.load(str(tied_base), str(out)).model
        plain = models.load(str(tied_base), "none").model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert (plain - want).abs().max() > 1e-3
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    assert merged.lm_head.weight is merged.model.embed_tokens.weight


def test_a_signal_saves_a_checkpoint_at_the_update_under_way_and_the_run_resumes(tmp_path, capsys, tiny_cfg):
    """SIGTERM during training (here sent by the run to itself after update 3): the update finishes, a checkpoint is
    saved at it although 3 is not a save step, no model or summary is written, `Interrupted` carries exit status 143;
    the same config then resumes from update 3 and finishes, the log showing every update once."""
    import signal as sig

    from transformers import TrainerCallback

    from prompt_recovery.errors import Interrupted

    class SendAfterUpdate3(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                os.kill(os.getpid(), sig.SIGTERM)

    out = tmp_path / "stopped"
    handler_before = sig.getsignal(sig.SIGTERM)
    with pytest.raises(Interrupted) as info:
        train(tiny_cfg(out, max_steps=8, eval_steps=3, save_total_limit=1), callbacks=[SendAfterUpdate3()])
    assert info.value.exit_code == 128 + sig.SIGTERM and "at update 4 of 8" in str(info.value)
    assert sig.getsignal(sig.SIGTERM) is handler_before  # the handler is put back
    # the signal came after the stop callback had looked at update 3: update 4 is where the flag is read
    # the best checkpoint (3) and the stop's: transformers would keep only the best under save_total_limit 1
    assert "checkpoint-4" in [p.name for p in (out / "checkpoints").iterdir()]
    assert not (out / "train_summary.json").exists() and not (out / "adapter_model.safetensors").exists()
    assert "saving a checkpoint after this update" in capsys.readouterr().err

    res = train(tiny_cfg(out, max_steps=8, eval_steps=3, save_total_limit=1))
    assert "resuming from" in (printed := capsys.readouterr().out) and "checkpoint-4" in printed
    steps = [r["step"] for r in log_records(out) if "loss" in r]
    assert steps == list(range(1, 9))
    assert json.loads((out / "train_summary.json").read_text())["global_steps"] == 8 and res.metrics["train_loss"] > 0


def test_sigterm_to_the_launcher_stops_both_processes_at_one_checkpoint(tmp_path):
    """`prompt-recovery train` with 2 CPU processes, SIGTERM to the command once updates are logged: it asks the
    workers to stop (a stop file), they agree on one update (all-reduced flag), save a checkpoint there and exit
    cleanly; the command exits 143 with a one-line message and no traceback, and the same command resumes from that
    checkpoint to the end."""
    import signal as sig
    import time

    out = tmp_path / "ddp_stop"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "prompt_recovery.cli", "train", TOY, "--model", "tiny-random-mistral",
           "--output-dir", str(out), "--processes", "2", "--per-device-train-batch-size", "1",
           "--gradient-accumulation-steps", "2", "--val-fraction", "0", "--max-text-tokens", "64",
           "--max-length", "128", "--logging-steps", "1", "--eval-steps", "100000"]
    proc = subprocess.Popen(cmd + ["--max-steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.time() + 300
    while not ((out / "train_log.jsonl").exists() and (out / "train_log.jsonl").read_text().count("\n") >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.5)
    proc.send_signal(sig.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM; checkpoint" in err and "Traceback" not in err  # the workers exit cleanly
    ckpts = list((out / "checkpoints").iterdir())
    assert len(ckpts) == 1 and (ckpts[0] / "trainer_state.json").is_file()
    stopped = int(ckpts[0].name.split("-")[1])
    assert stopped >= 3 and not (out / "train_summary.json").exists()

    res = subprocess.run(cmd + ["--max-steps", str(stopped + 2)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "train_summary.json").read_text())["global_steps"] == stopped + 2
    steps = [r["step"] for r in log_records(out) if "loss" in r]
    assert steps == list(range(1, stopped + 3))
