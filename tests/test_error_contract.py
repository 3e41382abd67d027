"""The error contract of docs/errors.md: the exit codes, and the page naming only tests that exist.

    .venv/bin/python -m pytest -q tests/test_error_contract.py
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from prompt_recovery import cli
from prompt_recovery.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"


def test_exit_codes(monkeypatch, capsys):
    from prompt_recovery.inference import recover

    argv = ["recover", "--original", "a", "--rewritten", "b"]

    def run_raising(exc):
        def run(cfg):
            raise exc
        monkeypatch.setattr(recover, "run", run)
        code = cli.main(argv)
        return code, capsys.readouterr().err.strip().splitlines()

    assert cli.main(["--help"]) == 0 and cli.main(["--version"]) == 0
    capsys.readouterr()
    # 2: the user can fix it, one line
    code, err = run_raising(UserError("the original text is empty"))
    assert code == 2 and err == ["prompt-recovery: error: the original text is empty"]
    # 1: a bug, one line with the hint; --debug shows the traceback
    code, err = run_raising(ValueError("boom\nsecond line"))
    assert code == 1 and err == ["prompt-recovery: error: ValueError: boom (rerun with --debug for the traceback)"]
    with pytest.raises(ValueError):
        cli.main([*argv, "--debug"])
    # 130: Ctrl-C
    code, err = run_raising(KeyboardInterrupt())
    assert code == 130 and err == ["prompt-recovery: error: interrupted"]
    # 2: unknown command (one line) and a bad option (argparse: usage, then its error line)
    assert cli.main(["nope"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"prompt-recovery: error: unknown command 'nope'; choose one of: {', '.join(cli.COMMANDS)}"]
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", "--bogus"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "prompt-recovery predict: error: unrecognized arguments: --bogus")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_the_page_lists_every_code_and_only_tests_that_exist():
    text = DOC.read_text(encoding="utf-8")
    for code in ("`0`", "`1`", "`2`", "`130`"):
        assert f"| {code} |" in text, code
    for status in ("200", "400", "404", "405", "413", "422", "500", "503"):
        assert f"`{status}`" in text, status
    named = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", text)
    assert len(named) >= 25
    for file, test in named:
        assert test in _tests_in(ROOT / file), f"docs/errors.md names {file}::{test}, which does not exist"
