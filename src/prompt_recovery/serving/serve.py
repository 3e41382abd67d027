"""A local HTTP service and web page for prompt recovery: the `serve` command and `create_app`.

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

import asyncio
import logging
import math
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prompt_recovery.config import ModelOptions, opt
from prompt_recovery.errors import UserError

# NB: no `from __future__ import annotations` here: FastAPI reads the request models from the endpoint
# annotations at runtime.

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_TEXT_CHARS = 20_000
MAX_BATCH_PAIRS = 32
MAX_WAITING = 64
READ_TIMEOUT = 30.0  # seconds a connection may take to send one complete request
KEEP_ALIVE = 5  # seconds an idle keep-alive connection is kept open between requests
MAX_CONNECTIONS = 256  # open connections (and requests in flight) before new requests get 503
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _name_only(value: str | None) -> str | None:
    """A model/adapter as a name: a local path becomes its last component (no server paths in answers)."""
    if not value:
        return value
    p = Path(str(value)).expanduser()
    if p.is_absolute() or str(value).startswith((".", "~")) or p.exists() or "\\" in str(value):
        return p.name or str(value)
    return str(value)  # a preset or hub id


def public_name(recoverer) -> str:
    """How the server names its model to clients: preset (or folder name) + adapter name, never a path."""
    loaded = getattr(recoverer, "loaded", None)
    if loaded is None or not hasattr(loaded, "model_name"):
        return re.sub(r"(?:[A-Za-z]:)?(?:~|\.{1,2})?[\\/](?:[^\s\\/,()]+[\\/])*([^\s\\/,()]+)", r"\1",
                      recoverer.describe())
    adapter = _name_only(loaded.adapter)
    a = f" + adapter {adapter}" if adapter else ""
    fmt = getattr(getattr(recoverer, "prompt_format", None), "name", None)
    backend = getattr(recoverer, "backend", None)
    tail = (f", prompt format {fmt}" if fmt else "") + (f", backend {backend}" if backend else "")
    return f"{_name_only(loaded.model_name)}{a} on {loaded.device} ({loaded.dtype}){tail}"


def _host_of(header: str) -> str:
    """The host name of a Host header value, without port or IPv6 brackets, lower case."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def allowed_hosts_for(host: str, extra: list[str] | None = None) -> list[str] | None:
    """Host names the server answers to when listening on `host` (None: any, when `extra` holds "*").

    Loopback names always; the listening address itself; for a wildcard address (0.0.0.0, ::) also this
    machine's host names and their addresses. Anything else (e.g. a DNS-rebinding attacker's domain,
    resolved to 127.0.0.1 by a browser) is refused with 400."""
    extra = [e.strip().lower() for e in extra or [] if e.strip()]
    if "*" in extra:
        return None
    names = set(LOOPBACK_NAMES) | set(extra)
    h = _host_of(host) if host else ""
    if h and h not in ("0.0.0.0", "::"):
        names.add(h)
    else:
        for n in {socket.gethostname(), socket.getfqdn()}:
            if n:
                names.add(n.lower())
                try:
                    names.update(str(i[4][0]).lower() for i in socket.getaddrinfo(n, None))
                except OSError:
                    pass
    return sorted(_host_of(n) for n in names)


class HostCheck:
    """ASGI middleware: requests whose Host header is not one of `allowed` get 400 (no Host header: let through,
    browsers always send one)."""

    def __init__(self, app, allowed: list[str]):
        self.app, self.allowed = app, {_host_of(a) for a in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            raw = dict(scope.get("headers") or []).get(b"host")
            if raw is not None:
                host = _host_of(raw.decode("latin-1"))
                if host not in self.allowed:
                    from starlette.responses import JSONResponse

                    shown = raw.decode("latin-1")[:100]
                    resp = JSONResponse({"detail": f"Host {shown!r} is not accepted by this server (it answers to "
                                                   f"{', '.join(sorted(self.allowed))}; see --allowed-hosts)"},
                                        status_code=400)
                    await resp(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _json_safe(value):
    """A value that can go back in a JSON reply: non-finite floats and non-JSON objects are dropped."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return None


class Busy(Exception):
    """Too many requests are already queued."""


class ModelQueue:
    """Runs model calls one at a time, first come first served, on a single worker thread."""

    def __init__(self, max_waiting: int = MAX_WAITING):
        self.max_waiting = max_waiting
        self.pending = 0  # queued or running
        self._count = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn, *args):
        with self._count:
            if self.pending >= self.max_waiting:
                raise Busy
            self.pending += 1
            if self._executor is None:  # (re)started lazily, so an app can be served again after close()
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-recovery-model")
            executor = self._executor
        try:
            return await asyncio.wrap_future(executor.submit(fn, *args))
        finally:
            with self._count:
                self.pending -= 1

    def close(self) -> None:
        with self._count:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _check_limit(pairs: list[tuple[str, str]], max_chars: int, batch: bool) -> None:
    from fastapi import HTTPException

    for i, (o, r) in enumerate(pairs):
        for name, text in (("original_text", o), ("rewritten_text", r)):
            if len(text) > max_chars:
                where = f"pairs[{i}]." if batch else ""
                raise HTTPException(413, f"{where}{name} has {len(text):,} characters; the limit is "
                                         f"{max_chars:,} per text")


def _check_text(pairs: list[tuple[str, str]], batch: bool) -> None:
    from fastapi import HTTPException

    for i, (o, r) in enumerate(pairs):
        for name, text in (("original_text", o), ("rewritten_text", r)):
            where = f"pairs[{i}]." if batch else ""
            if not text.strip():
                raise HTTPException(422, f"{where}{name} is empty")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise HTTPException(422, f"{where}{name} is not valid Unicode: unpaired surrogate "
                                         f"{text[e.start]!a} at character {e.start}") from None


def _describe_validation(errors) -> str:
    """One readable line for pydantic/FastAPI request-validation errors."""
    parts = []
    for e in errors:
        typ, loc = e.get("type", ""), list(e.get("loc", ()))
        if loc[:1] == ["body"] or loc[:1] == ("body",):
            loc = loc[1:]
        if typ == "json_invalid":
            err = (e.get("ctx") or {}).get("error", "")
            pos = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
            parts.append(f"request body is not valid JSON{pos}{': ' + str(err) if err else ''}")
            continue
        where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc).lstrip(".")
        if typ == "missing":
            parts.append(f"missing field {where}" if where else "missing JSON request body")
        elif typ == "model_attributes_type" and not where:
            hint = (" (send it with the header Content-Type: application/json)"
                    if isinstance(e.get("input"), (str, bytes)) else "")
            parts.append(f"the request body must be a JSON object{hint}")
        else:
            parts.append(f"{where or 'request body'}: {e.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


# ---------------------------------------------------------------- the API: request/response models, service, routes

class Pair(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "original_text": "The meeting is at 3pm.", "rewritten_text": "Arr, the meetin' be at 3 bells!"}]})
    original_text: str = Field(description="the original text (at most max_text_chars characters: see /health)")
    rewritten_text: str = Field(description="the rewritten text (at most max_text_chars characters: see /health)")


class BatchPair(Pair):
    id: str | int | None = Field(None, description="optional id, echoed back in the result")


class Batch(BaseModel):
    pairs: list[BatchPair] = Field(min_length=1, description="1 to max_batch_pairs pairs (see /health)")


class Recovered(BaseModel):
    rewrite_prompt: str = Field(description="the recovered instruction (one non-empty line)")
    model: str = Field(description="the model that answered")
    latency_ms: float = Field(description="time in the server, queueing included")


class BatchItem(BaseModel):
    id: str | int | None = None
    rewrite_prompt: str


class BatchRecovered(BaseModel):
    results: list[BatchItem] = Field(description="one result per pair, in input order")
    model: str
    latency_ms: float


@dataclass(frozen=True)
class Limits:
    """What one server accepts (the `serve` options of the same names)."""

    max_text_chars: int = MAX_TEXT_CHARS
    max_batch_pairs: int = MAX_BATCH_PAIRS
    max_waiting: int = MAX_WAITING

    @property
    def max_body(self) -> int:
        """Largest request body, in bytes (JSON escapes take up to 6 bytes a character)."""
        return self.max_batch_pairs * 2 * self.max_text_chars * 6 + (1 << 20)


class Service:
    """The model behind the routes: `recoverer` run through one `ModelQueue`, named `name`, within `limits`."""

    def __init__(self, recoverer, name: str, limits: Limits):
        self.recoverer, self.name, self.limits = recoverer, name, limits
        self.queue = ModelQueue(limits.max_waiting)

    async def recover(self, pairs: list[tuple[str, str]], batch: bool) -> list[str]:
        """Instructions for checked `pairs`, in order: 413 for a text over the limit, 422 for an empty or
        invalid one, 503 when the queue is full."""
        from fastapi import HTTPException

        _check_limit(pairs, self.limits.max_text_chars, batch)
        _check_text(pairs, batch)
        try:
            return await self.queue.run(self.recoverer.recover_batch, pairs)
        except Busy:
            raise HTTPException(503, f"the server is busy ({self.limits.max_waiting} requests waiting); retry "
                                     "shortly", headers={"Retry-After": "1"}) from None

    def health(self) -> dict:
        lim = self.limits
        return {"status": "ok", "model": self.name, "pending": self.queue.pending,
                "limits": {"max_text_chars": lim.max_text_chars, "max_batch_pairs": lim.max_batch_pairs,
                           "max_waiting": lim.max_waiting}}


_ERRORS = {422: {"description": "malformed JSON, missing field or empty text"},
           503: {"description": "too many requests queued"}}


def api_router(service: Service):
    """The endpoints: the page, /health, /examples, /recover and /recover/batch."""
    from fastapi import APIRouter, HTTPException
    from fastapi.responses import HTMLResponse

    from prompt_recovery.inference.recover import load_examples

    router = APIRouter()
    max_pairs = service.limits.max_batch_pairs

    def ms_since(t0: float) -> float:
        return round((time.perf_counter() - t0) * 1e3, 1)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @router.get("/health", summary="liveness, the model and the limits")
    def health():
        return service.health()

    @router.get("/examples", summary="example (original, rewritten, true instruction) triples")
    def examples():
        return [{k: row[k] for k in ("id", "original_text", "rewritten_text", "rewrite_prompt")}
                for row in load_examples()]

    @router.post("/recover", response_model=Recovered, summary="recover the instruction for one pair",
                 responses={413: {"description": "a text is longer than the limit"}, **_ERRORS})
    async def recover(pair: Pair):
        t0 = time.perf_counter()
        out = await service.recover([(pair.original_text, pair.rewritten_text)], batch=False)
        return Recovered(rewrite_prompt=out[0], model=service.name, latency_ms=ms_since(t0))

    @router.post("/recover/batch", response_model=BatchRecovered, summary=f"recover up to {max_pairs} pairs",
                 responses={413: {"description": "too many pairs or a text longer than the limit"}, **_ERRORS})
    async def recover_batch(batch: Batch):
        t0 = time.perf_counter()
        if len(batch.pairs) > max_pairs:
            raise HTTPException(413, f"{len(batch.pairs)} pairs in one request; the limit is {max_pairs}")
        outs = await service.recover([(p.original_text, p.rewritten_text) for p in batch.pairs], batch=True)
        return BatchRecovered(results=[BatchItem(id=p.id, rewrite_prompt=o) for p, o in zip(batch.pairs, outs)],
                              model=service.name, latency_ms=ms_since(t0))

    return router


async def limit_body(request, call_next):
    """HTTP middleware: a clear 413 for a declared body over the service's limit, before reading it."""
    from fastapi.responses import JSONResponse

    max_body = request.app.state.service.limits.max_body
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > max_body:
        return JSONResponse({"detail": f"request body of {int(size):,} bytes is too large; the limit is "
                                       f"{max_body:,} bytes"}, status_code=413)
    return await call_next(request)


def add_error_handlers(app) -> None:
    """Bad input is a 422 with one readable `detail` (never a 500); a failure of ours is a 500 without details."""
    from fastapi import Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():  # only what JSON can carry: NaN/Infinity inputs and exception objects are dropped
            item = {k: _json_safe(v) for k, v in e.items() if k in ("type", "msg")}
            item["loc"] = [x if isinstance(x, (str, int)) else str(x) for x in e.get("loc", ())]
            value = _json_safe(e.get("input"))
            if isinstance(value, str) and len(value) > 200:  # don't echo whole (20,000-character) inputs back
                value = value[:200] + "..."
            if value is not None or e.get("input", 0) is None:
                item["input"] = value
            ctx = {k: v if isinstance(v, (str, int, bool)) else str(v) for k, v in (e.get("ctx") or {}).items()}
            if ctx:
                item["ctx"] = ctx
            errors.append(item)
        return JSONResponse({"detail": _describe_validation(exc.errors()), "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, (UnicodeDecodeError, RecursionError)):  # unparsable body
            detail = ("request body is not valid JSON: " + (f"invalid UTF-8 at byte {cause.start}"
                      if isinstance(cause, UnicodeDecodeError) else "nested too deeply"))
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):  # a bug or the model failing, not bad input
        log.exception("error serving %s", request.url.path)  # the details (and any paths) stay in the log
        return JSONResponse({"detail": f"internal error: {type(exc).__name__} (see the server log)"},
                            status_code=500)


def create_app(recoverer, *, max_text_chars: int = MAX_TEXT_CHARS, max_batch_pairs: int = MAX_BATCH_PAIRS,
               max_waiting: int = MAX_WAITING, model_name: str | None = None,
               allowed_hosts: list[str] | None = None):
    """A FastAPI app serving `recoverer` (a loaded `prompt_recovery.Recoverer`) to many clients.

    `allowed_hosts`: the Host header names answered (others: 400); None answers any (the `serve` command
    always passes a list, see `allowed_hosts_for`)."""
    import inspect
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    limits = Limits(max_text_chars, max_batch_pairs, max_waiting)
    service = Service(recoverer, model_name or public_name(recoverer), limits)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.queue.close()

    # FastAPI's own cap also bounds chunked bodies (no Content-Length) but answers a bare "Content Too Large";
    # it sits above ours, so declared sizes up to 4x the limit get our clearer message from `limit_body`.
    extra = ({"max_body_size": 4 * limits.max_body} if "max_body_size" in inspect.signature(FastAPI).parameters
             else {})
    app = FastAPI(title="prompt-recovery", version=_version(), lifespan=lifespan, **extra,
                  description="Recover the instruction an LLM was given from the original and rewritten texts. "
                              f"Limits: {max_text_chars:,} characters per text (413 above), {max_batch_pairs} "
                              f"pairs per batch (413 above), {max_waiting} requests queued (503 above).")
    app.state.service, app.state.recoverer, app.state.queue = service, recoverer, service.queue
    app.middleware("http")(limit_body)
    add_error_handlers(app)
    app.include_router(api_router(service))
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=list(allowed_hosts))  # outermost: checked before anything else
    return app


def _version() -> str:
    from prompt_recovery import __version__

    return __version__


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
    from prompt_recovery.inference.recover import Recoverer

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
