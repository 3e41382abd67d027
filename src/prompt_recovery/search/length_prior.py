"""Length prior: how likely a rewrite's change of length is under each kind of instruction.

    python -m prompt_recovery.search.length_prior runs/data/mix_pub1k_hw_syn600.jsonl    # refit the shipped table

The likelihood reranker (`search.likelihood`) scores only the first tokens of a rewrite, so it cannot see that a
summary is a third of its original's length or an expansion five times it: a summary's words are as likely under
"Simplify this text.". The prior adds that evidence: x = log((words(rewrite) + 1) / (words(original) + 1)), and
log p(x | category of the instruction) (`scoring.categories`: summarise, expand, change_tone, ...) from a histogram
of training pairs per category (bins of `BIN` nats over [-`RANGE`, `RANGE`], smoothed towards all categories'
histogram with `SMOOTHING` pseudo-rows, so a thin category stays close to the pooled shape). With weight 1 the sum
log p(rewrite tokens | c, o) + log p(x | c) is a joint log-likelihood of the two pieces of evidence, treating them
as independent; docs/quality.md (session 9) measures it.

The shipped table (`length_prior.json` beside this file) is fitted on the shipped adapter's training mix (1,000
public rows of the instruction-disjoint train split, the hand-written rows, 600 synthetic rows; no held-out
instruction cluster); it holds counts only, no text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from prompt_recovery.errors import UserError
from prompt_recovery.scoring.categories import CATEGORIES, categorize

DEFAULT_PATH = Path(__file__).with_name("length_prior.json")
BIN, RANGE, SMOOTHING = 0.25, 3.0, 10.0
N_BINS = int(round(2 * RANGE / BIN))


def log_ratio(original: str, rewritten: str) -> float:
    """log((words(rewritten) + 1) / (words(original) + 1)), whitespace words."""
    return math.log((len(str(rewritten).split()) + 1) / (len(str(original).split()) + 1))


def bin_of(x: float) -> int:
    """The histogram bin of a log ratio (values beyond +-RANGE fall in the end bins)."""
    return min(N_BINS - 1, max(0, int(math.floor((x + RANGE) / BIN))))


@dataclass
class LengthPrior:
    """Histogram counts of log length ratios per instruction category (`counts[category][bin]`)."""

    counts: Mapping[str, list[int]]
    source: str = ""

    def __post_init__(self):
        total = [sum(c[b] for c in self.counts.values()) for b in range(N_BINS)]
        n = sum(total)
        pooled = [(t + 1) / (n + N_BINS) for t in total]  # add-one: no bin has probability 0
        self._logp = {}
        for cat in CATEGORIES:
            c = self.counts.get(cat, [0] * N_BINS)
            m = sum(c)
            self._logp[cat] = [math.log((c[b] + SMOOTHING * pooled[b]) / (m + SMOOTHING) / BIN) for b in range(N_BINS)]

    @classmethod
    def fit(cls, rows: Iterable[Mapping], source: str = "") -> "LengthPrior":
        """Counts from rows with ``original_text, rewrite_prompt, rewritten_text``."""
        counts = {cat: [0] * N_BINS for cat in CATEGORIES}
        for r in rows:
            x = log_ratio(r["original_text"], r["rewritten_text"])
            counts[categorize(str(r["rewrite_prompt"]))][bin_of(x)] += 1
        if not any(map(sum, counts.values())):
            raise UserError("length prior: no rows to fit")
        return cls(counts, source)

    def logp(self, original: str, rewritten: str, instruction: str) -> float:
        """log density of the pair's length ratio under the instruction's category (nats)."""
        return self._logp[categorize(instruction)][bin_of(log_ratio(original, rewritten))]

    def to_json(self) -> dict:
        return {"bin": BIN, "range": RANGE, "smoothing": SMOOTHING, "source": self.source,
                "counts": {k: list(v) for k, v in self.counts.items()}}

    def save(self, path: str | Path = DEFAULT_PATH) -> Path:
        from prompt_recovery.schema import atomic_write_text

        d = self.to_json()
        counts = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in d.pop("counts").items())
        head = json.dumps(d)[:-1]  # one line per category's counts
        return atomic_write_text(path, f"{head}, \"counts\": {{\n{counts}\n}}}}\n")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> "LengthPrior":
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"length prior {path}: cannot read it ({e})") from e
        if (d.get("bin"), d.get("range")) != (BIN, RANGE) or any(len(v) != N_BINS for v in d["counts"].values()):
            raise UserError(f"length prior {path}: written for other bins (bin {d.get('bin')}, range {d.get('range')})")
        return cls(d["counts"], d.get("source", ""))


def main(argv=None) -> None:
    import argparse

    from prompt_recovery.schema import read_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="+", help="training triples (csv/jsonl/parquet)")
    p.add_argument("-o", "--output", default=str(DEFAULT_PATH))
    a = p.parse_args(argv)
    rows = [r for path in a.data for r in read_table(path, required=("original_text", "rewrite_prompt",
                                                                     "rewritten_text")).to_dict("records")]
    prior = LengthPrior.fit(rows, source=", ".join(Path(x).name for x in a.data))
    out = prior.save(a.output)
    print(f"{out}: {len(rows)} rows; rows per category: " + ", ".join(f"{k} {sum(v)}" for k, v in prior.counts.items()))


if __name__ == "__main__":
    main()
