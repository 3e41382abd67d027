"""The HTTP API's request and response bodies (pydantic models): what `/recover` and `/recover/batch` take and give.

    curl -s localhost:8000/recover -H 'content-type: application/json' \\
         -d '{"original_text": "The meeting is at 3pm.", "rewritten_text": "Arr, the meetin be at 3 bells!"}'

FastAPI validates requests against them and publishes them in /openapi.json and /docs; the limits
(characters per text, pairs per batch) are checked by `serving.app.Service`, not here.
"""

# NB: no `from __future__ import annotations` here: FastAPI reads the request models from the endpoint
# annotations at runtime.

from pydantic import BaseModel, ConfigDict, Field


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
