"""Fault injection (issue 16): `predict`, `generate` and `train` are SIGKILLed at random points, several
times each, then rerun with the same command until they finish. The final outputs must be complete,
unique, in order, and equal to those of a run that was never interrupted.

The commands run as real processes (so SIGKILL is real: no cleanup, no flush, files cut anywhere),
forked from one helper process that has already imported torch/transformers, so each run starts in
a fraction of a second instead of ~5 s. Tiny random models, no network.

    .venv/bin/python -m pytest -q tests/test_fault_injection.py
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

FIX = Path(__file__).parent / "fixtures"
SEED = int(os.environ.get("FAULT_SEED", "16"))

pytestmark = pytest.mark.skipif(not (sys.platform.startswith("linux") and Path("/proc/self/stat").exists()),
                                reason="needs fork and /proc (Linux)")

# The helper: imports the heavy libraries once, then forks one child per command it is sent. A child runs
# `prompt_recovery.cli.main(argv)` with stdout/stderr in a log file and exits with its return code.
ZYGOTE = r"""
import json, os, signal, sys
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import torch, transformers, peft, pandas, tokenizers, tqdm.auto  # noqa: E401 - the slow imports, once
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments  # noqa: F401
import prompt_recovery.cli, prompt_recovery.inference.predict, prompt_recovery.training.train, prompt_recovery.inference.recover  # noqa
import prompt_recovery.data.generate, prompt_recovery.data.rewriters, prompt_recovery.search.search  # noqa
print(json.dumps({"ready": os.getpid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "run":
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(req["cwd"])
                signal.signal(signal.SIGINT, signal.default_int_handler)
                rc = prompt_recovery.cli.main(req["argv"])
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback
                traceback.print_exc()
                rc = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(rc or 0))
        print(json.dumps({"pid": pid}), flush=True)
    elif req["op"] == "wait":
        _, status = os.waitpid(req["pid"], 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Zygote:
    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.p = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1, cwd=cwd)
        assert "ready" in json.loads(self.p.stdout.readline())
        self.runs = 0

    def _ask(self, req: dict) -> dict:
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def start(self, argv: list[str]) -> tuple[int, Path]:
        self.runs += 1
        log = self.cwd / f"run{self.runs}.log"
        return self._ask({"op": "run", "argv": argv, "log": str(log), "cwd": str(self.cwd)})["pid"], log

    def wait(self, pid: int) -> int:
        return self._ask({"op": "wait", "pid": pid})["rc"]

    def run(self, argv: list[str]) -> int:
        pid, log = self.start(argv)
        rc = self.wait(pid)
        assert rc == 0, log.read_text()[-3000:]
        return rc

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


def finished(pid: int) -> bool:
    """The child has exited (a zombie until the helper reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_with_kills(z: Zygote, argv: list[str], progress, kills: int, rng: random.Random, timeout: float = 60):
    """Run `argv` to completion, SIGKILLing it `kills` times at random points after some progress.
    Returns the number of kills that landed (a run may finish before its kill point)."""
    landed = 0
    for attempt in range(kills + 10):
        pid, log = z.start(argv)
        if landed < kills:
            base, want = progress(), rng.randint(1, 3)
            deadline = time.monotonic() + timeout
            while progress() < base + want and not finished(pid) and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))  # anywhere: mid-write, mid-checkpoint, mid-fsync
            if not finished(pid):
                os.kill(pid, signal.SIGKILL)
                rc = z.wait(pid)
                assert rc == -signal.SIGKILL, log.read_text()[-3000:]
                landed += 1
                continue
        rc = z.wait(pid)
        assert rc == 0, log.read_text()[-3000:]
        return landed
    raise AssertionError("never finished")


# ---------------------------------------------------------------- predict

def test_predict_survives_random_kills(zygote, tmp_path):
    rng = random.Random(SEED)
    words = ["cat", "meeting", "rain", "sky", "milk", "ships", "poem", "road", "bells", "garden"]
    rows = [{"id": f"q{i:02d}", "original_text": " ".join(rng.choice(words) for _ in range(3 + i % 7)) + ".",
             "rewritten_text": " ".join(rng.choice(words) for _ in range(2 + i % 5)).title() + "!"}
            for i in range(24)]
    src = tmp_path / "pairs.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    common = ["--model", "tiny-random-llama", "--adapter", "none", "--backend", "transformers", "--max-new-tokens",
              "6", "--batch-size", "1", "--chunk-size", "1", "--no-progress"]
    ref = tmp_path / "ref.csv"
    zygote.run(["predict", str(src), "-o", str(ref), *common])
    out = tmp_path / "out.csv"
    side = out.with_name(out.name + ".partial.jsonl")
    landed = run_with_kills(zygote, ["predict", str(src), "-o", str(out), *common], lambda: lines(side), 4, rng)
    assert landed >= 3
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    want = pd.read_csv(ref, dtype=str, keep_default_na=False)
    assert got["id"].tolist() == [r["id"] for r in rows]  # complete, unique, in input order
    assert got.equals(want)
    assert not side.exists()


# ---------------------------------------------------------------- generate

def test_generate_survives_random_kills(zygote, tmp_path):
    rng = random.Random(SEED + 1)
    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"original_text": [f"Passage {i}: the {w} was seen near the old harbour at dawn."
                                    for i, w in enumerate(["cat", "ship", "storm", "bell", "crow", "lamp"])]}
                 ).to_csv(corpus, index=False)
    n = 14

    def argv(out):
        return ["generate", "-o", str(out), "--n", str(n), "--originals", str(corpus), "--llm-originals", "0.3",
                "--template-ratio", "1", "--rewriter", "local", "--model", "tiny-random-llama", "--temperature", "0",
                "--batch-size", "1", "--max-new-tokens", "6", "--seed", "3"]

    ref = tmp_path / "ref.jsonl"
    zygote.run(argv(ref))
    out = tmp_path / "out.jsonl"
    landed = run_with_kills(zygote, argv(out), lambda: lines(out), 4, rng)
    assert landed >= 3
    got = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    want = [json.loads(x) for x in ref.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in got] == [f"gen-{k:06d}" for k in range(n)]  # complete, unique, in order
    assert got == want
    assert out.read_bytes().endswith(b"\n")


# ---------------------------------------------------------------- train

def test_train_survives_random_kills(zygote, tmp_path):
    rng = random.Random(SEED + 2)

    def argv(out):
        return ["train", str(FIX / "toy_triples.csv"), "--model", "tiny-random-mistral", "--output-dir", str(out),
                "--max-steps", "10", "--eval-steps", "2", "--logging-steps", "1", "--save-total-limit", "2",
                "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1", "--learning-rate",
                "0.003", "--lora-r", "4", "--lora-alpha", "8", "--max-text-tokens", "48", "--max-length", "96",
                "--precision", "fp32", "--device", "cpu", "--val-fraction", "0.2"]

    ref = tmp_path / "ref"
    zygote.run(argv(ref))
    out = tmp_path / "out"
    log = out / "train_log.jsonl"
    landed = run_with_kills(zygote, argv(out), lambda: lines(log), 4, rng)
    assert landed >= 3
    got = [json.loads(x) for x in log.read_text().splitlines()]
    want = [json.loads(x) for x in (ref / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in got if "loss" in r]
    assert steps == list(range(1, 11))  # every step logged once, in order
    assert [(r["step"], sorted(r)) for r in got] == [(r["step"], sorted(r)) for r in want]
    assert [r["loss"] for r in got if "loss" in r] == pytest.approx([r["loss"] for r in want if "loss" in r])
    # the same adapter as the run never interrupted
    assert (out / "adapter_model.safetensors").read_bytes() == (ref / "adapter_model.safetensors").read_bytes()
