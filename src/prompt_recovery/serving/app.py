"""The FastAPI app of `serve`: one model behind a FIFO queue, the routes, input checks and error replies.

    python -c "from prompt_recovery import Recoverer; from prompt_recovery.serving.app import create_app; app = create_app(Recoverer.load('tiny-random-mistral', adapter='none'))"

`create_app(recoverer)` wires a `Service` (the model run by ONE worker thread through `ModelQueue`,
first come first served, within `Limits`) into the routes of `api_router` (`GET /`, `/health`,
`/examples`, `POST /recover`, `/recover/batch`; bodies in `serving.api`), the body-size middleware,
the error handlers (bad input: 422 with one readable `detail`, never a 500) and, when given,
`HostCheck` (requests whose Host header is not this machine get 400: DNS rebinding).
`serving.serve` runs it under uvicorn; `serving.serve.BackgroundServer` runs it in a thread.
"""

import asyncio
import logging
import math
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery import __version__
from prompt_recovery.errors import UserError
from prompt_recovery.scoring.suite import load_examples
from prompt_recovery.serving.api import Batch, BatchItem, BatchRecovered, Pair, Recovered

# NB: no `from __future__ import annotations` here: FastAPI reads the request models from the endpoint
# annotations at runtime.

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_TEXT_CHARS = 20_000
MAX_BATCH_PAIRS = 32
MAX_WAITING = 64
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
    app = FastAPI(title="prompt-recovery", version=__version__, lifespan=lifespan, **extra,
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
