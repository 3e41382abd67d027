"""The OpenAI-compatible HTTP rewriter against httpx.MockTransport: `seed` sent, Retry-After honoured,
exponential backoff with jitter, and the finished rows of a batch kept when one request fails.

    .venv/bin/python -m pytest tests/test_http_rewriter.py -q
"""

import email.utils
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from prompt_recovery.data.generate import GenerateConfig, generate, read_done
from prompt_recovery.data.rewriters import HTTPRewriter, RewriteFailed, retry_after
from prompt_recovery.errors import UserError

URL = "http://llm.test/v1"


def answer(text: str, code: int = 200, headers: dict | None = None) -> httpx.Response:
    body = {"choices": [{"message": {"role": "assistant", "content": text}}]} if code == 200 else {"error": "no"}
    return httpx.Response(code, json=body, headers=headers or {})


def rewriter(handler, **kw) -> tuple[HTTPRewriter, list[float]]:
    """An HTTPRewriter whose requests go to `handler` and whose waits are recorded, not slept."""
    rw = HTTPRewriter(URL, transport=httpx.MockTransport(handler), **kw)
    slept: list[float] = []
    rw._sleep = slept.append
    return rw, slept


def message(request: httpx.Request) -> str:
    return json.loads(request.content)["messages"][0]["content"]


def test_request_body_carries_seed_temperature_and_max_tokens():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return answer("ok")

    rw, _ = rewriter(handler, seed=7, temperature=0.3, max_new_tokens=64, model="gemma")
    assert rw.complete(["Make it short.\n\nhello"]) == ["ok"]
    assert seen == [{"model": "gemma", "messages": [{"role": "user", "content": "Make it short.\n\nhello"}],
                     "max_tokens": 64, "temperature": 0.3, "seed": 7}]
    rw, _ = rewriter(handler, seed=None)
    rw.complete(["x"])
    assert "seed" not in seen[-1]


def test_generate_sends_its_seed(tmp_path):
    seeds = []

    def handler(request):
        seeds.append(json.loads(request.content)["seed"])
        return answer("rewritten")

    cfg = GenerateConfig(output=str(tmp_path / "g.jsonl"), n=3, llm_originals=1.0, template_ratio=1.0,
                         rewriter="http", endpoint=URL, seed=11)
    rw, _ = rewriter(handler, seed=cfg.seed)
    generate(cfg, rewriter=rw, progress=False)
    assert seeds and set(seeds) == {11}
    # and the command builds its rewriter with --seed
    from prompt_recovery.data.generate import rewriter_for

    assert rewriter_for(cfg).body("m")["seed"] == 11


@pytest.mark.parametrize("headers,wait", [
    ({"Retry-After": "7"}, 7.0),
    ({"Retry-After": "2.5"}, 2.5),
    ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),  # OpenAI's millisecond header wins
])
def test_retry_after_is_honoured(headers, wait):
    calls = []

    def handler(request):
        calls.append(1)
        return answer("", 429, headers) if len(calls) == 1 else answer("done")

    rw, slept = rewriter(handler, backoff=0.01, retries=3)
    assert rw.complete(["x"]) == ["done"]
    assert len(calls) == 2 and len(slept) == 1
    assert slept[0] == pytest.approx(wait)  # at least what the server asked, though the backoff was 0.01 s


def test_retry_after_http_date_and_503():
    when = time.time() + 30
    date = email.utils.formatdate(when, usegmt=True)
    assert retry_after({"Retry-After": date}, now=when - 30) == pytest.approx(30, abs=1)
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None
    assert retry_after({"Retry-After": "-5"}) == 0.0
    calls = []

    def handler(request):
        calls.append(1)
        return answer("", 503, {"Retry-After": date}) if len(calls) == 1 else answer("done")

    rw, slept = rewriter(handler, backoff=0.01)
    assert rw.complete(["x"]) == ["done"]
    assert 25 < slept[0] <= 31


def test_retry_after_beyond_the_limit_stops_at_once():
    calls = []

    def handler(request):
        calls.append(1)
        return answer("", 429, {"Retry-After": "3600"})

    rw, slept = rewriter(handler, retries=5, max_retry_after=600)
    with pytest.raises(UserError, match=r"asks to wait 3600 s \(Retry-After\).*rerun the command later"):
        rw.complete(["x"])
    assert len(calls) == 1 and slept == []


def test_exponential_backoff_with_jitter():
    def handler(request):
        return answer("", 500)

    rw, slept = rewriter(handler, backoff=1.0, retries=6, max_backoff=10.0)
    with pytest.raises(UserError, match=r"failed after 7 attempt\(s\): HTTP 500"):
        rw.complete(["x"])
    assert len(slept) == 6
    for attempt, d in enumerate(slept, 1):
        full = min(10.0, 2.0 ** (attempt - 1))
        assert full / 2 <= d <= full  # between half and all of the exponential delay, capped
    # jitter: the same attempt gets different delays (parallel requests do not retry in lockstep)
    assert len({round(rw.delay(3), 6) for _ in range(20)}) > 1
    assert all(rw.delay(1, asked=4.0) == 4.0 for _ in range(5))


def test_a_failed_request_keeps_the_batch_answers():
    started = threading.Barrier(4, timeout=5)

    def handler(request):
        m = message(request)
        started.wait()  # all four in flight before any answers
        if m == "bad":
            return answer("", 400)
        time.sleep(0.05)
        return answer(m.upper())

    rw, _ = rewriter(handler, concurrency=4)
    with pytest.raises(RewriteFailed, match="HTTP 400") as e:
        rw.complete(["a", "bad", "c", "d"])
    assert e.value.done == ["A", None, "C", "D"]
    assert isinstance(e.value, UserError)  # still the one-line error the CLI prints


def test_after_a_failure_requests_not_started_are_cancelled():
    seen = []

    def handler(request):
        seen.append(message(request))
        return answer("", 401) if message(request) == "m0" else answer("fine")

    rw, _ = rewriter(handler, concurrency=1)
    with pytest.raises(RewriteFailed) as e:
        rw.complete([f"m{i}" for i in range(5)])
    assert seen == ["m0"] and e.value.done == [None] * 5
    seen.clear()
    rw, _ = rewriter(handler, concurrency=2)
    with pytest.raises(RewriteFailed) as e:
        rw.complete([f"m{i}" for i in range(40)])
    assert len(seen) < 40  # the queue was dropped
    assert all(d in (None, "fine") for d in e.value.done)


def test_generate_writes_the_chunks_finished_rows_before_the_error(tmp_path):
    """One request of a chunk fails for good: the chunk's other rows are on disk when the error surfaces,
    and a rerun adds only the missing rows."""
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("text\n" + "\n".join(f'"Original passage {i} about harbour life, long enough to use."'
                                            for i in range(10)) + "\n")
    out = tmp_path / "gen.jsonl"
    cfg = GenerateConfig(output=str(out), n=8, originals=[str(corpus)], llm_originals=0.0, template_ratio=1.0,
                         rewriter="http", endpoint=URL, concurrency=4, retries=2)
    state = {"broken": "gen-000005"}
    plan_msgs = {}

    def handler(request):
        m = message(request)
        if state["broken"] and plan_msgs.get(m) == state["broken"]:
            time.sleep(0.2)  # slow to fail: the rest of the chunk has started (those not started are dropped)
            return answer("", 500)
        time.sleep(0.02)
        return answer(f"REWRITE<<{m}>>")

    from prompt_recovery.data.generate import Planner

    planner = Planner(cfg)
    for k in range(8):
        r = planner.row(k)
        plan_msgs[cfg.request_template.format(prompt=r["rewrite_prompt"], text=r["original_text"])] = r["id"]
    rw, slept = rewriter(handler, concurrency=4, retries=2)
    with pytest.raises(UserError, match="failed after 3 attempt"):
        generate(cfg, rewriter=rw, progress=False)
    done = read_done(out)
    # chunk size is 2 x concurrency = 8: every row but the broken one was finished and kept
    assert done == {f"gen-{k:06d}" for k in range(8)} - {"gen-000005"}
    assert len(slept) == 2  # the broken request was retried with backoff
    state["broken"] = None
    stats = generate(cfg, rewriter=rewriter(handler, concurrency=4)[0], progress=False)
    assert stats == {**stats, "done_before": 7, "written": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [f"gen-{k:06d}" for k in range(8)]
    for r in rows:
        assert r["rewritten_text"] == f"REWRITE<<{r['rewrite_prompt']}\n\n{r['original_text']}>>"


def test_generate_llm_original_failure_keeps_earlier_chunks(tmp_path):
    """A failed request for an LLM-written original: nothing of that chunk is half-written."""
    out = tmp_path / "gen.jsonl"
    cfg = GenerateConfig(output=str(out), n=6, llm_originals=1.0, template_ratio=1.0, rewriter="http",
                         endpoint=URL, concurrency=1, retries=0)
    calls = {"n": 0}

    def handler(request):
        calls["n"] += 1
        if calls["n"] == 5:  # chunk 1 = rows 0-1 (2 originals + 2 rewrites); the 5th call is chunk 2's
            return answer("", 500)
        return answer("text")

    rw, _ = rewriter(handler, concurrency=1, retries=0)
    with pytest.raises(UserError, match="HTTP 500"):
        generate(cfg, rewriter=rw, progress=False)
    assert read_done(out) == {"gen-000000", "gen-000001"}
    assert Path(str(out) + ".plan.json").is_file()
