"""Sentence embedders for search and scoring: the `metrics` embedders plus an independent "held-out" one.

    python -c "from prompt_recovery.scoring.embedders import load_embedder; e = load_embedder('smollm2-tokens'); print(e.encode(['Make it a poem.']).shape)"

`load_embedder(name)` accepts every name `prompt_recovery.scoring.metrics.Embedder.load` accepts
(``minilm``, ``sentence-t5-base``, a local sentence-transformers directory) and also:

* ``smollm2-tokens`` – the mean of the SmolLM2-135M *input token embeddings* of a text,
  post-processed "all-but-the-top" style (Mu & Viswanath, 2018): the mean embedding of the
  vocabulary is subtracted and the top 10 principal directions of the embedding matrix are
  projected out (without this every pair of sentences has a cosine above 0.9), then
  L2-normalised. No transformer layers are run; word order is ignored. It shares no weights or training objective with MiniLM, so it serves as a second,
  independent scorer where sentence-t5-base (the competition's embedder) is not available
  offline: a gain found by optimising against MiniLM that does not show under it is likely
  an artefact of the scoring model. Its absolute values are not comparable to MiniLM's.

Every embedder is a `CachingEncoder`: ``name``, ``dim`` and ``encode(texts) -> float32 array``
of shape (len(texts), dim), L2-normalised rows.
"""

from __future__ import annotations

from typing import Sequence

TOKEN_EMBEDDERS = {"smollm2-tokens": "smollm2-135m"}


class CachingEncoder:
    """The `encode` of every embedder: each distinct text is encoded once (`_encode_new`) and kept, so
    texts seen again (bank keys, the truths of several scores) cost nothing. Subclasses set ``name`` and
    ``dim`` and define ``_encode_new(texts, batch_size, progress)`` -> one row per text."""

    name: str
    dim: int

    def __init__(self):
        self._cache: dict[str, object] = {}

    def _encode_new(self, texts: list[str], batch_size: int, progress: bool):
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False):
        """float32 array (len(texts), dim), one row per text in order; (0, dim) for no texts."""
        import numpy as np

        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for t, v in zip(todo, self._encode_new(todo, batch_size, progress)):
                self._cache[t] = np.asarray(v, dtype=np.float32)
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


class TokenMeanEmbedder(CachingEncoder):
    """Centred mean of a language model's input token embeddings (see module docstring)."""

    def __init__(self, matrix, tokenizer, name: str, remove_top: int = 10):
        import numpy as np

        super().__init__()
        m = np.asarray(matrix, dtype=np.float32)
        self.center = m.mean(axis=0)
        self.matrix = m
        c = m - self.center
        _, vecs = np.linalg.eigh((c.T @ c) / len(c))
        self.top = vecs[:, ::-1][:, :remove_top].astype(np.float32)  # principal directions to remove
        self.tokenizer = tokenizer
        self.name = name
        self.dim = m.shape[1]

    @classmethod
    def load(cls, name: str = "smollm2-tokens") -> "TokenMeanEmbedder":
        from prompt_recovery.models import load_base

        model, tok, _ = load_base(TOKEN_EMBEDDERS[name], device="cpu", dtype="float32")
        matrix = model.get_input_embeddings().weight.detach().float().numpy().copy()
        del model
        return cls(matrix, tok, name)

    def _one(self, text: str):
        import numpy as np

        ids = self.tokenizer.encode(str(text), add_special_tokens=False)
        if not ids:
            return np.zeros(self.matrix.shape[1], dtype=np.float32)
        v = self.matrix[ids].mean(axis=0) - self.center
        v = v - self.top @ (self.top.T @ v)
        n = float(np.linalg.norm(v))
        return (v / n if n > 0 else v).astype(np.float32)

    def _encode_new(self, texts: list[str], batch_size: int, progress: bool):
        return [self._one(t) for t in texts]


def load_embedder(name: str = "minilm", device: str = "cpu"):
    """An embedder by name: ``smollm2-tokens`` or anything `metrics.Embedder.load` accepts."""
    if name in TOKEN_EMBEDDERS:
        return TokenMeanEmbedder.load(name)
    from prompt_recovery.scoring.metrics import Embedder

    return Embedder.load(name, device)
