"""A local HTTP service and web page for prompt recovery: the `serve` command, running `serving.app` under uvicorn.

    prompt-recovery serve                                   # http://127.0.0.1:8000/  (page), /docs (API)
    prompt-recovery serve --port 9000 --model tiny-random-mistral --adapter none
    curl -s localhost:8000/recover -H 'content-type: application/json' \\
         -d '{"original_text": "The meeting is at 3pm.", "rewritten_text": "Arr, the meetin be at 3 bells!"}'

Endpoints: `GET /` (the page), `GET /health`, `GET /examples`, `POST /recover`,
`POST /recover/batch`, `GET /openapi.json` and `GET /docs` (FastAPI's schema and explorer).

One model, many clients: the model is loaded once; every request is put on a FIFO queue served
by ONE worker thread, so generation never runs twice at once and each answer is exactly what
`Recoverer.recover_batch` gives for that request's pairs. Limits (all options of the command):
each text at most `max_text_chars` characters (larger: 413), at most `max_batch_pairs` pairs per
batch request (more: 413), at most `max_waiting` requests queued or running (more: 503 with
Retry-After). Malformed JSON (also invalid UTF-8, NaN/Infinity, nesting too deep), missing or
mistyped fields and empty texts get 422 with a readable `detail`; bad input never gets a 500.
It binds to 127.0.0.1 by default, answers only requests whose Host header names this machine
(DNS rebinding; `--allowed-hosts` widens the list), closes connections that send no complete
request within `--read-timeout` seconds, caps open connections at `--max-connections`, and
reports the model by preset/adapter name, never by file path. It has no authentication: don't
expose it publicly.
"""

import logging
import math
import socket
import sys
import threading
import time
from dataclasses import dataclass

from prompt_recovery.config import ModelOptions, opt
from prompt_recovery.errors import UserError
from prompt_recovery.inference.recover import Recoverer
from prompt_recovery.serving.app import (LOOPBACK_NAMES, MAX_BATCH_PAIRS, MAX_TEXT_CHARS, MAX_WAITING,
                                         allowed_hosts_for, create_app, public_name)

log = logging.getLogger(__name__)

READ_TIMEOUT = 30.0  # seconds a connection may take to send one complete request
KEEP_ALIVE = 5  # seconds an idle keep-alive connection is kept open between requests
MAX_CONNECTIONS = 256  # open connections (and requests in flight) before new requests get 503


# ---------------------------------------------------------------- running a server

def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free port), or a one-line UserError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"cannot resolve host {host!r}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}"
                        + ("; choose another --port" if e.errno in (98, 48) else "")) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _protocol(read_timeout: float):
    """uvicorn's h11 protocol plus a read deadline: a connection that has not sent a complete request
    `read_timeout` seconds after it opened (or after its last answer) is closed. uvicorn alone keeps a
    connection that never sends anything (or sends a header a byte a minute) open for ever."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ReadDeadlineProtocol(H11Protocol):
        _deadline = None

        def _arm_deadline(self) -> None:
            self._cancel_deadline()
            self._deadline = self.loop.call_later(read_timeout, self._deadline_passed)

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _deadline_passed(self) -> None:
            self._deadline = None
            # still waiting for (the rest of) a request: give up on it; a request being answered is left alone
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_deadline()

        def connection_lost(self, exc) -> None:
            self._cancel_deadline()
            super().connection_lost(exc)

    return ReadDeadlineProtocol


def uvicorn_config(app, log_level: str = "info", read_timeout: float = READ_TIMEOUT, keep_alive: int = KEEP_ALIVE,
                   max_connections: int = MAX_CONNECTIONS):
    """The uvicorn settings of the `serve` command (and `BackgroundServer`): read deadline, keep-alive and a
    connection cap (beyond `max_connections` open connections, requests are answered 503)."""
    import uvicorn

    try:
        http = _protocol(read_timeout)
    except ImportError:  # another uvicorn layout: its own h11 protocol, still with keep-alive and the cap
        http = "h11"
    return uvicorn.Config(app, log_level=log_level, lifespan="on", http=http, ws="none",
                          timeout_keep_alive=keep_alive, limit_concurrency=max_connections)


def ready_server(config, on_ready):
    """A uvicorn.Server that calls `on_ready()` once it is listening (its signal handlers already in place)."""
    import uvicorn

    class ReadyServer(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                on_ready()

    return ReadyServer(config)


class BackgroundServer:
    """uvicorn serving `app` from a daemon thread (tests, notebooks): `with BackgroundServer(app) as url:`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 read_timeout: float = READ_TIMEOUT, keep_alive: int = KEEP_ALIVE,
                 max_connections: int = MAX_CONNECTIONS):
        import uvicorn

        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn_config(app, log_level, read_timeout, keep_alive, max_connections))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError("the background server did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- the `serve` command

@dataclass
class ServeConfig(ModelOptions):
    host: str = opt("127.0.0.1", "address to listen on (127.0.0.1 = this machine only; the service has no "
                    "authentication, think twice before 0.0.0.0)")
    port: int = opt(8000, "TCP port (0 = any free port)")
    max_text_chars: int = opt(MAX_TEXT_CHARS, "longest accepted text, in characters (longer: HTTP 413)")
    max_batch_pairs: int = opt(MAX_BATCH_PAIRS, "most pairs in one /recover/batch request (more: HTTP 413)")
    max_waiting: int = opt(MAX_WAITING, "most requests queued or running at once (more: HTTP 503)")
    allowed_hosts: list[str] | None = opt(None, "extra Host header names to answer to (default: localhost, "
                                          "127.0.0.1, ::1 and the --host address; '*' = any, which lets web pages "
                                          "reach the server through DNS rebinding)")
    read_timeout: float = opt(READ_TIMEOUT, "seconds a connection may take to send a complete request (then it "
                              "is closed)")
    keep_alive: int = opt(KEEP_ALIVE, "seconds an idle keep-alive connection stays open between requests")
    max_connections: int = opt(MAX_CONNECTIONS, "most open connections; beyond it requests get HTTP 503")
    log_level: str = opt("info", "server log level", choices=("critical", "error", "warning", "info", "debug"))

    def validate(self) -> None:
        for f in ("max_text_chars", "max_batch_pairs", "max_waiting", "batch_size", "max_new_tokens",
                  "keep_alive", "max_connections"):
            if getattr(self, f) < 1:
                raise UserError(f"--{f.replace('_', '-')} must be at least 1 (got {getattr(self, f)})")
        if not self.read_timeout > 0 or not math.isfinite(self.read_timeout):
            raise UserError(f"--read-timeout must be a positive number of seconds (got {self.read_timeout})")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be between 0 and 65535 (got {self.port})")


def run(cfg: ServeConfig) -> int:
    sock = bind(cfg.host, cfg.port)  # fail fast on a busy port, before loading the model
    try:
        if cfg.host not in LOOPBACK_NAMES:
            log.warning("listening on %s: anyone who can reach this address can use the model (no authentication)",
                        cfg.host)
        hosts = allowed_hosts_for(cfg.host, cfg.allowed_hosts)
        print(f"prompt-recovery: loading {cfg.model} ...", file=sys.stderr, flush=True)
        recoverer = Recoverer.from_options(cfg)
        app = create_app(recoverer, max_text_chars=cfg.max_text_chars, max_batch_pairs=cfg.max_batch_pairs,
                         max_waiting=cfg.max_waiting, allowed_hosts=hosts)
        url = url_of(sock)

        def ready():  # printed once uvicorn listens and handles Ctrl-C itself: from here on Ctrl-C exits 0
            print(f"prompt-recovery: serving {public_name(recoverer)} on {url}/ (API docs {url}/docs); Ctrl-C stops",
                  flush=True)

        server = ready_server(uvicorn_config(app, cfg.log_level, cfg.read_timeout, cfg.keep_alive,
                                             cfg.max_connections), ready)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
            if not server.started:
                raise
    finally:
        sock.close()
    print("prompt-recovery: server stopped", file=sys.stderr)
    return 0
