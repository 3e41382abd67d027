"""The predict command: one row per input row, in order, never empty; bad rows; resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.inference import predict as pr
from prompt_recovery.cli import main
from prompt_recovery.errors import UserError
from prompt_recovery.prompting import DEFAULT_INSTRUCTION

FIX = Path(__file__).parent / "fixtures"
PAIRS = FIX / "predict_pairs.csv"


class FakeRecoverer:
    """Records the pairs it is asked for; answers from the rewritten text; can fail on a call."""

    def __init__(self, fail_on_call: int | None = None, answer: str | None = None):
        self.calls: list[list[tuple[str, str]]] = []
        self.fail_on_call, self.answer = fail_on_call, answer

    def recover_batch(self, pairs, batch_size=None, progress=False):
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt
        self.calls.append(list(pairs))
        return [self.answer if self.answer is not None else f"Instruction for {r[:12]}" for _, r in pairs]

    def describe(self):
        return "fake"


def make_cfg(tmp_path, **kw):
    values = dict(input=str(PAIRS), output=str(tmp_path / "out.csv"), progress=False, chunk_size=2)
    values.update(kw)
    return pr.PredictConfig(**values)


def test_row_contract_with_bad_rows_tiny_model(tmp_path, caplog):
    out = tmp_path / "sub.csv"
    with caplog.at_level(logging.WARNING, logger="prompt_recovery.inference.predict"):
        code = main(["predict", str(PAIRS), "-o", str(out), "--model", "tiny-random-mistral", "--adapter", "none",
                     "--max-new-tokens", "4", "--batch-size", "2", "--chunk-size", "2", "--no-progress"])
    assert code == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["id", "rewrite_prompt"]
    assert list(df["id"]) == ["p1", "p2", "p3", "p4", "p5"]
    assert all(p.strip() for p in df["rewrite_prompt"])
    fallback = DEFAULT_INSTRUCTION
    assert df["rewrite_prompt"][1] == fallback and df["rewrite_prompt"][2] == fallback  # empty / blank texts
    assert "2 of 5 rows have an empty original or rewritten text" in caplog.text
    assert not pr.sidecar_path(out).exists()  # removed after the final atomic write


def test_default_chunk_size_follows_the_backends_prompts_in_flight(tmp_path):
    class Engine:
        capacity = 32  # e.g. llama-cpp: 2 workers x 16 prompts in flight

    fake = FakeRecoverer()
    assert pr.default_chunk_size(fake) == 32  # no engine: the plain default
    fake.engine = Engine()
    assert pr.default_chunk_size(fake) == 128
    Engine.capacity = 2
    assert pr.default_chunk_size(fake) == 32  # never below 32
    df = pd.DataFrame({"id": [f"r{i}" for i in range(70)], "original_text": [f"text {i}" for i in range(70)],
                       "rewritten_text": [f"Rewritten {i}" * (1 + i % 3) for i in range(70)]})
    preds = pr.predict_frame(df, make_cfg(tmp_path, chunk_size=None), recoverer=fake)
    assert [len(c) for c in fake.calls] == [32, 32, 6] and len(preds) == 70 and all(preds)


def test_bad_rows_never_reach_the_model_and_order_is_kept(tmp_path):
    df = pr.read_pairs(str(PAIRS))
    fake = FakeRecoverer()
    preds = pr.predict_frame(df, make_cfg(tmp_path), recoverer=fake)
    asked = [r for call in fake.calls for _, r in call]
    assert len(asked) == 3 and "Some rewritten text." not in asked
    assert [len(c) for c in fake.calls] == [2, 1]  # chunks of --chunk-size
    assert [len(o) + len(r) for call in fake.calls for o, r in call] == sorted(
        len(o) + len(r) for call in fake.calls for o, r in call)  # shortest first
    assert preds[0] == "Instruction for Arr, the mee" and preds[4] == "Instruction for Canines voca"


def test_empty_model_output_gets_fallback(tmp_path):
    df = pr.read_pairs(str(PAIRS))
    preds = pr.predict_frame(df, make_cfg(tmp_path, fallback="Improve the text."), recoverer=FakeRecoverer(answer=""))
    assert preds == ["Improve the text."] * 5


def test_interrupted_run_resumes_from_sidecar(tmp_path):
    df = pr.read_pairs(str(PAIRS))
    cfg = make_cfg(tmp_path, chunk_size=1)
    side = pr.sidecar_path(cfg.output)
    with pytest.raises(KeyboardInterrupt):
        pr.predict_frame(df, cfg, recoverer=FakeRecoverer(fail_on_call=2), sidecar=side)
    lines = side.read_text().splitlines()
    assert "fingerprint" in json.loads(lines[0]) and len(lines) == 3  # header + 2 finished rows
    with side.open("a") as f:
        f.write('{"row": 4, "rewrite_pro')  # a line cut short by the interruption is ignored
    fake = FakeRecoverer()
    preds = pr.predict_frame(df, cfg, recoverer=fake, sidecar=side)
    assert sum(len(c) for c in fake.calls) == 1  # only the one remaining good row
    full = pr.predict_frame(df, make_cfg(tmp_path, resume=False), recoverer=FakeRecoverer())
    assert preds == full
    # a sidecar from another job (different model) is not reused
    fake2 = FakeRecoverer()
    pr.predict_frame(df, make_cfg(tmp_path, chunk_size=1, model="other"), recoverer=fake2, sidecar=side)
    assert sum(len(c) for c in fake2.calls) == 3


def test_resume_file_header_and_lines(tmp_path):
    """Only a header cut short (nothing finished yet) starts over; a file that is not ours is refused, not
    overwritten; a last line cut inside a UTF-8 character is skipped like any line cut short."""
    df = pr.read_pairs(str(PAIRS))
    cfg = make_cfg(tmp_path)
    fp = pr.fingerprint(df, cfg)
    side = tmp_path / "side.jsonl"
    side.write_bytes(b'{"fingerpr')
    assert pr.sidecar_fingerprint(side) is None and pr.load_sidecar(side, fp, len(df)) == {}
    side.write_bytes(b'["not", "ours"]\n{"row": 0, "rewrite_prompt": "x"}\n')
    with pytest.raises(UserError, match="was not written by `prompt-recovery predict`"):
        pr.predict_frame(df, cfg, recoverer=FakeRecoverer(), sidecar=side)
    assert side.read_bytes().startswith(b'["not", "ours"]')
    row = json.dumps({"row": 3, "rewrite_prompt": "Réécris"}, ensure_ascii=False).encode()
    side.write_bytes(json.dumps({"fingerprint": fp}).encode() + b"\n" + row + b"\n" + row[:-7])  # cut inside "é"
    assert pr.load_sidecar(side, fp, len(df)) == {3: "Réécris"}


def test_limit_and_ids_from_row_numbers(tmp_path):
    p = tmp_path / "noid.jsonl"
    p.write_text('{"original_text": "a", "rewritten_text": "b"}\n{"original_text": "c", "rewritten_text": "d"}\n'
                 '{"original_text": "e", "rewritten_text": "f"}\n')
    df = pr.read_pairs(str(p), limit=2)
    assert list(df["id"]) == ["0", "1"]


def test_missing_columns_fail_fast(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("id,text_a,text_b\n1,x,y\n")
    with pytest.raises(UserError, match="missing column.*rewritten_text.*found id, text_a, text_b"):
        pr.read_pairs(str(p))
    code = main(["predict", str(p), "-o", str(tmp_path / "o.csv"), "--model", "tiny-random-mistral"])
    err = capsys.readouterr().err
    assert code == 2 and "expected original_text, rewritten_text" in err
    code = main(["predict", str(PAIRS), "-o", str(tmp_path / "o.txt")])
    assert code == 2 and "unsupported file type .txt" in capsys.readouterr().err
