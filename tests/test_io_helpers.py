"""The shared I/O helpers of schema.py: atomic writes (files and folders), text files, row ids."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_path, atomic_write_text, read_text_file, with_row_ids


def test_atomic_path_replaces_the_file_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first\n")
    assert target.read_text() == "first\n"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the sec")
            raise RuntimeError("killed while writing")
    assert target.read_text() == "first\n"  # the old file is intact ...
    assert os.listdir(target.parent) == ["out.txt"]  # ... and no temporary file is left behind
    with atomic_path(target, suffix=".npz") as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.txt.") and tmp.name.endswith(".npz")
        tmp.write_text("second\n")
    assert target.read_text() == "second\n"


def test_atomic_path_gives_the_usual_permissions(tmp_path):
    mask = os.umask(0o027)
    os.umask(mask)
    with atomic_path(tmp_path / "f") as tmp:
        tmp.write_text("x")
    with atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "inside").write_text("x")
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "d" / "inside").read_text() == "x"


def test_atomic_folder_does_not_replace_one_another_process_made(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(OSError):
        with atomic_path(tmp_path / "model", directory=True) as tmp:
            (tmp / "config.json").write_text('{"mine": 1}')
    assert (tmp_path / "model" / "config.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_read_text_file_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="suffix file not found"):
        read_text_file(tmp_path / "nope.txt", "suffix")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(UserError, match=r"constants file .*bad.txt is not valid UTF-8 \(byte 3\)"):
        read_text_file(bad, "constants")
    good = tmp_path / "good.txt"
    good.write_text("Réécris.\n", encoding="utf-8")
    assert read_text_file(good, "suffix") == "Réécris.\n"


def test_with_row_ids_keeps_ids_or_numbers_the_rows(tmp_path, caplog):
    df = pd.DataFrame({"id": ["a", "b"], "x": ["1", "2"]}, index=[5, 7])
    assert list(with_row_ids(df, "f.csv")["id"]) == ["a", "b"]
    out = with_row_ids(pd.DataFrame({"x": ["1", "2", "3"]}, index=[4, 5, 6]), "f.csv")
    assert list(out.columns) == ["id", "x"] and list(out["id"]) == ["0", "1", "2"] and list(out.index) == [0, 1, 2]
    assert "f.csv has no id column; using row numbers 0..2 as ids" in caplog.text


@pytest.mark.parametrize("exchange", ["renameat2", "two renames"])
def test_atomic_path_replaces_a_folder_whole_or_not_at_all(tmp_path, monkeypatch, exchange):
    from prompt_recovery import schema

    if exchange == "two renames":
        monkeypatch.setattr(schema.sys, "platform", "not-linux")  # the fallback of systems without renameat2
    out = tmp_path / "export"
    with atomic_path(out, directory=True, replace=True) as tmp:
        (tmp / "model.bin").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_path(out, directory=True, replace=True) as tmp:
            (tmp / "model.bin").write_text("half of the sec")
            raise RuntimeError("killed while writing")
    assert (out / "model.bin").read_text() == "first"  # the earlier folder is intact
    with atomic_path(out, directory=True, replace=True) as tmp:
        (tmp / "model.bin").write_text("second")
        (tmp / "card.md").write_text("new")
    assert sorted(os.listdir(out)) == ["card.md", "model.bin"] and (out / "model.bin").read_text() == "second"
    assert os.listdir(tmp_path) == ["export"]  # the old folder and every temporary one are gone
    with pytest.raises(OSError):  # without replace=True a folder never replaces a non-empty one
        with atomic_path(out, directory=True) as tmp:
            (tmp / "x").write_text("x")
    assert (out / "card.md").read_text() == "new"
