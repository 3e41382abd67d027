"""Model cards: Hub metadata in the YAML front matter (huggingface_hub ModelCard), evaluation results as
model-index, the de-quantised-GGUF statement. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from prompt_recovery import models
from prompt_recovery.training import card

SHIPPED = models.ADAPTERS_DIR / "smollm2-135m-prompt-recovery"


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _report(path: Path, scs: float, family: float | None = None, baselines=()) -> Path:
    rep = {"model": "pred", "n": 40, "embedder": "all-MiniLM-L6-v2",
           "metrics": {"scs": scs, "bleu": 12.5, "token_f1": 0.4, "category_accuracy": 0.6, "exact_match": 0.0,
                       "n": 40},
           "ci": {"scs": [scs - 0.02, scs + 0.02], "bleu": [10.0, 15.0]},
           "baselines": [{"name": n, "kind": "constant", "metrics": {"scs": 0.05, "bleu": 1.0, "n": 40}}
                         for n in baselines],
           "family_accuracy": {"accuracy": family, "n": 40, "correct": 30, "families": {}} if family else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rep))
    return path


def _adapter_dir(tmp_path: Path, model: str = "smollm2-135m", base_source: str | None = None, **cfg) -> Path:
    d = tmp_path / "my-adapter"
    d.mkdir()
    (d / "train_config.yaml").write_text(yaml.safe_dump({"train_data": "train.jsonl", "model": model, "lora_r": 8,
                                                         "target_modules": ["q_proj", "v_proj"], **cfg}))
    (d / "train_summary.json").write_text(json.dumps({
        "examples": 10, "tokens": 1000, "val_examples": 2, "hardware": "CPU", "train_seconds": 60,
        "global_steps": 3, "metrics": {"train_loss": 2.0, "eval_loss": 1.9},
        "base_source": base_source or str(tmp_path / "no-such-cache")}))
    return d


def test_card_front_matter_has_hub_fields_and_model_index(tmp_path):
    d = _adapter_dir(tmp_path)
    reports = {"dev": _report(tmp_path / "dev.json", 0.25, baselines=["constant: Rewrite it."]),
               "heldout": _report(tmp_path / "heldout.json", 0.2),
               "family suite": _report(tmp_path / "suite.json", 0.3, family=0.75)}
    path = card.add_evaluation(d, reports, note="test numbers")
    text = path.read_text()
    meta = front_matter(text)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "text-generation"
    assert {"prompt-recovery", "lora", "peft"} <= set(meta["tags"])
    [entry] = meta["model-index"]
    assert entry["name"] == "my-adapter"
    results = entry["results"]
    assert [r["dataset"]["name"] for r in results] == ["dev", "heldout", "family suite"]  # baselines left out
    assert all(r["task"]["type"] == "text-generation" for r in results)
    dev = {m["type"]: m["value"] for m in results[0]["metrics"]}
    assert dev["scs"] == 0.25 and dev["bleu"] == 12.5 and "family_accuracy" not in dev
    suite = {m["type"]: m["value"] for m in results[2]["metrics"]}
    assert suite["family_accuracy"] == 0.75
    # huggingface_hub reads it back
    from huggingface_hub import ModelCard

    parsed = ModelCard(text).data
    assert parsed.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {(e.dataset_name, e.metric_type) for e in parsed.eval_results} >= {("heldout", "scs"), ("dev", "bleu")}
    # the body: de-quantised statement, the CI table with the baseline row, no local cache path
    assert "de-quantised from the Q4_1 GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf`" in text
    assert "| constant: Rewrite it. (dev) |" in text
    assert "0.2500 [0.2300, 0.2700]" in text
    assert "no-such-cache" not in text
    ev = json.loads((d / "evaluation.json").read_text())
    assert ev["constant: Rewrite it. (dev)"]["_baseline"] is True and ev["dev"]["_dataset"] == "dev"


def test_label_with_system_names_the_data_after_the_comma(tmp_path):
    d = _adapter_dir(tmp_path)
    card.add_evaluation(d, {"shipped adapter, dev": _report(tmp_path / "r.json", 0.2, baselines=["zero-shot"])})
    meta = front_matter((d / "README.md").read_text())
    assert [r["dataset"]["name"] for r in meta["model-index"][0]["results"]] == ["dev"]
    assert "zero-shot (dev)" in json.loads((d / "evaluation.json").read_text())


def test_card_without_evaluation_has_no_model_index(tmp_path):
    d = _adapter_dir(tmp_path, push_to_hub="someone/pr-adapter")
    card.refresh_card(d)
    text = (d / "README.md").read_text()
    meta = front_matter(text)
    assert "model-index" not in meta and meta["library_name"] == "peft"
    assert "--adapter someone/pr-adapter" in text  # the Hub repo in the usage lines


@pytest.mark.parametrize("model, hub, dequantised", [
    ("mistral-7b-instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.2", False),
    ("gemma3-270m", "google/gemma-3-270m", True),
    ("tiny-random-llama", None, False),
    ("owner/some-model", "owner/some-model", False),
])
def test_base_model_is_a_hub_id_or_absent(tmp_path, model, hub, dequantised):
    d = _adapter_dir(tmp_path, model=model)
    card.refresh_card(d)
    text = (d / "README.md").read_text()
    meta = front_matter(text)
    assert meta.get("base_model") == hub
    assert ("De-quantised base weights" in text) == dequantised
    if model == "gemma3-270m":
        assert meta["license"] == "gemma" and "Q4_K_M" in text


def test_local_directory_base_is_not_a_hub_id_but_its_gguf_origin_is_stated(tmp_path):
    base = tmp_path / "cache" / "models" / "x"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    (base / "SOURCE.txt").write_text("de-quantized from /somewhere/Model-1B.Q8_0.gguf\n")
    d = _adapter_dir(tmp_path, model=str(base), base_source=str(base))
    text = card.render_card(d, yaml.safe_load((d / "train_config.yaml").read_text()),
                            json.loads((d / "train_summary.json").read_text()))
    assert "base_model" not in front_matter(text)
    assert "de-quantised from the Q8_0 GGUF file `Model-1B.Q8_0.gguf`" in text


def test_shipped_card_renders_with_hub_metadata_from_its_files():
    """The shipped adapter's files give a valid card with its dev, held-out and the three family suites' results,
    and the shipped README.md carries the same metadata (regenerated, not hand-edited)."""
    cfg = yaml.safe_load((SHIPPED / "train_config.yaml").read_text())
    run = json.loads((SHIPPED / "train_summary.json").read_text())
    text = card.render_card(SHIPPED, cfg, run)
    meta = front_matter(text)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    names = [r["dataset"]["name"] for r in meta["model-index"][0]["results"]]
    assert names == ["dev", "dev with typos (rate 0.05)", "heldout", "family suite", "suite B", "suite C", "suite D",
                     "suite E"]
    ev = json.loads((SHIPPED / "evaluation.json").read_text())
    for s, n in (("family suite", 89), ("suite B", 84), ("suite C", 84), ("suite D", 84), ("suite E", 84)):
        assert ev[f"shipped adapter, {s}"]["n"] == n and 0 <= ev[f"shipped adapter, {s}"]["family_accuracy"] <= 1, s
        assert s.lower() in ev["_note"].lower(), s  # the note says what each suite is
    assert "--adapter default" in text and "/root/" not in text
    assert front_matter((SHIPPED / "README.md").read_text()) == meta  # the shipped card is the regenerated one


def test_merged_card_is_a_transformers_model_with_the_adapter_results(tmp_path):
    d = _adapter_dir(tmp_path)
    card.add_evaluation(d, {"dev": _report(tmp_path / "dev.json", 0.25)})
    out = tmp_path / "merged"
    out.mkdir()
    text = card.write_merged_card(out, "smollm2-135m", str(d), "float32", repo_id="someone/pr-merged").read_text()
    meta = front_matter(text)
    assert meta["library_name"] == "transformers" and meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["base_model_relation"] == "finetune" and meta["pipeline_tag"] == "text-generation"
    assert meta["model-index"][0]["name"] == "pr-merged"
    assert "--model someone/pr-merged --adapter none" in text
    assert "trained on, and merged into, float weights de-quantised from the Q4_1 GGUF" in text


def test_card_of_a_resumed_run_says_which_updates_its_time_covers(tmp_path):
    d = _adapter_dir(tmp_path)
    summary = json.loads((d / "train_summary.json").read_text())
    assert "| training time | 1.0 min |" in card.refresh_card(d).read_text()  # a run trained in one go
    (d / "train_summary.json").write_text(json.dumps({**summary, "global_steps": 1102, "resumed_from_step": 700}))
    text = card.refresh_card(d).read_text()
    assert ("| training time | 1.0 min for updates 701-1102 (resumed from the checkpoint at update 700; the time "
            "before it is not counted) |") in text

