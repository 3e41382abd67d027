"""`evaluate` shows a progress bar while it embeds a long file, and embeds each distinct text once.

    .venv/bin/python -m pytest tests/test_evaluate_progress.py -q
"""

import numpy as np
import pandas as pd

from prompt_recovery.scoring import evaluate as ev


class CountingEmbedder:
    """A cached fake embedder (like embedders.Embedder) that records what it was asked to encode."""

    name, source = "fake", "fake"

    def __init__(self):
        self._cache, self.calls = {}, []

    def encode(self, texts, batch_size=64, progress=False):
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        self.calls.append(len(new))
        for t in new:
            rng = np.random.default_rng(abs(hash(t)) % 2**32)
            v = rng.standard_normal(8).astype(np.float32)
            self._cache[t] = v / np.linalg.norm(v)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 8), np.float32)


def files(tmp_path, n):
    truth, pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    pd.DataFrame({"id": range(n), "rewrite_prompt": [f"Rewrite text {i} as a poem." for i in range(n)]}
                 ).to_csv(truth, index=False)
    pd.DataFrame({"id": range(n), "rewrite_prompt": [f"Make text {i} rhyme." for i in range(n)]}
                 ).to_csv(pred, index=False)
    return ev.EvaluateConfig(predictions=str(pred), truth=str(truth), output_dir=str(tmp_path / "out"),
                             bootstrap=0, plots=False)


def test_long_file_shows_an_embedding_progress_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ev, "PROGRESS_MIN_TEXTS", 50)
    monkeypatch.setattr(ev, "EMBED_CHUNK", 16)
    emb = CountingEmbedder()
    r = ev.evaluate(files(tmp_path, 40), emb)
    err = capsys.readouterr().err
    distinct = 40 + 40 + 1  # predictions, truths, the default constant
    assert "embedding" in err and f"{distinct}/{distinct}" in err
    assert sum(emb.calls) == distinct  # each text embedded once; scoring reused the cache
    assert max(emb.calls) <= 16 and r["n"] == 40


def test_short_file_has_no_bar_and_same_report(tmp_path, monkeypatch, capsys):
    emb = CountingEmbedder()
    r = ev.evaluate(files(tmp_path, 10), emb)
    assert "embedding" not in capsys.readouterr().err
    monkeypatch.setattr(ev, "PROGRESS_MIN_TEXTS", 1)
    r2 = ev.evaluate(files(tmp_path, 10), CountingEmbedder(), progress=True)
    assert r2["metrics"] == r["metrics"]  # embedding ahead changes nothing in the numbers
    capsys.readouterr()
    ev.evaluate(files(tmp_path, 10), CountingEmbedder(), progress=False)
    assert "embedding" not in capsys.readouterr().err
