"""The serving stage: a local HTTP API and web page for recoveries.

    prompt-recovery serve                       # http://127.0.0.1:8000/ (page), /docs (API)

Modules: `serve` (the app, the server and the `serve` command); the page is `static/index.html`.
"""
