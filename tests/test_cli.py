"""CLI contract: instant help, one-line errors with a non-zero exit and no traceback."""

import os
import subprocess
import sys

import pytest

from prompt_recovery import cli

EXE = [sys.executable, "-m", "prompt_recovery.cli"]


def run_cli(*args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=300, **kw)


def assert_one_line_error(res, fragment):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("prompt-recovery: error: ") and fragment in lines[0], lines[0]
    assert res.stdout == ""


def test_top_level_help_lists_commands_without_heavy_imports():
    code = ("import sys, io, contextlib; from prompt_recovery import cli; buf = io.StringIO();\n"
            "with contextlib.redirect_stdout(buf): rc = cli.main(['--help'])\n"
            "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules); print(buf.getvalue())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("0 False False")
    for name in ("recover", "train", "predict", "evaluate", "serve", "export", "generate", "data"):
        assert f"  {name}" in out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_subcommand_help_is_light(command):
    code = (f"import sys\nfrom prompt_recovery import cli\ntry:\n    cli.main([{command!r}, '--help'])\n"
            "except SystemExit as e:\n    assert e.code == 0\nprint('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"usage: prompt-recovery {command}" in res.stdout
    assert res.stdout.strip().endswith("False"), f"{command} --help imported torch"


def test_unknown_command():
    assert_one_line_error(run_cli("recovr"), "unknown command 'recovr'")


@pytest.mark.parametrize("args,fragment", [
    (["--original", "   ", "--rewritten", "x"], "the original text is empty"),
    (["--original", "x", "--rewritten", ""], "the rewritten text is empty"),
    (["--original", "x"], "missing --rewritten"),
    (["--original", "x", "--rewritten", "y", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--original-file", "/nonexistent/a.txt", "--rewritten", "y"], "original file not found"),
    (["--original", "x", "--rewritten", "y", "--prompt-format", "fancy", "--model", "tiny-random-mistral",
      "--adapter", "none"], "unknown prompt format 'fancy'"),
    (["--original", "x", "--rewritten", "y", "--model", "mistral-7b-instruct-v0.2"],
     "pass --model DIR"),
    (["--original", "x", "--rewritten", "y", "--adapter", "/nonexistent/adapter"], "adapter not found"),
])
def test_recover_errors(args, fragment):
    assert_one_line_error(run_cli("recover", *args), fragment)


def test_non_utf8_file(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    assert_one_line_error(run_cli("recover", "--original-file", str(bad), "--rewritten", "y"), "not valid UTF-8")


def test_yaml_config_with_unknown_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("original: a\nrewritten: b\nbogus_key: 1\n")
    assert_one_line_error(run_cli("recover", "--config", str(cfg)), "unknown option(s) in config: bogus_key")


def test_recover_reads_files_and_prints_one_line(tmp_path):
    (tmp_path / "o.txt").write_text("The meeting is at noon.", encoding="utf-8")
    (tmp_path / "r.txt").write_text("Arr, the meetin' be at noon!", encoding="utf-8")
    res = run_cli("recover", "--original-file", str(tmp_path / "o.txt"), "--rewritten-file",
                  str(tmp_path / "r.txt"), "--model", "tiny-random-mistral", "--adapter", "none",
                  "--max-new-tokens", "8", "--select", "first", "--no-prototypes")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].strip()


def test_recover_json_output():
    import json

    res = run_cli("recover", "--original", "a cat", "--rewritten", "a dog", "--model", "tiny-random-llama",
                  "--adapter", "none", "--max-new-tokens", "6", "--json")
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    assert obj["rewrite_prompt"].strip() and "tiny-random-llama" in obj["model"]
    # recover's default: the model's answer (candidate 0) against the family prototypes, scored by the base
    # SmolLM2 rewriter; the answer is the best-scored candidate unless candidate 0 is within the margin
    from prompt_recovery.search.candidates import PROTOTYPES

    assert obj["candidates"][1:] == list(PROTOTYPES) or len(obj["candidates"]) == len(PROTOTYPES)
    assert len(obj["likelihood_scores"]) == len(obj["candidates"])
    assert obj["rewrite_prompt"] == obj["candidates"][obj["chosen"]]


def test_quiet_mode_keeps_hub_download_progress(monkeypatch):
    """Non-debug runs silence library warnings but must not hide Hub download progress bars (issue 15)."""
    import os

    from prompt_recovery import cli

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    cli._quiet_libraries()
    assert os.environ.get("TRANSFORMERS_VERBOSITY") == "error"
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ


def test_a_reader_that_leaves_early_ends_the_command_quietly(monkeypatch, capsys):
    """`prompt-recovery evaluate ... | head -2`: once the pipe is closed the command stops without an error report,
    with the status of a writer killed by SIGPIPE (141), as cat or grep would."""
    from prompt_recovery.scoring import evaluate

    def closed_pipe(cfg):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(evaluate, "run", closed_pipe)
    monkeypatch.setattr(cli.os, "dup2", lambda *a: None)  # pytest's captured stdout stays
    assert cli.main(["evaluate", "preds.csv", "--truth", "suite", "-d", "out"]) == 141
    assert capsys.readouterr().err == ""
