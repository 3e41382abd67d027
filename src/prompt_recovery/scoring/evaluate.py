"""Evaluation: score a prediction file against the true instructions and write a report.

    prompt-recovery evaluate runs/pred/dev.csv --truth runs/data/dev.clean.jsonl --output-dir runs/eval/dev
    prompt-recovery evaluate pred.csv --truth dev.csv -d out --compare base.csv --constants "Improve the text."
    prompt-recovery evaluate runs/pred/suite.csv --truth suite -d runs/eval/suite     # + family accuracy

Joins predictions (``id, rewrite_prompt``) with the truth (``id, rewrite_prompt``, optional
``category`` and ``source``) on ``id``; a truth file without ``id`` gets row numbers, like
`predict`. Missing or duplicated ids are an error (``--subset`` scores only the truth rows
that have a prediction, e.g. after ``predict --limit 100``).

Writes to ``--output-dir``: ``report.json`` (every number), ``report.md`` (tables and plots),
``scs_hist.png``, ``by_category.png``, ``by_source.png`` (when the truth has sources) and
``baselines.png``. Baselines are scored on the same rows: constant instructions
(``--constants``) and other prediction files (``--compare``, e.g. the base model's
``predict --adapter none`` output). Metric definitions: `prompt_recovery.scoring.metrics` and
docs/evaluation.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery.config import opt
from prompt_recovery.errors import UserError
from prompt_recovery.prompting import DEFAULT_INSTRUCTION
from prompt_recovery.schema import atomic_path, atomic_write_text, check_output_dir, read_table, with_row_ids
from prompt_recovery.scoring.categories import categorize
from prompt_recovery.scoring.embedders import load_embedder
from prompt_recovery.scoring.metrics import paired_difference, score
from prompt_recovery.scoring.suite import family_accuracy, family_hits, resolve

log = logging.getLogger("prompt_recovery.scoring.evaluate")


@dataclass
class EvaluateConfig:
    predictions: str | None = opt(None, "prediction file with id, rewrite_prompt (.csv, .jsonl, .parquet)",
                                  positional=True)
    truth: str | None = opt(None, "file with the true instructions: id, rewrite_prompt [, category, source]")
    output_dir: str | None = opt(None, "folder for report.json, report.md and the plots", aliases=("-d",))
    embedder: str = opt("minilm", "sentence embedder for SCS: minilm (offline default), sentence-t5-base "
                        "(the competition's, if available locally), a local sentence-transformers directory, or "
                        "smollm2-tokens (a second scorer that shares nothing with MiniLM: docs/search.md)")
    constants: list[str] = opt(None, "constant instructions scored as baselines on the same rows ('' for none)",
                               default_factory=lambda: [DEFAULT_INSTRUCTION])
    compare: list[str] = opt(None, "other prediction files scored as baselines on the same rows "
                             "(e.g. the base model's predictions)", default_factory=list)
    name: str | None = opt(None, "name of the evaluated model in the report (default: the file name)")
    subset: bool = opt(False, "score only the truth rows that have a prediction instead of failing")
    bootstrap: int = opt(1000, "bootstrap resamples for the 95%% confidence intervals (0 = none)")
    seed: int = opt(0, "random seed of the bootstrap")
    worst: int = opt(20, "how many of the lowest-scoring rows to list")
    plots: bool = opt(True, "draw the PNG plots")

    def validate(self) -> None:
        if not self.predictions:
            raise UserError("missing PREDICTIONS file; usage: prompt-recovery evaluate PRED.csv --truth TRUTH.csv "
                            "--output-dir DIR")
        if not self.truth:
            raise UserError("missing --truth file with the true instructions")
        if not self.output_dir:
            raise UserError("missing --output-dir for the report")
        if self.bootstrap < 0 or self.worst < 0:
            raise UserError("--bootstrap and --worst must not be negative")


# ----------------------------------------------------------------------------- loading and joining

def read_truth(path: str):
    """The truth table with ids as text (row numbers when the file has no id column)."""
    df = with_row_ids(read_table(path, required=("rewrite_prompt",)), path)
    _check_unique(df, path)
    return df


def read_predictions(path: str):
    df = read_table(path, required=("id", "rewrite_prompt"))
    _check_unique(df, path)
    return df


def _check_unique(df, path) -> None:
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise UserError(f"{path}: {len(dup)} duplicated id(s), e.g. {', '.join(map(str, dup.unique()[:5]))}; "
                        "ids must be unique")


def join(pred_df, truth_df, pred_path: str = "predictions", subset: bool = False):
    """Predictions aligned with `truth_df` rows (which may be cut to the predicted ids when `subset`).

    Returns (truth_df, predictions list). Raises UserError on ids missing on either side.
    """
    preds = dict(zip(pred_df["id"], pred_df["rewrite_prompt"]))
    truth_ids = set(truth_df["id"])
    extra = [i for i in pred_df["id"] if i not in truth_ids]
    if extra:
        raise UserError(f"{pred_path}: {len(extra)} id(s) not in the truth file, e.g. {', '.join(extra[:5])}")
    missing = [i for i in truth_df["id"] if i not in preds]
    if missing and not subset:
        raise UserError(f"{pred_path}: no prediction for {len(missing)} of {len(truth_df)} truth id(s), e.g. "
                        f"{', '.join(missing[:5])} (use --subset to score only the predicted rows)")
    if missing:
        truth_df = truth_df[truth_df["id"].isin(preds)].reset_index(drop=True)
        if len(truth_df) == 0:
            raise UserError(f"{pred_path}: no id in common with the truth file")
    return truth_df, [preds[i] for i in truth_df["id"]]


def truth_categories(truth_df) -> list[str]:
    given = truth_df["category"].tolist() if "category" in truth_df.columns else [""] * len(truth_df)
    return [g.strip() if isinstance(g, str) and g.strip() else categorize(t)
            for g, t in zip(given, truth_df["rewrite_prompt"])]


# ----------------------------------------------------------------------------- report

PROGRESS_MIN_TEXTS = 500  # distinct texts from which embedding shows a progress bar
EMBED_CHUNK = 256


def embed_with_progress(embedder, texts, progress: bool = True) -> None:
    """Embed the distinct `texts` in chunks under a progress bar (stderr) when there are at least
    PROGRESS_MIN_TEXTS of them; the embedder caches each text, so scoring then reuses them. Fewer
    texts: nothing here (scoring embeds them as it goes)."""
    from tqdm.auto import tqdm

    todo = list(dict.fromkeys(str(t) for t in texts))
    if not progress or len(todo) < PROGRESS_MIN_TEXTS:
        return
    with tqdm(total=len(todo), desc="embedding", unit="text") as bar:
        for i in range(0, len(todo), EMBED_CHUNK):
            chunk = todo[i:i + EMBED_CHUNK]
            embedder.encode(chunk)
            bar.update(len(chunk))


def evaluate(cfg: EvaluateConfig, embedder=None, progress: bool = True) -> dict:
    """Score, write report.json / report.md / plots; returns the report dict. Long files show a
    progress bar while the texts are embedded (`progress`)."""
    import numpy as np

    # before any work: -d must be a folder that can be written and must not overwrite an input
    check_output_dir(cfg.output_dir, [cfg.predictions, resolve(cfg.truth), *(cfg.compare or [])],
                     ["report.json", "report.md", "scs_hist.png", "by_category.png", "by_source.png",
                      "baselines.png"], what=f"--output-dir {cfg.output_dir}")

    truth_df = read_truth(resolve(cfg.truth))
    pred_df = read_predictions(cfg.predictions)
    truth_df, preds = join(pred_df, truth_df, cfg.predictions, cfg.subset)
    truths = truth_df["rewrite_prompt"].tolist()
    empty_truth = sum(1 for t in truths if not t.strip())
    if empty_truth:
        log.warning("%d truth rows have an empty rewrite_prompt; they are scored as they are", empty_truth)
    embedder = embedder or load_embedder(cfg.embedder)
    others = [(path, join(read_predictions(path), truth_df, path, subset=False)[1]) for path in cfg.compare or []]
    consts = [c for c in cfg.constants or [] if c.strip()]
    embed_with_progress(embedder, [*preds, *truths, *consts, *(t for _, o in others for t in o)], progress)
    main = score(preds, truths, embedder, bootstrap=cfg.bootstrap, seed=cfg.seed)
    cats = truth_categories(truth_df)
    name = cfg.name or Path(cfg.predictions).stem

    baselines = []
    for const in consts:
        s = score([const] * len(truths), truths, embedder)
        baselines.append({"name": f"constant: {const}", "kind": "constant", "instruction": const,
                          "metrics": s.summary})
    truth_rows = truth_df[["rewrite_prompt", "family"]].to_dict("records") if "family" in truth_df.columns else None
    hits = family_hits(preds, truth_rows) if truth_rows is not None else None
    for path, other in others:
        s = score(other, truths, embedder)
        other_hits = family_hits(other, truth_rows) if truth_rows is not None else None
        baselines.append({"name": Path(path).stem, "kind": "predictions", "file": str(path), "metrics": s.summary,
                          "paired": _paired(main, s, hits, other_hits, cfg)})

    by_category = {c: main.subset(np.array([x == c for x in cats])) for c in sorted(set(cats))}
    by_source = {}
    if "source" in truth_df.columns and truth_df["source"].str.strip().ne("").any():
        srcs = truth_df["source"].tolist()
        by_source = {s: main.subset(np.array([x == s for x in srcs])) for s in sorted(set(srcs))}
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(main.rows["true_category"], main.rows["pred_category"]):
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1

    families = None
    if "family" in truth_df.columns:  # the family suite (or any truth with a family column)
        families = family_accuracy(preds, truth_df[["rewrite_prompt", "family"]].to_dict("records"))

    key = "scs" if "scs" in main.rows else "token_f1"
    order = np.argsort(main.rows[key], kind="stable")[: cfg.worst]
    worst = [{"id": truth_df["id"][i], "truth": truths[i], "prediction": preds[i],
              "scs": float(main.rows["scs"][i]) if "scs" in main.rows else None,
              "token_f1": float(main.rows["token_f1"][i]), "category": cats[i],
              "pred_category": main.rows["pred_category"][i]} for i in order]

    report = {
        "model": name, "predictions": str(cfg.predictions), "truth": str(cfg.truth), "n": len(truths),
        "subset": bool(cfg.subset), "embedder": embedder.name, "embedder_source": embedder.source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bootstrap": {"resamples": cfg.bootstrap, "seed": cfg.seed, "level": 0.95},
        "metrics": main.summary, "ci": main.ci,
        "empty_predictions": sum(1 for p in preds if not str(p).strip()),
        "baselines": baselines, "by_category": by_category, "by_source": by_source,
        "category_confusion": confusion, "family_accuracy": families, "worst": worst, "plots": [],
    }
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.plots:
        report["plots"] = draw_plots(report, main.rows.get("scs", main.rows["token_f1"]), key, out)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "report.md", render_markdown(report))
    return report


def draw_plots(report: dict, per_row, key: str, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = "SCS" if key == "scs" else "token F1"
    files = []
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(per_row, bins=20, range=(0, 1), color="#4477aa", edgecolor="white")
    ax.axvline(report["metrics"][key], color="black", linestyle="--", label=f"{report['model']} mean")
    for b, color in zip(report["baselines"], ("#cc6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")):
        ax.axvline(b["metrics"][key], color=color, linestyle=":", label=_short(b["name"], 40) + " mean")
    ax.set(xlabel=f"{label} per row ({report['embedder']})", ylabel="rows", title=f"{label} distribution, "
           f"n={report['n']}")
    ax.legend(fontsize=7)
    files.append(_save(fig, out / "scs_hist.png"))

    for field, fname in (("by_category", "by_category.png"), ("by_source", "by_source.png")):
        groups = report[field]
        if not groups:
            continue
        names = list(groups)
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
        y = range(len(names))
        ax.barh([i - 0.2 for i in y], [groups[n].get(key, 0) for n in names], height=0.4, label=label)
        ax.barh([i + 0.2 for i in y], [groups[n].get("category_match", 0) for n in names], height=0.4,
                label="category accuracy")
        ax.set_yticks(list(y), [f"{_short(n, 45)} (n={groups[n]['n']})" for n in names], fontsize=8)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set(title=f"{label} and category accuracy {field.replace('_', ' ')}")
        ax.legend(fontsize=8)
        files.append(_save(fig, out / fname))

    if report["baselines"]:
        rows = [(report["model"], report["metrics"][key])] + [(b["name"], b["metrics"][key])
                                                             for b in report["baselines"]]
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
        ax.barh(range(len(rows)), [v for _, v in rows], color=["#4477aa"] + ["#bbbbbb"] * (len(rows) - 1))
        ax.set_yticks(range(len(rows)), [_short(n, 60) for n, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel=f"mean {label}", title="model vs baselines (same rows)")
        files.append(_save(fig, out / "baselines.png"))
    return files


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:  # savefig takes the format from the name
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path.name


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(metric: str, value) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if metric == "bleu" else f"{value:.4f}"


def _paired(main, other, hits, other_hits, cfg) -> dict:
    """The model minus another prediction file, row by row, with paired bootstrap CIs (family accuracy
    from the per-row family hits, when the truth has families)."""
    out = {k: paired_difference(main.rows[r], other.rows[r], cfg.bootstrap, cfg.seed)
           for k, r in (("scs", "scs"), ("token_f1", "token_f1"), ("category_accuracy", "category_match"))
           if r in main.rows and r in other.rows}
    if hits is not None:
        out["family_accuracy"] = paired_difference(hits, other_hits, cfg.bootstrap, cfg.seed)
    return out


def render_markdown(r: dict) -> str:
    m, ci = r["metrics"], r["ci"]
    lines = [f"# Evaluation: {r['model']}", "",
             f"- predictions: `{r['predictions']}`", f"- truth: `{r['truth']}`" + (" (subset)" if r["subset"] else ""),
             f"- rows: {r['n']}; empty predictions: {r['empty_predictions']}",
             f"- SCS embedder: **{r['embedder']}** (`{r['embedder_source']}`)",
             f"- 95% CIs: percentile bootstrap, {r['bootstrap']['resamples']} resamples, seed {r['bootstrap']['seed']}",
             "", "## Headline metrics", "", "| metric | value | 95% CI |", "|---|---|---|"]
    for k in ("scs", "bleu", "rouge_l", "token_f1", "exact_match", "category_accuracy", "category_macro_f1"):
        if k in m:
            c = ci.get(k)
            lines.append(f"| {k} | {_fmt(k, m[k])} | {f'{_fmt(k, c[0])} – {_fmt(k, c[1])}' if c else '–'} |")
    cols = ("scs", "bleu", "token_f1", "category_accuracy")
    if r["baselines"]:
        lines += ["", "## Model vs baselines (same rows)", "",
                  "| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
                  f"| **{_cell(r['model'])}** | " + " | ".join(_fmt(k, m.get(k)) for k in cols) + " |"]
        for b in r["baselines"]:
            lines.append(f"| {_cell(b['name'])} | " + " | ".join(_fmt(k, b["metrics"].get(k)) for k in cols) + " |")
        paired = [b for b in r["baselines"] if b.get("paired")]
        if paired:
            lines += ["", "## Paired differences (model minus the other file, same rows, paired bootstrap 95% CI)", "",
                      "A CI that excludes 0 is a difference the rows support.", "",
                      "| other file | metric | difference | 95% CI |", "|---|---|---|---|"]
            for b in paired:
                for k, v in b["paired"].items():
                    ci = f"{v['ci'][0]:+.4f} – {v['ci'][1]:+.4f}" if v["ci"] else "–"
                    lines.append(f"| {_cell(b['name'])} | {k} | {v['diff']:+.4f} | {ci} |")
    for field, title in (("by_category", "By category of the true instruction"), ("by_source", "By source")):
        if r[field]:
            lines += ["", f"## {title}", "", "| group | n | scs | bleu | token_f1 | category acc. |",
                      "|---|---|---|---|---|---|"]
            for g, v in r[field].items():
                lines.append(f"| {_cell(g)} | {v['n']} | {_fmt('scs', v.get('scs'))} | {_fmt('bleu', v.get('bleu'))} "
                             f"| {_fmt('f', v.get('token_f1'))} | {_fmt('f', v.get('category_match'))} |")
    fam = r.get("family_accuracy")
    if fam:
        lines += ["", f"## Family accuracy: {fam['accuracy']:.3f} ({fam['correct']}/{fam['n']})", "",
                  "A prediction is right when its category equals the true instruction's.", "",
                  "| family | n | correct | accuracy |", "|---|---|---|---|"]
        lines += [f"| {_cell(f)} | {v['n']} | {v['correct']} | {v['accuracy']:.2f} |" for f, v in fam["families"].items()]
    if r["worst"]:
        lines += ["", f"## The {len(r['worst'])} worst rows (lowest SCS)", "",
                  "| id | scs | truth | prediction |", "|---|---|---|---|"]
        for w in r["worst"]:
            lines.append(f"| {_cell(w['id'])} | {_fmt('scs', w['scs'])} | {_cell(_short(w['truth'], 120))} "
                         f"| {_cell(_short(w['prediction'], 120))} |")
    if r["plots"]:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in r["plots"]]
    lines += ["", "Metric definitions: docs/evaluation.md.", ""]
    return "\n".join(lines)


def run(cfg: EvaluateConfig) -> int:
    r = evaluate(cfg)
    m, ci = r["metrics"], r["ci"]
    scs_ci = f" (95% CI {ci['scs'][0]:.4f}–{ci['scs'][1]:.4f})" if "scs" in ci else ""
    print(f"{r['model']}: n={r['n']}  SCS[{r['embedder']}]={m['scs']:.4f}{scs_ci}  BLEU={m['bleu']:.2f}  "
          f"token-F1={m['token_f1']:.4f}  category-acc={m['category_accuracy']:.4f}  "
          f"category-macro-F1={m['category_macro_f1']:.4f}")
    if r.get("family_accuracy"):
        f = r["family_accuracy"]
        print(f"family accuracy: {f['accuracy']:.3f} ({f['correct']}/{f['n']})")
    for b in r["baselines"]:
        print(f"  baseline {_short(b['name'], 60)}: SCS={b['metrics']['scs']:.4f}  BLEU={b['metrics']['bleu']:.2f}")
        for k, v in (b.get("paired") or {}).items():
            if k in ("scs", "family_accuracy"):
                ci = f" (95% CI {v['ci'][0]:+.4f} – {v['ci'][1]:+.4f})" if v["ci"] else ""
                print(f"    model minus it, {k}: {v['diff']:+.4f}{ci}")
    print(f"report: {Path(cfg.output_dir) / 'report.md'}")
    return 0
