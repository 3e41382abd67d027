"""The held-out token-mean embedder (built here on a random matrix and the tiny tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest

from prompt_recovery.scoring.embedders import TokenMeanEmbedder, load_embedder
from prompt_recovery.errors import UserError
from prompt_recovery.models import tiny_tokenizer


@pytest.fixture(scope="module")
def emb():
    tok = tiny_tokenizer(chat_template=False)
    rng = np.random.default_rng(0)
    common = rng.normal(size=16) * 5  # a large shared direction, as real token embeddings have
    matrix = rng.normal(size=(len(tok), 16)) + common
    return TokenMeanEmbedder(matrix, tok, "toy", remove_top=2)


def test_rows_are_unit_and_free_of_the_removed_directions(emb):
    v = emb.encode(["the cat sat", "a dog ran home", "the cat sat"])
    assert v.shape == (3, 16) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(v @ emb.top, 0.0, atol=1e-5)
    assert v[0] @ v[2] == pytest.approx(1.0, abs=1e-6)
    assert emb.encode([]).shape == (0, 16)


def test_word_overlap_raises_similarity(emb):
    a, b, c = emb.encode(["the cat sat on the mat", "the cat sat on a rug", "zebras quickly jump over"])
    assert a @ b > a @ c


def test_unknown_embedder_is_a_user_error():
    with pytest.raises(UserError, match="unknown embedder"):
        load_embedder("no-such-embedder")
