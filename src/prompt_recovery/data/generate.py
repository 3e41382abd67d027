"""The `generate` command: new (original, prompt, rewrite) triples from a real LLM rewriter, resumable.

    prompt-recovery generate --originals ../shared/data/originals/dlerhetal_testBlend_3000.csv \\
        --prompt-bank ../shared/data/prompt_banks/osyuksel_prompts_cfg.json --n 200 --output runs/data/gen.jsonl
    prompt-recovery generate --rewriter http --endpoint http://127.0.0.1:8001/v1 --api-model google/gemma-7b-it \\
        --originals corpus.csv --n 5000 --concurrency 8 --output runs/data/gemma.jsonl
    prompt-recovery data clean --input runs/data/gen.jsonl --output runs/data/gen.clean.jsonl   # then clean it

The plan: row k (id ``<id-prefix>-000k``) gets an original (from the corpus files, or, with
probability ``--llm-originals``, written by the rewriter itself: "Write a short <genre> about
<topic>") and a rewrite prompt (from the bank files, or, with probability ``--template-ratio``, a
compositional template), both drawn with an RNG seeded by (seed, k). The rewriter is sent
``--request-template`` (default "{prompt}\\n\\n{text}", the competition's layout).

Resumable: every finished row is appended to OUTPUT (JSONL) at once; when a request fails for good
(an HTTP rewriter out of retries), the rows of its batch that did finish are written before the
error stops the run. Restarting the same command skips the ids already there (a half-written last
line from a killed run is discarded and redone), so nothing is lost or duplicated; raising ``--n``
extends a finished run. The plan settings are stored in ``<output>.plan.json``; resuming with
different settings is refused (use a new output). The plan file also marks OUTPUT as this command's own: an existing, non-empty OUTPUT without one
(a file it did not write) is refused, never appended to or cut.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery.config import opt
from prompt_recovery.data.prompts import TemplatePrompts, clip, load_corpus, load_prompt_bank, original_request
from prompt_recovery.data.rewriters import REQUEST_TEMPLATE, RewriteFailed, make_rewriter
from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_write_text, check_output
from prompt_recovery.scoring.categories import categorize

PLAN_KEYS = ("originals", "prompt_bank", "llm_originals", "template_ratio", "seed", "id_prefix", "request_template",
             "max_original_chars", "min_original_chars")


@dataclass
class GenerateConfig:
    output: str | None = opt(None, "output JSONL file (appended to; rerun the same command to resume)", aliases=("-o",))
    n: int = opt(100, "number of rows wanted in OUTPUT")
    originals: list[str] | None = opt(None, "corpus file(s) of original texts (.csv/.jsonl/.parquet with an "
                                      "original_text or text column, or .txt passages)")
    llm_originals: float = opt(0.2, "fraction of rows whose original is written by the rewriter LLM "
                               "(1.0 = no corpus needed)")
    prompt_bank: list[str] | None = opt(None, "prompt bank file(s) (.json list/object, table with rewrite_prompt, .txt)")
    template_ratio: float = opt(0.5, "fraction of prompts from compositional templates (1.0 = no bank needed)")
    rewriter: str = opt("local", "rewriter backend", choices=("local", "http"))
    model: str = opt("smollm2-135m", "local: model preset or directory (e.g. smollm2-135m, gemma3-270m)")
    device: str = opt("auto", "local: auto, cpu, cuda or cuda:N")
    dtype: str = opt("auto", "local: auto, float32, bfloat16 or float16")
    batch_size: int = opt(4, "local: rewrites per generation batch")
    endpoint: str | None = opt(None, "http: OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1")
    api_model: str = opt("default", "http: the model name sent to the endpoint")
    api_key_env: str = opt("OPENAI_API_KEY", "http: environment variable holding the API key (if any)")
    concurrency: int = opt(4, "http: requests in flight")
    timeout: float = opt(120.0, "http: seconds to wait for one answer")
    retries: int = opt(3, "http: retries per request (timeouts, connection errors, 429, 5xx)")
    backoff: float = opt(1.0, "http: first retry delay in seconds (doubles each retry; randomised between half "
                         "and all of it; a server's Retry-After is waited at least)")
    max_new_tokens: int = opt(256, "maximum tokens per rewrite")
    temperature: float = opt(0.7, "sampling temperature (0 = greedy)")
    request_template: str = opt(REQUEST_TEMPLATE, "message sent to the rewriter; {prompt} and {text} are filled")
    max_original_chars: int = opt(1500, "corpus originals are cut (at a word) to this many characters")
    min_original_chars: int = opt(40, "corpus passages shorter than this are skipped")
    id_prefix: str = opt("gen", "row ids are <id-prefix>-000000, ...")
    seed: int = opt(0, "seed of the plan and of sampling")

    def validate(self) -> None:
        if not self.output:
            raise UserError("give --output FILE.jsonl")
        if Path(self.output).suffix.lower() != ".jsonl":
            raise UserError(f"--output must be a .jsonl file (rows are appended as they finish), got {self.output}")
        if self.n < 1:
            raise UserError("--n must be at least 1")
        for name in ("llm_originals", "template_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1")
        if self.llm_originals < 1.0 and not self.originals:
            raise UserError("give --originals FILE (or --llm-originals 1.0 to let the LLM write every original)")
        if self.template_ratio < 1.0 and not self.prompt_bank:
            raise UserError("give --prompt-bank FILE (or --template-ratio 1.0 to use templates only)")
        if self.rewriter == "http" and not self.endpoint:
            raise UserError("--rewriter http needs --endpoint URL (an OpenAI-compatible base URL ending in /v1)")
        if "{prompt}" not in self.request_template or "{text}" not in self.request_template:
            raise UserError("--request-template must contain {prompt} and {text}")


class Planner:
    """Row k -> the original (or the request for one) and the prompt; independent of n and of restarts."""

    def __init__(self, cfg: GenerateConfig):
        self.cfg = cfg
        self.corpus = [(clip(t, cfg.max_original_chars), s) for t, s in
                       load_corpus(cfg.originals or [], cfg.min_original_chars)] if cfg.originals else []
        self.bank = load_prompt_bank(cfg.prompt_bank) if cfg.prompt_bank else []
        self.templates = TemplatePrompts(cfg.seed)

    def row(self, k: int) -> dict:
        c = self.cfg
        rng = random.Random(f"plan-{c.seed}-{k}")
        use_llm = (not self.corpus) or rng.random() < c.llm_originals
        use_template = (not self.bank) or rng.random() < c.template_ratio
        row = {"id": f"{c.id_prefix}-{k:06d}"}
        if use_llm:
            row["original_request"], row["source"] = original_request(k, c.seed)
            row["original_text"] = None
        else:
            row["original_text"], row["source"] = self.corpus[rng.randrange(len(self.corpus))]
        if use_template:
            row["rewrite_prompt"], tcat = self.templates.sample(k)
            row["category"] = categorize(row["rewrite_prompt"], tcat)
            row["prompt_source"] = "template"
        else:
            row["rewrite_prompt"] = self.bank[rng.randrange(len(self.bank))]
            row["category"] = categorize(row["rewrite_prompt"])
            row["prompt_source"] = "bank"
        return row


def plan_path(out: Path) -> Path:
    """The plan sidecar: it records the settings, and marks OUTPUT as a file this command wrote."""
    return out.with_name(out.name + ".plan.json")


def read_done(path: Path) -> set[str]:
    """Ids already in OUTPUT. Only a file this command wrote (its plan sidecar is there) is resumed: anything
    else is refused before it is touched. A last line cut short by a kill is removed; a complete last row that
    merely lacks its newline gets one."""
    if not path.exists() or path.stat().st_size == 0:
        return set()
    if not plan_path(path).is_file():
        raise UserError(f"{path} exists and was not written by `prompt-recovery generate` (no "
                        f"{plan_path(path).name} next to it); refusing to append to it: use a new --output")
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    body, tail = data[:end], data[end:]
    done = set()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not valid UTF-8 (byte {e.start}); use a new --output") from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        rid = _row_id(line)
        if rid is None:
            raise UserError(f"{path}:{i} is not a generated row; use a new --output") from None
        done.add(rid)
    if tail:
        rid = _row_id(tail.decode("utf-8", "replace"))
        with open(path, "r+b") as f:
            if rid is not None and rid not in done:  # a whole row, only its newline missing: keep it
                f.seek(len(data))
                f.write(b"\n")
                done.add(rid)
            else:  # half a row, written when the run was killed: it is generated again
                f.truncate(len(body))
    return done


def _row_id(line: str) -> str | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or "rewritten_text" not in rec:
        return None
    return rec["id"]


def check_plan(cfg: GenerateConfig, out: Path, resuming: bool) -> None:
    meta_path = plan_path(out)
    plan = {k: getattr(cfg, k) for k in PLAN_KEYS}
    if resuming and meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        diff = sorted(k for k in PLAN_KEYS if old.get(k) != plan[k])
        if diff:
            raise UserError(f"{out} was started with different {', '.join(diff)}; resume with the same settings "
                            "or write to a new --output")
    atomic_write_text(meta_path, json.dumps(plan, indent=2) + "\n")


def rewriter_for(cfg: GenerateConfig):
    """The rewriter of the command's options (`rewriters.make_rewriter`), sampling with --temperature and --seed."""
    return make_rewriter(cfg.rewriter, cfg.model, cfg.endpoint, cfg.api_model, max_new_tokens=cfg.max_new_tokens,
                         temperature=cfg.temperature, seed=cfg.seed, device=cfg.device, dtype=cfg.dtype,
                         batch_size=cfg.batch_size, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                         timeout=cfg.timeout, retries=cfg.retries, backoff=cfg.backoff)


def complete_keeping(rewriter, messages: list[str]) -> tuple[list, Exception | None]:
    """(answers, error): `rewriter.complete(messages)`, but when it fails with the answers it finished
    (`RewriteFailed.done`), those answers (None for the others) and the error instead of the raise."""
    try:
        return rewriter.complete(messages), None
    except RewriteFailed as e:
        if len(e.done) != len(messages):
            raise
        return e.done, e


def generate(cfg: GenerateConfig, rewriter=None, progress: bool = True) -> dict:
    """Fill OUTPUT up to cfg.n rows; returns {'done_before', 'written', 'seconds'}."""
    import time

    from tqdm.auto import tqdm

    out = Path(cfg.output)
    inputs = [*(cfg.originals or []), *(cfg.prompt_bank or [])]
    check_output(out, inputs, what=f"--output {out}", append=True)
    check_output(plan_path(out), inputs, what=f"the plan file {plan_path(out)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out)
    check_plan(cfg, out, resuming=bool(done))
    todo = [k for k in range(cfg.n) if f"{cfg.id_prefix}-{k:06d}" not in done]
    stats = {"done_before": len(done), "written": 0, "seconds": 0.0}
    if not todo:
        return stats
    planner = Planner(cfg)
    own = rewriter is None
    rewriter = rewriter or rewriter_for(cfg)
    chunk = cfg.batch_size if cfg.rewriter == "local" else max(1, cfg.concurrency) * 2
    t0 = time.time()
    bar = tqdm(total=cfg.n, initial=cfg.n - len(todo), desc="generating", unit="row", disable=not progress)
    try:
        with open(out, "a", encoding="utf-8") as f:
            for i in range(0, len(todo), chunk):
                rows = [planner.row(k) for k in todo[i:i + chunk]]
                need = [r for r in rows if r["original_text"] is None]
                error = None
                if need:
                    texts, error = complete_keeping(rewriter, [r["original_request"] for r in need])
                    for r, text in zip(need, texts):
                        r["original_text"] = text
                    if error is not None:  # rows without their original are not rewritten: redone on resume
                        rows = []
                msgs = [cfg.request_template.format(prompt=r["rewrite_prompt"], text=r["original_text"]) for r in rows]
                texts, err = complete_keeping(rewriter, msgs) if rows else ([], None)
                error = error or err
                for r, text in zip(rows, texts):
                    if text is None:  # its request failed: left for the rerun
                        continue
                    r.pop("original_request", None)
                    rec = {"id": r["id"], "original_text": r["original_text"], "rewrite_prompt": r["rewrite_prompt"],
                           "rewritten_text": text, "source": r["source"], "rewriter": rewriter.name,
                           "category": r["category"], "prompt_source": r["prompt_source"]}
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    f.flush()
                    stats["written"] += 1
                os.fsync(f.fileno())
                bar.update(sum(t is not None for t in texts))
                if error is not None:  # the chunk's finished rows are on disk: now stop
                    raise error
    finally:
        bar.close()
        stats["seconds"] = time.time() - t0
        close = getattr(rewriter, "close", None)
        if own and close:
            close()
    return stats


def run(cfg: GenerateConfig) -> int:
    stats = generate(cfg)
    total = stats["done_before"] + stats["written"]
    if stats["written"]:
        rate = stats["written"] / max(stats["seconds"], 1e-9) * 60
        print(f"wrote {stats['written']} rows ({rate:.1f} rewrites/min); {cfg.output} now holds {total} rows")
    else:
        print(f"{cfg.output} already holds {stats['done_before']} rows (>= --n {cfg.n}); nothing to do")
    return 0
