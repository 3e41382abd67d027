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
Retry-After). Malformed JSON, missing or mistyped fields and empty texts get 422 with a readable
`detail`. It binds to 127.0.0.1 by default and has no authentication: don't expose it publicly.
"""

import asyncio
import logging
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery.config import ModelOptions, opt
from prompt_recovery.errors import UserError

# NB: no `from __future__ import annotations` here: FastAPI reads the request models defined
# inside `create_app` from the endpoint annotations at runtime.

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_TEXT_CHARS = 20_000
MAX_BATCH_PAIRS = 32
MAX_WAITING = 64


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


def create_app(recoverer, *, max_text_chars: int = MAX_TEXT_CHARS, max_batch_pairs: int = MAX_BATCH_PAIRS,
               max_waiting: int = MAX_WAITING, model_name: str | None = None):
    """A FastAPI app serving `recoverer` (a loaded `prompt_recovery.Recoverer`) to many clients."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field

    from prompt_recovery.recover import load_examples

    name = model_name or recoverer.describe()
    queue = ModelQueue(max_waiting)
    max_body = max_batch_pairs * 2 * max_text_chars * 6 + (1 << 20)  # JSON escapes take up to 6 bytes/char

    class Pair(BaseModel):
        model_config = ConfigDict(json_schema_extra={"examples": [{
            "original_text": "The meeting is at 3pm.", "rewritten_text": "Arr, the meetin' be at 3 bells!"}]})
        original_text: str = Field(description=f"the original text (at most {max_text_chars:,} characters)")
        rewritten_text: str = Field(description=f"the rewritten text (at most {max_text_chars:,} characters)")

    class BatchPair(Pair):
        id: str | int | None = Field(None, description="optional id, echoed back in the result")

    class Batch(BaseModel):
        pairs: list[BatchPair] = Field(min_length=1, description=f"1 to {max_batch_pairs} pairs")

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

    @asynccontextmanager
    async def lifespan(app):
        yield
        queue.close()

    import inspect

    # FastAPI's own cap also bounds chunked bodies (no Content-Length) but answers a bare "Content Too Large";
    # it sits above ours, so declared sizes up to 4x the limit get our clearer message from `limit_body`.
    extra = {"max_body_size": 4 * max_body} if "max_body_size" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="prompt-recovery", version=_version(), lifespan=lifespan, **extra,
                  description="Recover the instruction an LLM was given from the original and rewritten texts. "
                              f"Limits: {max_text_chars:,} characters per text (413 above), {max_batch_pairs} "
                              f"pairs per batch (413 above), {max_waiting} requests queued (503 above).")
    app.state.recoverer, app.state.queue = recoverer, queue

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # a clear 413 before reading the body
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body:
            return JSONResponse({"detail": f"request body of {int(size):,} bytes is too large; the limit is "
                                           f"{max_body:,} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        for e in errors:  # don't echo whole (possibly 20,000-character) inputs back
            if isinstance(e.get("input"), str) and len(e["input"]) > 200:
                e["input"] = e["input"][:200] + "..."
            elif not isinstance(e.get("input"), (str, int, float, bool, type(None))):
                e.pop("input", None)
        return JSONResponse({"detail": _describe_validation(exc.errors()), "errors": errors}, status_code=422)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):  # a bug or the model failing, not bad input
        log.exception("error serving %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    async def generate(pairs: list[tuple[str, str]], batch: bool) -> list[str]:
        _check_limit(pairs, max_text_chars, batch)
        _check_text(pairs, batch)
        try:
            return await queue.run(recoverer.recover_batch, pairs)
        except Busy:
            raise HTTPException(503, f"the server is busy ({max_waiting} requests waiting); retry shortly",
                                headers={"Retry-After": "1"}) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/health", summary="liveness, the model and the limits")
    def health():
        return {"status": "ok", "model": name, "pending": queue.pending,
                "limits": {"max_text_chars": max_text_chars, "max_batch_pairs": max_batch_pairs,
                           "max_waiting": max_waiting}}

    @app.get("/examples", summary="example (original, rewritten, true instruction) triples")
    def examples():
        return [{k: row[k] for k in ("id", "original_text", "rewritten_text", "rewrite_prompt")}
                for row in load_examples()]

    @app.post("/recover", response_model=Recovered, summary="recover the instruction for one pair",
              responses={413: {"description": "a text is longer than the limit"},
                         422: {"description": "malformed JSON, missing field or empty text"},
                         503: {"description": "too many requests queued"}})
    async def recover(pair: Pair):
        t0 = time.perf_counter()
        out = await generate([(pair.original_text, pair.rewritten_text)], batch=False)
        return Recovered(rewrite_prompt=out[0], model=name, latency_ms=round((time.perf_counter() - t0) * 1e3, 1))

    @app.post("/recover/batch", response_model=BatchRecovered, summary=f"recover up to {max_batch_pairs} pairs",
              responses={413: {"description": "too many pairs or a text longer than the limit"},
                         422: {"description": "malformed JSON, missing field or empty text"},
                         503: {"description": "too many requests queued"}})
    async def recover_batch(batch: Batch):
        t0 = time.perf_counter()
        if len(batch.pairs) > max_batch_pairs:
            raise HTTPException(413, f"{len(batch.pairs)} pairs in one request; the limit is {max_batch_pairs}")
        outs = await generate([(p.original_text, p.rewritten_text) for p in batch.pairs], batch=True)
        return BatchRecovered(results=[BatchItem(id=p.id, rewrite_prompt=o) for p, o in zip(batch.pairs, outs)],
                              model=name, latency_ms=round((time.perf_counter() - t0) * 1e3, 1))

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


class BackgroundServer:
    """uvicorn serving `app` from a daemon thread (tests, notebooks): `with BackgroundServer(app) as url:`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
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
    log_level: str = opt("info", "server log level", choices=("critical", "error", "warning", "info", "debug"))

    def validate(self) -> None:
        for f in ("max_text_chars", "max_batch_pairs", "max_waiting", "batch_size", "max_new_tokens"):
            if getattr(self, f) < 1:
                raise UserError(f"--{f.replace('_', '-')} must be at least 1 (got {getattr(self, f)})")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be between 0 and 65535 (got {self.port})")


def run(cfg: ServeConfig) -> int:
    import uvicorn

    from prompt_recovery.recover import Recoverer

    sock = bind(cfg.host, cfg.port)  # fail fast on a busy port, before loading the model
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this address can use the model (no authentication)",
                    cfg.host)
    print(f"prompt-recovery: loading {cfg.model} ...", file=sys.stderr, flush=True)
    recoverer = Recoverer.from_options(cfg)
    app = create_app(recoverer, max_text_chars=cfg.max_text_chars, max_batch_pairs=cfg.max_batch_pairs,
                     max_waiting=cfg.max_waiting)
    url = url_of(sock)
    print(f"prompt-recovery: serving {recoverer.describe()} on {url}/ (API docs {url}/docs); Ctrl-C stops",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=cfg.log_level, lifespan="on"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
        pass
    finally:
        sock.close()
    print("prompt-recovery: server stopped", file=sys.stderr)
    return 0
