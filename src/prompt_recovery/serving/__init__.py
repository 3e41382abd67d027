"""The serving stage: a local HTTP API and web page for recoveries.

    prompt-recovery serve                       # http://127.0.0.1:8000/ (page), /docs (API)

Modules: `api` (request and response bodies), `app` (the FastAPI app: queue, routes, checks, errors),
`serve` (uvicorn with its hardening, `BackgroundServer`, the `serve` command); the page is
`static/index.html`.
"""
