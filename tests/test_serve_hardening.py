"""The HTTP service under hostile but honest input (issue 16): no 500 for bad input, the documented codes,
Host header check, no server paths in answers, idle connections closed, Ctrl-C right after start-up.

    .venv/bin/python -m pytest -q tests/test_serve_hardening.py
"""

import dataclasses
import os
import select
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from prompt_recovery.models import ADAPTERS_DIR
from prompt_recovery.inference.recover import Recoverer
from prompt_recovery.serving.app import create_app
from prompt_recovery.serving.serve import BackgroundServer, ServeConfig

PAIR = {"original_text": "The meeting is at 3pm.", "rewritten_text": "Arr, the meetin' be at 3 bells!"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def recoverer():
    """Shorter answers than conftest's: these tests look at status codes and headers (`client` serves it)."""
    return Recoverer.load(model="tiny-random-mistral", adapter="none", max_new_tokens=4)


# ---------------------------------------------------------------- 6. NaN / Infinity: 422, never 500

@pytest.mark.parametrize("path, body", [
    ("/recover", b'{"original_text": NaN, "rewritten_text": "b"}'),
    ("/recover", b'{"original_text": "a", "rewritten_text": Infinity}'),
    ("/recover", b'{"original_text": -Infinity, "rewritten_text": NaN}'),
    ("/recover/batch", b'{"pairs": [{"original_text": NaN, "rewritten_text": "b"}]}'),
    ("/recover/batch", b'{"pairs": [{"id": Infinity, "original_text": "a", "rewritten_text": "b"}]}'),
    ("/recover/batch", b'{"pairs": NaN}'),
    ("/recover", b'{"original_text": 1e999, "rewritten_text": "b"}'),
])
def test_nan_and_infinity_are_422(client, path, body):
    r = client.post(path, content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert "Input should be a valid" in r.json()["detail"]
    assert "NaN" not in r.text and "Infinity" not in r.text  # the answer is strict JSON


# ---------------------------------------------------------------- 7. unparsable bodies: 422 as documented

@pytest.mark.parametrize("body, detail", [
    (b'{"original_text": "caf\xe9", "rewritten_text": "b"}', "request body is not valid JSON: invalid UTF-8 at byte"),
    (b"[" * 100_000 + b"]" * 100_000, "request body is not valid JSON: nested too deeply"),
    (b'{"original_text": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b', "rewritten_text": "b"}',
     "request body is not valid JSON: nested too deeply"),
])
def test_invalid_utf8_and_deep_nesting_are_422(client, body, detail):
    r = client.post("/recover", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(detail)


# ---------------------------------------------------------------- 8. Host header (DNS rebinding)

def test_default_allowed_hosts():
    from prompt_recovery.serving.app import allowed_hosts_for

    assert allowed_hosts_for("127.0.0.1") == ["127.0.0.1", "::1", "localhost"]
    assert "myhost.example" in allowed_hosts_for("127.0.0.1", ["MyHost.example"])
    assert allowed_hosts_for("127.0.0.1", ["*"]) is None
    wild = allowed_hosts_for("0.0.0.0")
    assert "localhost" in wild and socket.gethostname().lower() in wild
    assert ServeConfig().allowed_hosts is None


def test_foreign_host_header_is_refused(recoverer):
    from prompt_recovery.serving.app import allowed_hosts_for

    app = create_app(recoverer, allowed_hosts=allowed_hosts_for("127.0.0.1"))
    with BackgroundServer(app) as url:
        port = url.rsplit(":", 1)[1]
        assert httpx.get(f"{url}/health").status_code == 200  # Host: 127.0.0.1:PORT
        for host in (f"localhost:{port}", "localhost", f"[::1]:{port}", "LOCALHOST."):
            assert httpx.get(f"{url}/health", headers={"host": host}).status_code == 200, host
        for host in (f"evil.example:{port}", "evil.example", "127.0.0.1.evil.example", "[::2]:80", "localhost:80:x"):
            r = httpx.get(f"{url}/health", headers={"host": host})
            assert r.status_code == 400, host
            assert "is not accepted" in r.json()["detail"]
        r = httpx.post(f"{url}/recover", json=PAIR, headers={"host": "rebind.attacker.example"})
        assert r.status_code == 400
    anyhost = create_app(recoverer, allowed_hosts=allowed_hosts_for("127.0.0.1", ["*"]))
    with TestClient(anyhost) as c:
        assert c.get("/health", headers={"host": "whatever.example"}).status_code == 200


# ---------------------------------------------------------------- 9. no server paths in answers

def test_answers_name_the_model_without_paths(recoverer):
    loaded = dataclasses.replace(recoverer.loaded, model_name="/srv/secret/models/my-model",
                                 adapter=str(ADAPTERS_DIR / "smollm2-135m-prompt-recovery"))
    rec = Recoverer(loaded, recoverer.prompt_format, recoverer.max_new_tokens, engine=recoverer.engine)
    assert "/" in rec.describe()
    name = ("my-model + adapter smollm2-135m-prompt-recovery on cpu (float32), prompt format chat, "
                    "backend transformers")
    with TestClient(create_app(rec)) as c:
        health = c.get("/health").json()
        one = c.post("/recover", json=PAIR).json()
        batch = c.post("/recover/batch", json={"pairs": [PAIR]}).json()
    for body in (health, one, batch):
        assert body["model"] == name
    from prompt_recovery.serving.app import public_name

    assert public_name(rec) == name
    assert public_name(recoverer) == recoverer.describe()  # a preset without adapter: nothing to hide


def test_internal_errors_do_not_leak_messages(recoverer):
    class Broken:
        loaded = recoverer.loaded
        prompt_format = recoverer.prompt_format
        backend = "x"

        def recover_batch(self, pairs, *a, **k):
            raise RuntimeError("cannot open /srv/secret/path/model.bin")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as c:
        r = c.post("/recover", json=PAIR)
    assert r.status_code == 500
    assert "/srv" not in r.text and r.json()["detail"].startswith("internal error: RuntimeError")


# ---------------------------------------------------------------- 10. idle connections, connection cap, Ctrl-C

def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def test_idle_and_slow_connections_are_closed(recoverer):
    app = create_app(recoverer)
    with BackgroundServer(app, read_timeout=1.0) as url:
        host, port = url[len("http://"):].split(":")
        idle = socket.create_connection((host, int(port)))
        slow = socket.create_connection((host, int(port)))
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # a header that never ends
        t0 = time.monotonic()
        assert _closed_within(idle, 5) and _closed_within(slow, 5)
        assert time.monotonic() - t0 < 4
        idle.close(), slow.close()
        # an ordinary request on a keep-alive connection is answered; the connection is closed when idle
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.settimeout(5)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            assert _closed_within(s, 8)
        assert httpx.get(f"{url}/health").status_code == 200


def test_connection_cap(recoverer):
    app = create_app(recoverer)
    with BackgroundServer(app, max_connections=3, read_timeout=30) as url:
        host, port = url[len("http://"):].split(":")
        held = [socket.create_connection((host, int(port))) for _ in range(3)]
        time.sleep(0.3)
        try:
            assert httpx.get(f"{url}/health").status_code == 503
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        assert httpx.get(f"{url}/health").status_code == 200


def test_default_server_limits():
    from prompt_recovery.serving.serve import uvicorn_config

    cfg = ServeConfig()
    assert (cfg.read_timeout, cfg.keep_alive, cfg.max_connections) == (30.0, 5, 256)
    ucfg = uvicorn_config(None)
    assert ucfg.timeout_keep_alive == 5 and ucfg.limit_concurrency == 256


@pytest.mark.parametrize("argv", [["--read-timeout", "0"], ["--max-connections", "0"], ["--keep-alive", "-1"]])
def test_bad_server_limits_are_one_line_errors(argv, capsys):
    from prompt_recovery.cli import main

    assert main(["serve", *argv]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_ctrl_c_right_after_the_ready_line_exits_0():
    for _ in range(2):
        p = subprocess.Popen([sys.executable, "-m", "prompt_recovery.cli", "serve", "--port", "0", "--model",
                              "tiny-random-mistral", "--adapter", "none", "--log-level", "warning"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=os.environ | {"PYTHONUNBUFFERED": "1"})
        try:
            ready, _, _ = select.select([p.stdout], [], [], 180)
            line = p.stdout.readline() if ready else ""
            assert "serving tiny-random-mistral" in line
            p.send_signal(signal.SIGINT)  # at once: the ready line promises Ctrl-C is handled
            rc = p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        err = p.stderr.read()
        assert rc == 0, err
        assert "Traceback" not in err and "server stopped" in err
