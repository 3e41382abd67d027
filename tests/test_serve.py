"""The HTTP service: status codes, limits, answers equal to `Recoverer.recover`, 20 concurrent clients.

    .venv/bin/python -m pytest -q tests/test_serve.py
"""

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from prompt_recovery.scoring.suite import load_examples
from prompt_recovery.serving.app import MAX_TEXT_CHARS, Busy, ModelQueue, create_app
from prompt_recovery.serving.serve import BackgroundServer, ServeConfig, bind

PAIR = {"original_text": "The meeting is at 3pm in room 4B.",
        "rewritten_text": "Arr, the meetin' be at 3 bells in cabin 4B!"}


@pytest.fixture(scope="module")
def small(recoverer):
    """An app with small limits, to test the boundaries cheaply."""
    app = create_app(recoverer, max_text_chars=50, max_batch_pairs=3)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_defaults_bind_localhost_and_document_limits():
    cfg = ServeConfig()
    assert (cfg.host, cfg.port, cfg.max_text_chars) == ("127.0.0.1", 8000, 20_000)
    assert MAX_TEXT_CHARS == 20_000


def test_health_and_page_and_openapi(client, recoverer):
    h = client.get("/health")
    assert h.status_code == 200
    body = h.json()
    assert body["status"] == "ok" and body["model"] == recoverer.describe()
    assert body["limits"] == {"max_text_chars": 20_000, "max_batch_pairs": 32, "max_waiting": 64}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needle in ('id="original"', 'id="rewritten"', 'id="recover"', 'id="instruction"', 'id="error"'):
        assert needle in page.text
    schema = client.get("/openapi.json").json()
    assert {"/recover", "/recover/batch", "/health", "/examples"} <= set(schema["paths"])
    assert set(schema["paths"]["/recover"]["post"]["responses"]) >= {"200", "413", "422", "503"}
    assert client.get("/docs").status_code == 200


def test_examples_endpoint_serves_the_bundled_pairs(client):
    got = client.get("/examples").json()
    want = load_examples()
    assert [g["id"] for g in got] == [w["id"] for w in want]
    assert got[0]["original_text"] == want[0]["original_text"]
    assert got[0]["rewrite_prompt"] == want[0]["rewrite_prompt"]


def test_recover_equals_recoverer(client, recoverer):
    for ex in load_examples()[:2]:
        pair = {k: ex[k] for k in ("original_text", "rewritten_text")}
        r = client.post("/recover", json=pair)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["rewrite_prompt"] == recoverer.recover(ex["original_text"], ex["rewritten_text"])
        assert body["rewrite_prompt"].strip() and "\n" not in body["rewrite_prompt"]
        assert body["model"] == recoverer.describe()
        assert isinstance(body["latency_ms"], float) and body["latency_ms"] > 0


def test_text_over_the_limit_is_413(client, small):
    big = {"original_text": "a" * 20_001, "rewritten_text": "b"}
    r = client.post("/recover", json=big)
    assert r.status_code == 413
    assert r.json()["detail"] == "original_text has 20,001 characters; the limit is 20,000 per text"
    # boundary: exactly the limit passes, one more is refused
    assert small.post("/recover", json={"original_text": "x" * 50, "rewritten_text": "y"}).status_code == 200
    r = small.post("/recover", json={"original_text": "x", "rewritten_text": "y" * 51})
    assert r.status_code == 413 and "rewritten_text has 51 characters" in r.json()["detail"]


def test_declared_body_over_the_limit_is_413_before_parsing(small):
    # 3 pairs x 2 texts x 50 chars x 6 bytes + 1 MiB
    r = small.post("/recover/batch", content=b'{"pairs": []}' + b" " * (2 << 20),
                   headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["detail"] == "request body of 2,097,165 bytes is too large; the limit is 1,050,376 bytes"


@pytest.mark.parametrize("kwargs, detail", [
    ({"content": b'{"original_text": "a", ', "headers": {"content-type": "application/json"}},
     "request body is not valid JSON at character 23: Expecting property name enclosed in double quotes"),
    ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, "request body is not valid JSON"),
    ({"json": {"original_text": "a"}}, "missing field rewritten_text"),
    ({"json": {"rewritten_text": "a"}}, "missing field original_text"),
    ({"json": {}}, "missing field original_text; missing field rewritten_text"),
    ({"content": b""}, "missing JSON request body"),
    ({"json": {"original_text": 3, "rewritten_text": "b"}}, "original_text: Input should be a valid string"),
    ({"json": ["a", "b"]}, "the request body must be a JSON object"),
    ({"content": b"null", "headers": {"content-type": "application/json"}}, "the request body must be a JSON object"),
    ({"data": {"original_text": "a", "rewritten_text": "b"}},
     "the request body must be a JSON object (send it with the header Content-Type: application/json)"),
    ({"json": {"original_text": "  \n", "rewritten_text": "b"}}, "original_text is empty"),
    ({"content": b'{"original_text": "a\\ud800", "rewritten_text": "b"}',
      "headers": {"content-type": "application/json"}},
     "original_text is not valid Unicode: unpaired surrogate '\\ud800' at character 1"),
])
def test_bad_input_is_422_with_a_readable_detail(client, kwargs, detail):
    r = client.post("/recover", **kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail)


def test_wrong_method_and_path(client):
    assert client.get("/recover").status_code == 405
    assert client.post("/nope", json=PAIR).status_code == 404


def test_batch_keeps_order_and_ids_and_equals_recover_batch(small, recoverer):
    pairs = [{"id": "a", "original_text": "Short one.", "rewritten_text": "SHORT ONE!"},
             {"id": 7, "original_text": "A much longer original sentence here.", "rewritten_text": "Longer, in verse."},
             {"original_text": "Third.", "rewritten_text": "3rd."}]
    r = small.post("/recover/batch", json={"pairs": pairs})
    assert r.status_code == 200, r.text
    body = r.json()
    want = recoverer.recover_batch([(p["original_text"], p["rewritten_text"]) for p in pairs])
    assert [x["rewrite_prompt"] for x in body["results"]] == want
    assert [x["id"] for x in body["results"]] == ["a", 7, None]
    assert body["model"] == recoverer.describe()


def test_batch_limits(small):
    r = small.post("/recover/batch", json={"pairs": [PAIR | {"original_text": "x"}] * 4})
    assert r.status_code == 413 and r.json()["detail"] == "4 pairs in one request; the limit is 3"
    r = small.post("/recover/batch", json={"pairs": []})
    assert r.status_code == 422 and r.json()["detail"].startswith("pairs: List should have at least 1 item")
    r = small.post("/recover/batch", json={"pairs": [{"original_text": "x", "rewritten_text": "y"},
                                                     {"original_text": "x", "rewritten_text": " "}]})
    assert r.status_code == 422 and r.json()["detail"] == "pairs[1].rewritten_text is empty"
    r = small.post("/recover/batch", json={"pairs": [{"original_text": "x", "rewritten_text": "y"},
                                                     {"original_text": "x"}]})
    assert r.status_code == 422 and r.json()["detail"] == "missing field pairs[1].rewritten_text"
    r = small.post("/recover/batch", json={"pairs": [{"original_text": "x", "rewritten_text": "y" * 51}]})
    assert r.status_code == 413 and r.json()["detail"].startswith("pairs[0].rewritten_text has 51 characters")


def test_queue_runs_one_call_at_a_time_in_order_and_refuses_when_full():
    async def main():
        q = ModelQueue(max_waiting=4)
        active, peak, order = [0], [0], []
        lock = threading.Lock()

        def work(i):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            order.append(i)
            with lock:
                active[0] -= 1
            return i * i

        tasks = [asyncio.create_task(q.run(work, i)) for i in range(4)]
        await asyncio.sleep(0.01)
        with pytest.raises(Busy):  # 4 pending already
            await q.run(work, 99)
        results = await asyncio.gather(*tasks)
        assert q.pending == 0
        q.close()
        assert await q.run(work, 5) == 25  # usable again after close (an app served a second time)
        q.close()
        return results, peak[0], order[:4]

    results, peak, order = asyncio.run(main())
    assert results == [0, 1, 4, 9]
    assert peak == 1
    assert order == [0, 1, 2, 3]


def test_busy_server_answers_503_with_retry_after(recoverer):
    """A real request queued behind a slow one is refused when max_waiting=1."""
    app = create_app(recoverer, max_waiting=1)
    queue = app.state.queue
    gate = threading.Event()
    with TestClient(app, raise_server_exceptions=False) as c:
        blocker = threading.Thread(target=lambda: asyncio.run(queue.run(gate.wait, 10)))
        blocker.start()
        for _ in range(200):
            if queue.pending == 1:
                break
            time.sleep(0.01)
        try:
            r = c.post("/recover", json=PAIR)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert "busy" in r.json()["detail"]
        finally:
            gate.set()
            blocker.join()
        assert c.post("/recover", json=PAIR).status_code == 200


def test_20_concurrent_clients_on_a_real_server(recoverer):
    pairs = []
    for k in range(20):
        ex = load_examples()[k % 5]
        pairs.append((f"{ex['original_text']} (copy {k})", ex["rewritten_text"]))
    want = [recoverer.recover(o, r) for o, r in pairs]
    got: list = [None] * 20
    start = threading.Barrier(20)

    with BackgroundServer(create_app(recoverer)) as url:
        assert url.startswith("http://127.0.0.1:")

        def client(i):
            start.wait()
            with httpx.Client(timeout=120) as h:
                r = h.post(f"{url}/recover", json={"original_text": pairs[i][0], "rewritten_text": pairs[i][1]})
                got[i] = (r.status_code, r.json())

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert httpx.get(f"{url}/health").json()["pending"] == 0
    assert [g[0] for g in got] == [200] * 20
    assert [g[1]["rewrite_prompt"] for g in got] == want
    assert len(set(want)) > 1  # the pairs really differ, so a mix-up would show


def test_busy_port_is_a_one_line_error():
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        p = subprocess.run([sys.executable, "-m", "prompt_recovery.cli", "serve", "--port", str(port),
                            "--model", "tiny-random-mistral", "--adapter", "none"],
                           capture_output=True, text=True, timeout=120)
    finally:
        sock.close()
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"prompt-recovery: error: cannot listen on 127.0.0.1:{port}: "
                                             "Address already in use; choose another --port"]


def test_serve_command_end_to_end():
    p = subprocess.Popen([sys.executable, "-m", "prompt_recovery.cli", "serve", "--port", "0",
                          "--model", "tiny-random-mistral", "--adapter", "none", "--max-new-tokens", "8",
                          "--log-level", "warning"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        ready, _, _ = select.select([p.stdout], [], [], 180)  # don't hang if it never starts
        line = p.stdout.readline() if ready else ""
        assert "serving tiny-random-mistral" in line, line + p.stderr.read() if p.poll() is not None else line
        url = re.search(r"(http://\S+?)/ ", line).group(1)
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        r = httpx.post(f"{url}/recover", json=PAIR, timeout=60)
        assert r.status_code == 200 and r.json()["rewrite_prompt"].strip()
        assert json.loads(httpx.post(f"{url}/recover", json={}).text)["detail"].startswith("missing field")
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=30)
    assert rc == 0
