"""Fixtures shared by several test files: the MiniLM embedder, a tiny recovery model with its HTTP test
client, the tiny training recipe, and `script` (a scripts/*.py file loaded as a module). Heavy libraries are imported inside the fixtures, so collecting
the tests stays quick.

    .venv/bin/python -m pytest -q tests/test_serve.py     # uses `recoverer` and `client` from here
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TOY_TRIPLES = str(FIXTURES / "toy_triples.csv")


@pytest.fixture(scope="session")
def script():
    """`script("ship_adapter")`: scripts/ship_adapter.py loaded as a module (scripts are not a package)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def minilm():
    """The default SCS/search embedder (all-MiniLM-L6-v2 from its PyPI package, offline), loaded once."""
    from prompt_recovery.scoring.embedders import Embedder

    return Embedder.load("minilm")


@pytest.fixture(scope="module")
def recoverer():
    """A `Recoverer` on the tiny random Mistral (chat template, in-process, no files): fast answers to check
    plumbing, not quality. A test module may define its own `recoverer`; `client` then serves that one."""
    from prompt_recovery.inference.recover import Recoverer

    return Recoverer.load(model="tiny-random-mistral", adapter="none", max_new_tokens=12)


@pytest.fixture(scope="module")
def client(recoverer):
    """FastAPI's TestClient on `serve`'s app around `recoverer` (server errors come back as responses)."""
    from fastapi.testclient import TestClient

    from prompt_recovery.serving.app import create_app

    with TestClient(create_app(recoverer), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_cfg():
    """`tiny_cfg(out, **overrides)`: a `TrainConfig` that trains LoRA on the tiny random Mistral on
    fixtures/toy_triples.csv in seconds (30 steps, constant learning rate, every step logged), in fp32: the pinned
    numbers and equality checks are fp32 ones, and `precision: auto` would pick bf16 autocast on a CPU with native
    bf16 (AVX512_BF16 / AMX) where it measures faster (its choice is tested in test_train.py)."""
    from prompt_recovery.training.train import TrainConfig

    def make(out, **kw):
        base = dict(train_data=TOY_TRIPLES, output_dir=str(out), model="tiny-random-mistral", val_fraction=0.2,
                    learning_rate=3e-2, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=30,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                    warmup_ratio=0.0, logging_steps=1, lora_r=8, lora_alpha=16, lora_dropout=0.0,
                    max_text_tokens=64, max_length=128, seed=0, lr_scheduler_type="constant", precision="fp32")
        base.update(kw)
        return TrainConfig(**base)

    return make


@pytest.fixture
def tiny_judge():
    """`(rewriter, recoverer)` on the tiny random Mistral, no adapter: the likelihood judge and the recovery model a
    `SearchRecoverer` test wraps (greedy, 4 new tokens)."""
    from prompt_recovery import models
    from prompt_recovery.data.rewriters import LocalRewriter
    from prompt_recovery.inference.recover import Recoverer

    rw = LocalRewriter(loaded=models.load("tiny-random-mistral", adapter="none", device="cpu", dtype="float32"),
                       max_new_tokens=4, temperature=0.0)
    return rw, Recoverer.load("tiny-random-mistral", adapter="none", max_new_tokens=4, backend="transformers")


@pytest.fixture
def tied_base(tmp_path):
    """A saved tiny random Mistral whose output layer is tied to its token embedding (as SmolLM2's is):
    `--model DIR` for a run; returns the folder."""
    import torch
    from transformers import AutoModelForCausalLM

    from prompt_recovery.models import tiny_random

    untied, tok = tiny_random("mistral")
    config = untied.config
    config.tie_word_embeddings = True
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(tmp_path / "tied-base")
    tok.save_pretrained(tmp_path / "tied-base")
    return tmp_path / "tied-base"
