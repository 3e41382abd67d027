"""Fine-tuning of a recovery model (PEFT LoRA, or every weight) with the transformers Trainer, CPU or GPU, 1..N processes.

    prompt-recovery train --config configs/smollm2-135m-cpu.yaml
    prompt-recovery train --config configs/smollm2-135m-cpu.yaml --max-steps 50 --output-dir runs/try
    accelerate launch --config_file configs/accelerate/ddp-2gpu.yaml -m prompt_recovery.cli train \
        --config configs/mistral-7b-seed.yaml

Data: any table `schema.read_table` reads (CSV/JSONL/Parquet) with original_text, rewrite_prompt,
rewritten_text (`training.dataset`). Each row becomes `prompting.training_example` (the one prompt
format): the loss covers only the instruction tokens and the EOS after them; the prompt is masked.

The output directory holds the PEFT adapter (adapter_config.json, adapter_model.safetensors; with
`finetune: full` the whole model instead: config.json, model.safetensors),
tokenizer files, `prompt_recovery.json` (prompt format), `train_config.yaml` (resolved config),
`train_log.jsonl` (every logged step, appended as training goes), `loss.png` and a model card
`README.md`. Checkpoints go to `output_dir/checkpoints/`; the same command resumes a killed run
from the last one. With validation data the best checkpoint (lowest eval loss) is the one saved.
Ctrl-C or SIGTERM (`kill`, a job's time limit) finishes the optimiser update under way, saves a checkpoint
there and stops (exit status 130 / 143), so nothing trained is lost; a second signal stops at once.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery import hardware, models
from prompt_recovery.config import opt, to_dict
from prompt_recovery.data.noise import with_bpe_dropout
from prompt_recovery.errors import Interrupted, UserError
from prompt_recovery.hub import push_folder
from prompt_recovery.prompting import get_format
from prompt_recovery.schema import atomic_write_text
from prompt_recovery.training.card import write_model_card
from prompt_recovery.training.dataset import RecoveryDataset, hold_out_originals, load_rows, make_collator
from prompt_recovery.training.launch import STOP_FILE_ENV, accumulation_per_process, launch, should_launch

@dataclass
class TrainConfig:
    train_data: str | None = opt(None, "training table (CSV/JSONL/Parquet) with original_text, rewrite_prompt, "
                                       "rewritten_text", positional=True)
    val_data: str | None = opt(None, "validation table; default: val_fraction of the training originals")
    val_fraction: float = opt(0.05, "share of training originals held out for validation when no val_data")
    max_train_rows: int | None = opt(None, "use at most this many training rows (after shuffling)")
    max_val_rows: int | None = opt(200, "use at most this many validation rows")
    output_dir: str = opt("runs/adapter", "where the adapter, logs and card are written")
    model: str = opt("smollm2-135m", "base model (preset, directory, .gguf or hub id)")
    init_adapter: str | None = opt(None, "start from this LoRA adapter instead of a fresh one")
    prompt_format: str = opt("chat", "prompt format (chat or plain); recorded in the adapter")
    max_text_tokens: int = opt(384, "token budget for the two texts in the prompt")
    length_hint: bool = opt(False, "tell the model the word counts of both texts (recorded in the adapter)")
    max_length: int = opt(1024, "maximum tokens per training example (prompt + instruction + EOS)")
    finetune: str = opt("lora", "lora (train a PEFT LoRA adapter: the output is the adapter) or full (train every "
                        "weight: the output is a whole model, used as --model DIR --adapter none)",
                        choices=("lora", "full"))
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha")
    lora_dropout: float = opt(0.05, "LoRA dropout")
    target_modules: list[str] = opt(None, "modules to adapt", default_factory=lambda: ["q_proj", "k_proj", "v_proj"])
    learning_rate: float = opt(5e-5, "peak learning rate")
    lr_scheduler_type: str = opt("cosine", "learning-rate schedule")
    warmup_ratio: float = opt(0.1, "share of steps used for warm-up")
    weight_decay: float = opt(0.01, "weight decay")
    per_device_train_batch_size: int = opt(1, "examples per device per step")
    gradient_accumulation_steps: int = opt(4, "steps accumulated per optimiser update")
    num_train_epochs: float = opt(3.0, "epochs")
    max_steps: int = opt(-1, "stop after this many optimiser updates (-1: use epochs)")
    precision: str = opt("auto", "auto (bf16/fp16 on GPU; on CPU bf16 autocast where the CPU has native bf16 "
                         "and bf16 matmuls measure faster than fp32, else fp32), bf16, fp16 (GPU only) or fp32",
                         choices=("auto", "bf16", "fp16", "fp32"))
    gradient_checkpointing: bool = opt(False, "trade compute for memory")
    eval_steps: int | None = opt(None, "evaluate (and checkpoint) every N updates; default: each epoch")
    logging_steps: int = opt(10, "log every N updates")
    save_total_limit: int = opt(2, "checkpoints kept (the best one is always kept)")
    typo_rate: float = opt(0.0, "typo augmentation: per-character typo rate injected into both texts")
    typo_fraction: float = opt(0.5, "share of training examples that get typos when typo_rate > 0")
    bpe_dropout: float = opt(0.0, "BPE-dropout probability for training tokenisation (0 = off)")
    pad_to_multiple_of: int = opt(32, "pad batches to a multiple of this length (fewer shapes, steadier memory)")
    target_logits_only: bool = opt(True, "compute LM-head logits only where the loss needs them (the instruction "
                                   "tokens): the same loss and gradients, without a vocabulary-sized matmul and "
                                   "softmax for every prompt token")
    packing: bool = opt(False, "pack the examples of a micro-batch into one sequence (position ids restart per "
                        "example, attention stays within it): no compute on padding")
    seed: int = opt(42, "random seed")
    device: str = opt("auto", "auto, cpu or cuda")
    processes: int = opt(1, "CPU: train in this many single-threaded processes (DDP over gloo, launched by train "
                         "itself; 0 = one per core). gradient_accumulation_steps counts micro-batches per update "
                         "across all of them (training.launch)")
    resume: bool = opt(True, "resume from the last checkpoint in output_dir/checkpoints if there is one")
    push_to_hub: str | None = opt(None, "then upload the output folder (adapter + card, without checkpoints/) to "
                                  "this Hugging Face Hub model repo, OWNER/NAME")

    def validate(self):
        if not self.train_data:
            raise UserError("train: give the training data (a positional path or train_data in the YAML config)")
        if self.finetune not in ("lora", "full"):
            raise UserError(f"train: finetune must be lora or full, not {self.finetune!r}")
        if self.finetune == "full" and self.init_adapter:
            raise UserError("train: init_adapter starts a LoRA run; a full fine-tune starts from --model "
                            "(give a fully fine-tuned model's directory there to continue it)")
        if (self.finetune == "lora" and self.lora_r <= 0) or self.per_device_train_batch_size <= 0 \
                or self.gradient_accumulation_steps <= 0:
            raise UserError("train: lora_r, batch size and gradient accumulation must be positive")


# ---------------------------------------------------------------- model

def build_model(cfg: TrainConfig, device: str, dtype):
    from peft import LoraConfig, get_peft_model

    base, tok, source = models.load_base(cfg.model, device, dtype)
    # no KV cache in training: it is never read, and with one transformers detects packed rows from position_ids
    base.config.use_cache = False
    if cfg.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    if cfg.finetune == "full":
        base.requires_grad_(True)
        return base, tok, source
    if cfg.init_adapter:
        model = models.attach_adapter(base, models.resolve_adapter(cfg.model, cfg.init_adapter), trainable=True)
    else:
        missing = models.unmatched_targets(base, cfg.target_modules)
        if len(missing) == len(cfg.target_modules):
            raise UserError(f"none of the target modules {cfg.target_modules} exist in {type(base).__name__}")
        targets = [t for t in cfg.target_modules if t not in missing]
        emb_name, _, tied = models.embedding_layers(base)
        # an adapted embedding whose output layer is tied to it: one delta for both, as a full fine-tune has
        tie = tied and emb_name.rsplit(".", 1)[-1] in targets
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=targets, task_type="CAUSAL_LM", ensure_weight_tying=tie)
        model = get_peft_model(base, lcfg)
    return model, tok, source


def precision_flags(precision: str, device: str) -> tuple[dict, str]:
    """TrainingArguments precision flags and the weight dtype for the base model."""
    import torch

    cuda = device.startswith("cuda")
    if precision == "auto":
        if cuda:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:  # bf16 autocast only where it is measurably faster here (emulated bf16 is ~20x slower than fp32)
            precision = "bf16" if hardware.bf16_faster_than_fp32() else "fp32"
    if precision == "fp16" and not cuda:
        raise UserError("fp16 training needs a GPU; on CPU use fp32 or bf16")
    if precision == "bf16":
        return {"bf16": True}, ("bfloat16" if cuda else "float32")
    if precision == "fp16":
        return {"fp16": True}, "float32"
    return {}, "float32"


def target_positions(labels):
    """Sequence positions whose logits predict a labelled token (label at position + 1 is not -100).

    The union over the batch, sorted: one index tensor for `logits_to_keep`.
    """
    import torch

    valid = labels[:, 1:] != -100
    return torch.nonzero(valid.any(dim=0)).flatten()


def target_logit_loss(model, inputs, num_items_in_batch=None):
    """Causal-LM loss computed from the logits of the target positions only (`target_positions`).

    Equal to the model's own loss with `labels` (mean over labelled tokens, or their sum divided by
    `num_items_in_batch` when the Trainer accumulates gradients over micro-batches).
    """
    import torch

    labels = inputs["labels"]
    keep = target_positions(labels)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    out = model(**model_inputs, logits_to_keep=keep, use_cache=False)
    logits = out.logits.float()  # (batch, len(keep), vocab)
    targets = labels[:, keep + 1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    n = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum()
    if torch.is_tensor(n):
        n = n.to(loss.device)
    return loss / n, out


def target_logits_trainer():
    """A transformers Trainer whose training loss uses `target_logit_loss`."""
    from transformers import Trainer

    class TargetLogitsTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs or "position_ids" in inputs:  # packed rows: keep the standard path
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, out = target_logit_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # as Trainer.compute_loss scales its own loss: num_items_in_batch counts every process's tokens
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, out) if return_outputs else loss

    return TargetLogitsTrainer


def total_steps(n_examples: int, args) -> int:
    """Optimiser updates the Trainer will run: max_steps, or epochs x updates per epoch."""
    if args.max_steps and args.max_steps > 0:
        return int(args.max_steps)
    batches = math.ceil(n_examples / (args.per_device_train_batch_size * max(1, args.world_size)))
    per_epoch = max(1, math.ceil(batches / args.gradient_accumulation_steps))
    return max(1, math.ceil(per_epoch * args.num_train_epochs))


def warmup_steps(ratio: float, total: int) -> int:
    """Warm-up steps for a warm-up `ratio` of `total` updates (0 for ratio 0)."""
    if not 0 <= ratio < 1:
        raise UserError(f"train: warmup_ratio must be in [0, 1), not {ratio}")
    return math.ceil(ratio * total)


# ---------------------------------------------------------------- outputs

def jsonl_logger(path: Path):
    """A TrainerCallback that appends every log record to `path` (train_log.jsonl) as training goes."""
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs:
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

    return JsonlLogger()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signal(stop_file: str | Path | None = None):
    """A TrainerCallback that turns SIGINT / SIGTERM (or the appearance of `stop_file`, which `launch` creates when
    the launching command gets the signal) into a checkpoint: the optimiser update under way finishes, a checkpoint
    is saved at it, training stops (`stopped_at`; `signum` 0 when the file asked). A second signal raises
    KeyboardInterrupt at once. Under DDP each process may learn of the stop or not (a scheduler may signal one
    worker): a flag all-reduced once per update makes every process save and stop at the same update.
    `install()` / `restore()` set and reset the signal handlers (main thread only)."""
    import torch
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        def __init__(self):
            self.signum = 0
            self.stopped_at = None
            self._previous = {}

        def _handle(self, signum, frame):
            if self.signum:
                raise KeyboardInterrupt
            self.signum = signum
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"\ntrain: {signal.Signals(signum).name}: saving a checkpoint after this update, then stopping "
                      "(a second signal stops at once)", file=sys.stderr, flush=True)

        def install(self):
            if threading.current_thread() is threading.main_thread():
                self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}

        def restore(self):
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self._previous = {}

        def on_step_end(self, args, state, control, **kwargs):
            flag = 1 if self.signum or (stop_file is not None and os.path.exists(stop_file)) else 0
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                t = torch.tensor([flag], dtype=torch.int64, device=args.device)
                torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
                flag = int(t.item())
            if flag:
                self.stopped_at = state.global_step
                if args.save_total_limit == 1:  # else transformers keeps only the best checkpoint when train() ends
                    args.save_total_limit = 2
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopOnSignal()


def checkpoint_step(checkpoint: str | Path) -> int:
    """The optimiser step a checkpoint was saved at (trainer_state.json, else the folder name)."""
    state = Path(checkpoint) / "trainer_state.json"
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def truncate_log(path: Path, step: int) -> None:
    """Keep the records of train_log.jsonl up to `step` (and no half-written line): a run resumed from the
    checkpoint at `step` logs the later steps again; a fresh run (step 0) starts an empty log."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            # the end-of-training summary (train_runtime, ...) is logged again by the resumed run
            if isinstance(rec, dict) and int(rec.get("step", 0)) <= step and "train_runtime" not in rec:
                keep.append(line + "\n")
        except (ValueError, TypeError):
            continue  # cut short by the kill
    atomic_write_text(path, "".join(keep))


def plot_loss(log_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
    tr = [(r["step"], r["loss"]) for r in recs if "loss" in r]
    ev = [(r["step"], r["eval_loss"]) for r in recs if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot(*zip(*tr), label="train loss")
    if ev:
        ax.plot(*zip(*ev), "o-", label="validation loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (instruction tokens)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint. The Trainer writes trainer_state.json last, so a checkpoint
    folder without a readable one was cut short by a kill while it was being saved: it is skipped."""
    if not ckpt_dir.is_dir():
        return None
    found = [(int(d.name.rsplit("-", 1)[1]), d) for d in ckpt_dir.iterdir()
             if d.is_dir() and d.name.startswith("checkpoint-") and d.name.rsplit("-", 1)[1].isdigit()]
    for _, d in sorted(found, reverse=True):
        try:
            json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
        except (OSError, ValueError, KeyError, TypeError):
            print(f"train: skipping {d}, a checkpoint cut short while it was being saved")
            continue
        return str(d)
    return None


def _hardware() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


# ---------------------------------------------------------------- the command

@dataclass
class TrainResult:
    output_dir: Path
    model: object  # the trained PeftModel (LoRA not merged), or the whole model with finetune: full
    metrics: dict


def train(cfg: TrainConfig, callbacks: list | tuple = ()) -> TrainResult:
    """Fine-tune and write the adapter directory; `callbacks` are extra transformers TrainerCallbacks."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    t0 = time.time()
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = models.resolve_device(cfg.device)
    flags, weight_dtype = precision_flags(cfg.precision, device)

    rows = load_rows(cfg.train_data, cfg.max_train_rows, cfg.seed)
    if cfg.val_data:
        val_rows = load_rows(cfg.val_data, None, cfg.seed)
    else:
        rows, val_rows = hold_out_originals(rows, cfg.val_fraction, cfg.seed)
    if cfg.max_val_rows is not None and len(val_rows) > cfg.max_val_rows:
        val_rows = random.Random(cfg.seed).sample(val_rows, cfg.max_val_rows)

    model, tok, source = build_model(cfg, device, weight_dtype)
    tok.padding_side = "right"
    fmt = get_format(cfg.prompt_format, cfg.max_text_tokens, tok, cfg.length_hint)
    noisy_tok = None
    if cfg.bpe_dropout > 0:
        noisy_tok = with_bpe_dropout(tok, cfg.bpe_dropout)
    train_ds = RecoveryDataset(rows, tok, fmt, cfg.max_length, cfg.typo_rate, cfg.typo_fraction, noisy_tok, cfg.seed)
    val_ds = RecoveryDataset(val_rows, tok, fmt, cfg.max_length) if val_rows else None
    if int(os.environ.get("RANK", "0")) == 0:  # once, not once per process
        print(f"train: {len(train_ds)} examples ({train_ds.token_count()} tokens), {len(val_ds or [])} validation; "
              f"base {source} on {device}; format {fmt.name}/{fmt.max_text_tokens}")

    strategy = "steps" if cfg.eval_steps else "epoch"
    has_val = val_ds is not None and len(val_ds) > 0
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=max(1, cfg.per_device_train_batch_size),
        gradient_accumulation_steps=accumulation_per_process(cfg),
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=0,
        weight_decay=cfg.weight_decay, num_train_epochs=cfg.num_train_epochs, max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy=strategy if has_val else "no", eval_steps=cfg.eval_steps,
        save_strategy=strategy, save_steps=cfg.eval_steps, save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=has_val, metric_for_best_model="eval_loss", greater_is_better=False,
        use_cpu=(device == "cpu"), seed=cfg.seed, report_to="none", remove_unused_columns=False,
        dataloader_pin_memory=device != "cpu", disable_tqdm=False, ddp_find_unused_parameters=False,
        **flags,
    )
    # warm-up as a whole number of steps: transformers < 5 reads a float warmup_steps as 0 steps and
    # >= 5 deprecates warmup_ratio, so the ratio is resolved here, the same way on every version
    args.warmup_steps = warmup_steps(cfg.warmup_ratio, total_steps(len(train_ds), args))
    collator = make_collator(tok, cfg.packing, cfg.pad_to_multiple_of)
    trainer_cls = target_logits_trainer() if cfg.target_logits_only else Trainer
    stopper = stop_on_signal(os.environ.get(STOP_FILE_ENV))
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds if has_val else None,
                          data_collator=collator,
                          callbacks=[jsonl_logger(out / "train_log.jsonl"), stopper, *callbacks])
    resume = _last_checkpoint(out / "checkpoints") if cfg.resume else None
    if resume:
        print(f"train: resuming from {resume}")
    if trainer.is_world_process_zero():  # the log keeps what led to the checkpoint, nothing logged after it
        truncate_log(out / "train_log.jsonl", checkpoint_step(resume) if resume else 0)
    stopper.install()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    finally:
        stopper.restore()
    if stopper.stopped_at is not None:
        why = signal.Signals(stopper.signum).name if stopper.signum else "the launching command"
        raise Interrupted(f"train: stopped by {why} at update {stopper.stopped_at} of {trainer.state.max_steps}; "
                          f"checkpoint saved in {out / 'checkpoints'}: the same command resumes from it", stopper.signum)
    metrics = dict(result.metrics)
    if has_val:
        metrics.update(trainer.evaluate())
    # under FSDP every process holds a shard of the LoRA weights: all of them take part in gathering the full
    # state dict (accelerate's get_state_dict), then the main process writes it; otherwise the model's own
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None
    if trainer.is_world_process_zero():
        # an adapted embedding is saved as its LoRA factors, not with a copy of the base embedding
        trainer.model.save_pretrained(out, state_dict=state_dict,
                                      **({} if cfg.finetune == "full" else {"save_embedding_layers": False}))
        tok.save_pretrained(out)
        models.write_adapter_meta(out, {"prompt_format": fmt.to_dict(), "base_model": cfg.model,
                                        "base_source": source})
        import yaml

        atomic_write_text(out / "train_config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        plot_loss(out / "train_log.jsonl", out / "loss.png")
        elapsed = time.time() - t0
        run = {"examples": len(train_ds), "tokens": train_ds.token_count(), "val_examples": len(val_ds or []),
               "hardware": _hardware(), "train_seconds": round(elapsed, 1), "precision": flags or {"fp32": True},
               "global_steps": trainer.state.global_step, "warmup_steps": args.warmup_steps, "metrics": {k: _num(v) for k, v in metrics.items()},
               "world_size": args.world_size, "base_source": source,
               # a resumed run times only its own segment: the card says so
               "resumed_from_step": checkpoint_step(resume) if resume else 0}
        atomic_write_text(out / "train_summary.json", json.dumps(run, indent=2) + "\n")
        write_model_card(out, cfg, run)
        print(f"train: {'model' if cfg.finetune == 'full' else 'adapter'} written to {out} in {elapsed / 60:.1f} min "
              f"(eval_loss {metrics.get('eval_loss', float('nan')):.4f})")
    if cfg.push_to_hub and trainer.is_world_process_zero():
        print(f"train: uploaded to {push_folder(out, cfg.push_to_hub)}")
    return TrainResult(out, trainer.model, metrics)


def _num(v):
    return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v


def run(cfg: TrainConfig) -> int:
    n = should_launch(cfg, models.resolve_device(cfg.device))
    if n:
        load_rows(cfg.train_data, 1, cfg.seed)  # a bad path or table fails here, in one line, not in n workers
        return launch(cfg, n)
    try:
        train(cfg)
    except Interrupted as e:
        if e.signum == 0 and os.environ.get(STOP_FILE_ENV):  # a worker stopped as its launcher asked: a clean exit,
            return 0                                         # the launcher reports it
        raise
    return 0
