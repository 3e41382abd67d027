"""Generation: prompt sampling, the HTTP rewriter against a real local server, resumption after a kill."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prompt_recovery.data.generate import GenerateConfig, Planner, generate, read_done
from prompt_recovery.data.prompts import TASKS, TemplatePrompts, load_prompt_bank
from prompt_recovery.data.rewriters import HTTPRewriter
from prompt_recovery.errors import UserError

FIX = Path(__file__).parent / "fixtures"


class FakeLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint: echoes 'REWRITE<<message>>'; 'SLOW' sleeps; fail_next -> 500s."""

    state = {"fail_next": 0, "calls": 0, "delay": 0.0}

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        msg = body["messages"][0]["content"]
        self.state["calls"] += 1
        if self.state["fail_next"] > 0:
            self.state["fail_next"] -= 1
            return self._send(500, {"error": "overloaded"})
        if "SLOW" in msg:
            time.sleep(1.5)
        time.sleep(self.state["delay"])
        if msg.startswith("Write a short") and msg.endswith("Reply with the text only."):
            text = "An LLM-written original about " + msg.split(" about ")[1].split(".")[0] + "."
        else:
            text = f"REWRITE<<{msg}>>"
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients that time out close the socket early
        pass


@pytest.fixture
def server():
    FakeLLM.state.update(fail_next=0, calls=0, delay=0.0)
    srv = QuietServer(("127.0.0.1", 0), FakeLLM)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def corpus(tmp_path):
    p = tmp_path / "corpus.csv"
    p.write_text("text\n" + "\n".join(f'"Original passage number {i} about town life, long enough to use."'
                                      for i in range(20)) + "\n")
    return p


def test_templates_cover_every_category_and_are_deterministic():
    t = TemplatePrompts(seed=1)
    got = [t.sample(k) for k in range(300)]
    assert {c for _, c in got} == set(TASKS)
    assert got[:5] == [TemplatePrompts(seed=1).sample(k) for k in range(5)]
    assert len({p for p, _ in got}) > 150  # variety
    assert all(p.endswith(".") and "{" not in p for p, _ in got)


def test_prompt_bank_formats(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["Make it rhyme.", "Make it rhyme.", "Shorten it."]))
    (tmp_path / "b.json").write_text(json.dumps({"Turn it into a tweet.": 3}))
    (tmp_path / "c.txt").write_text("Write it as a haiku.\n\nShorten it.\n")
    assert load_prompt_bank([tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.txt", FIX / "data_triples.csv"])[:5] \
        == ["Make it rhyme.", "Shorten it.", "Turn it into a tweet.", "Write it as a haiku.", "Rewrite this as a pirate."]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="holds no prompts"):
        load_prompt_bank([tmp_path / "empty.txt"])


def test_plan_mixes_llm_originals_and_templates_by_ratio(tmp_path):
    cfg = GenerateConfig(output=str(tmp_path / "o.jsonl"), n=400, originals=[str(corpus(tmp_path))],
                         llm_originals=0.25, prompt_bank=[str(FIX / "data_triples.csv")], template_ratio=0.5)
    plan = Planner(cfg)
    rows = [plan.row(k) for k in range(400)]
    llm = sum(r["original_text"] is None for r in rows) / 400
    tmpl = sum(r["prompt_source"] == "template" for r in rows) / 400
    assert 0.18 < llm < 0.32 and 0.42 < tmpl < 0.58
    assert all(r["category"] for r in rows)
    assert rows[7] == Planner(cfg).row(7)


def test_http_rewriter_retries_500_then_succeeds(server):
    FakeLLM.state["fail_next"] = 2
    rw = HTTPRewriter(server, retries=3, backoff=0.01, concurrency=1)
    assert rw.complete(["Make it short.\n\nhello"]) == ["REWRITE<<Make it short.\n\nhello>>"]
    assert FakeLLM.state["calls"] == 3


def test_http_rewriter_gives_up_on_persistent_500(server):
    FakeLLM.state["fail_next"] = 100
    rw = HTTPRewriter(server, retries=2, backoff=0.01)
    with pytest.raises(UserError, match=r"failed after 3 attempt\(s\): HTTP 500"):
        rw.complete(["x"])
    assert FakeLLM.state["calls"] == 3


def test_http_rewriter_timeout(server):
    rw = HTTPRewriter(server, timeout=0.3, retries=1, backoff=0.01)
    t = time.time()
    with pytest.raises(UserError, match=r"no answer within 0.3 s"):
        rw.complete(["SLOW please"])
    assert time.time() - t < 3


def test_http_rewriter_endpoint_down_and_concurrency(server):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(UserError, match="cannot connect .*is the server running"):
        HTTPRewriter(f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.01).complete(["x"])
    FakeLLM.state["delay"] = 0.3
    rw = HTTPRewriter(server, concurrency=4)
    t = time.time()
    out = rw.complete([f"m{i}" for i in range(8)])
    assert out == [f"REWRITE<<m{i}>>" for i in range(8)]  # order kept
    assert time.time() - t < 1.6  # 8 x 0.3 s sequential would be 2.4 s


def test_generate_http_end_to_end_and_resume_after_failure(server, tmp_path):
    out = tmp_path / "gen.jsonl"
    cfg = GenerateConfig(output=str(out), n=12, originals=[str(corpus(tmp_path))], llm_originals=0.3,
                         template_ratio=1.0, rewriter="http", endpoint=server, concurrency=2, retries=0)
    # a failure injected after the first chunk (4 rows): rows written so far are kept
    rw = HTTPRewriter(server, concurrency=2, retries=0)
    orig = rw.complete
    calls = {"n": 0}

    def flaky(msgs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise UserError("endpoint went away")
        return orig(msgs)

    rw.complete = flaky
    with pytest.raises(UserError, match="went away"):
        generate(cfg, rewriter=rw, progress=False)
    first = read_done(out)
    assert 0 < len(first) < 12
    stats = generate(cfg, progress=False)
    assert stats["done_before"] == len(first) and stats["written"] == 12 - len(first)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [f"gen-{k:06d}" for k in range(12)]
    for r in rows:
        assert r["rewritten_text"] == f"REWRITE<<{r['rewrite_prompt']}\n\n{r['original_text']}>>"
        assert r["rewriter"] == "http:default" and r["category"]
    llm_rows = [r for r in rows if r["source"].startswith("llm-original:")]
    assert llm_rows and all(r["original_text"].startswith("An LLM-written original about") for r in llm_rows)
    # finished: a rerun does nothing; a different plan is refused
    assert generate(cfg, progress=False)["written"] == 0
    cfg.seed = 5
    with pytest.raises(UserError, match="different seed"):
        generate(cfg, progress=False)


def test_generate_resumes_after_sigkill(server, tmp_path):
    out = tmp_path / "gen.jsonl"
    FakeLLM.state["delay"] = 0.1
    cmd = [sys.executable, "-m", "prompt_recovery.cli", "generate", "--output", str(out), "--n", "30",
           "--originals", str(corpus(tmp_path)), "--llm-originals", "0", "--template-ratio", "1",
           "--rewriter", "http", "--endpoint", server, "--concurrency", "1", "--retries", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 5):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with open(out, "a") as f:
        f.write('{"id": "gen-0000')  # simulate a line cut mid-write
    n_before = len(read_done(out))
    assert 5 <= n_before < 30
    FakeLLM.state["delay"] = 0.0
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"wrote {30 - n_before} rows" in r.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in sorted(rows, key=lambda x: x["id"])] == [f"gen-{k:06d}" for k in range(30)]
    assert len(rows) == 30
    for x in rows:
        assert x["rewritten_text"] == f"REWRITE<<{x['rewrite_prompt']}\n\n{x['original_text']}>>"


def test_generate_config_errors(tmp_path):
    from prompt_recovery.cli import main

    assert main(["generate", "--output", str(tmp_path / "o.jsonl")]) == 2
    assert main(["generate", "--output", str(tmp_path / "o.csv"), "--llm-originals", "1", "--template-ratio", "1"]) == 2
    assert main(["generate", "--output", str(tmp_path / "o.jsonl"), "--llm-originals", "1", "--template-ratio", "1",
                 "--rewriter", "http"]) == 2


def test_generate_local_tiny_model(tmp_path):
    from prompt_recovery.data.rewriters import LocalRewriter
    from prompt_recovery.models import Loaded, tiny_random

    model, tok = tiny_random("mistral")
    loaded = Loaded(model, tok, "tiny-random-mistral", "in-process", None, {}, "cpu", "float32")
    rw = LocalRewriter("tiny-random-mistral", max_new_tokens=5, batch_size=3, loaded=loaded)
    assert rw.render("Hi").startswith("<s>[INST] Hi")
    cfg = GenerateConfig(output=str(tmp_path / "g.jsonl"), n=5, llm_originals=1.0, template_ratio=1.0,
                         batch_size=3, max_new_tokens=5)
    stats = generate(cfg, rewriter=rw, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert stats["written"] == 5 and [r["id"] for r in rows] == [f"gen-{k:06d}" for k in range(5)]
    assert all(r["rewriter"] == "local:tiny-random-mistral" and isinstance(r["rewritten_text"], str) for r in rows)


def test_a_base_model_without_chat_template_is_prompted_after_its_begin_token():
    from prompt_recovery.data.rewriters import LocalRewriter
    from prompt_recovery.models import Loaded, tiny_random

    model, tok = tiny_random("llama")
    assert not getattr(tok, "chat_template", None) and tok.bos_token
    rw = LocalRewriter("tiny-random-llama", max_new_tokens=3, loaded=Loaded(model, tok, "tiny-random-llama",
                                                                              "in-process", None, {}, "cpu",
                                                                              "float32"))
    text = rw.render("Make it short.\n\nHello there.")
    assert text == f"{tok.bos_token}Make it short.\n\nHello there.\n\nAnswer:\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]  # how generation and the likelihood judge tokenize it
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
