"""Check a new file of hand-written training triples before it joins the training data.

    .venv/bin/python scripts/check_handwritten.py data/handwritten/round5_a.jsonl [more files ...]
    .venv/bin/python scripts/check_handwritten.py --eval data/eval/family_suite_d.jsonl     # a new evaluation set

Per file: every row has the keys `id, family, original_text, rewrite_prompt, rewritten_text` (non-empty
strings), ids are unique across the files given and the existing data/handwritten/*.jsonl, and the row does not
leak evaluation data:
  * its instruction is not close to an instruction of any family suite (examples/family_suite.jsonl and every
    data/eval/family_suite_*.jsonl): difflib ratio above ``--max-ratio`` (0.65, as rounds 3 and 4 were checked)
    after lower-casing; nor a near copy (ratio above ``--max-dup-ratio``, 0.9) of a training row's instruction
    (earlier hand-written rows, earlier rows of the files given);
  * its original and rewrite share no run of ``--ngram`` (8) words with a suite text.
With ``--eval`` the file is a new evaluation set, held to the rules suite B was written under (data/eval/README.md):
instructions below ``--max-ratio`` against the training rows too, no 8-word run shared with their texts either, the
family one of the suite's 14 (`scoring.suite.FAMILY_CATEGORY`) and the instruction in that family's category (so that
family accuracy counts a right answer as right). Prints the flagged rows, then per family: rows, the instruction's category (`scoring.categories`) counts and the
median rewrite/original word ratio. Exit status 1 when a row is flagged.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("id", "family", "original_text", "rewrite_prompt", "rewritten_text")
# the first suite and every later one in data/eval (a file being checked is left out of them)
SUITES = (ROOT / "src/prompt_recovery/examples/family_suite.jsonl",
          *sorted(ROOT.glob("data/eval/family_suite_*.jsonl")))


def read(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON ({e})")
    return rows


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--max-ratio", type=float, default=0.65)
    p.add_argument("--max-dup-ratio", type=float, default=0.9)
    p.add_argument("--ngram", type=int, default=8)
    p.add_argument("--eval", action="store_true", help="the files are a new evaluation set (stricter, see above)")
    a = p.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from prompt_recovery.scoring.categories import categorize
    from prompt_recovery.scoring.suite import FAMILY_CATEGORY

    new = {f: read(f) for f in a.files}
    given = {f.resolve() for f in a.files}
    suite = [r for s in SUITES if s.resolve() not in given for r in read(s)]
    earlier = [r for f in sorted((ROOT / "data/handwritten").glob("*.jsonl")) if f.resolve() not in given
               for r in read(f)]
    known = [(r["rewrite_prompt"].lower(), f"suite {r['id']}", a.max_ratio) for r in suite]
    train_limit = a.max_ratio if a.eval else a.max_dup_ratio
    known += [(r["rewrite_prompt"].lower(), f"hand-written {r['id']}", train_limit) for r in earlier]
    guarded = suite + earlier if a.eval else suite
    suite_grams = set().union(*(ngrams(r["original_text"] + " \n " + r["rewritten_text"], a.ngram) for r in guarded))
    seen_ids = Counter(r["id"] for r in earlier)

    flagged = 0
    by_family = defaultdict(list)
    for f, rows in new.items():
        for n, r in enumerate(rows, 1):
            problems = []
            missing = [k for k in KEYS if not isinstance(r.get(k), str) or not r.get(k).strip()]
            if missing:
                problems.append(f"missing or empty: {', '.join(missing)}")
            else:
                seen_ids[r["id"]] += 1
                if seen_ids[r["id"]] > 1:
                    problems.append(f"duplicate id {r['id']}")
                ins = r["rewrite_prompt"].lower()
                for k, who, limit in known:
                    m = difflib.SequenceMatcher(None, ins, k)
                    if m.real_quick_ratio() > limit and m.quick_ratio() > limit and m.ratio() > limit:
                        problems.append(f"instruction {m.ratio():.2f} close to {who}: {k!r}")
                        break
                shared = ngrams(r["original_text"] + " \n " + r["rewritten_text"], a.ngram) & suite_grams
                if shared:
                    problems.append(f"shares {len(shared)} {a.ngram}-word runs with the suites"
                                    f"{' or training rows' if a.eval else ''}, e.g. {' '.join(next(iter(shared)))!r}")
                if a.eval and r["family"] not in FAMILY_CATEGORY:
                    problems.append(f"family {r['family']!r} is not a suite family ({', '.join(FAMILY_CATEGORY)})")
                elif a.eval and categorize(r["rewrite_prompt"]) != FAMILY_CATEGORY[r["family"]]:
                    problems.append(f"instruction falls in category {categorize(r['rewrite_prompt'])}, not "
                                    f"{FAMILY_CATEGORY[r['family']]} (rephrase it)")
                ratio = (len(r["rewritten_text"].split()) + 1) / (len(r["original_text"].split()) + 1)
                by_family[r["family"]].append((categorize(r["rewrite_prompt"]), ratio))
                known.append((ins, f"{f.name} {r['id']}", a.max_ratio if a.eval else a.max_dup_ratio))
            if problems:
                flagged += 1
                print(f"{f}:{n} ({r.get('id')}): " + "; ".join(problems))
    print(f"\n{sum(map(len, new.values()))} rows, {flagged} flagged")
    for fam, xs in sorted(by_family.items()):
        cats = Counter(c for c, _ in xs).most_common()
        print(f"  {fam:16s} {len(xs):4d} rows  length x{statistics.median(r for _, r in xs):.2f}  "
              + ", ".join(f"{c} {k}" for c, k in cats))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
