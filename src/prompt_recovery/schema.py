"""The project's file I/O: tables (CSV, JSONL, Parquet) and column mapping, row ids, text files, atomic writes.

Canonical columns: ``id, original_text, rewrite_prompt, rewritten_text`` plus provenance
``source, rewriter, category``. Files from the wild use other names; `COLUMN_ALIASES` maps
them (case-insensitive) so every stage sees the canonical ones.

A file written in one go is written through `atomic_path` (a temporary file in the same folder, renamed
over the target), so an interrupted run never leaves it half-written; `read_text_file` reads a text
file the user named and `with_row_ids` gives a table without ids its row numbers.

    python -c "from prompt_recovery.schema import read_table; print(read_table('x.csv').head())"
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable

from prompt_recovery.errors import UserError

log = logging.getLogger(__name__)

CANONICAL = ("id", "original_text", "rewrite_prompt", "rewritten_text")
PROVENANCE = ("source", "rewriter", "category")
COLUMNS = CANONICAL + PROVENANCE

# alias (lower-case) -> canonical name
COLUMN_ALIASES = {
    "original": "original_text", "original text": "original_text", "orig_text": "original_text",
    "text": "original_text", "input_text": "original_text",
    "prompt": "rewrite_prompt", "rewrite_prompt_og": "rewrite_prompt", "gt_rewrite_prompt": "rewrite_prompt",
    "instruction": "rewrite_prompt", "rewrite prompt": "rewrite_prompt", "rewrite_instruction": "rewrite_prompt",
    "rewritten": "rewritten_text", "rewritten text": "rewritten_text", "rewrite": "rewritten_text",
    "output_text": "rewritten_text", "rewritten_text_og": "rewritten_text",
    "source_file": "source", "model": "rewriter",
}

def _current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status).

    Reading it with `os.umask(x); os.umask(old)` flips it for a moment, and a file another thread
    (e.g. a server's model worker) creates in that moment gets the wrong permissions; where /proc is
    missing it is read that way once, under a lock, and remembered."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
        return _UMASK


_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; use .csv, .jsonl or .parquet")
    return FORMATS[suffix]


def canonicalize_columns(df):
    """Rename known aliases to canonical names (canonical names already present win)."""
    rename = {}
    present = {c.lower() for c in df.columns}
    for col in df.columns:
        low = str(col).strip().lower()
        if low in COLUMNS and col != low:
            rename[col] = low
        elif low in COLUMN_ALIASES:
            target = COLUMN_ALIASES[low]
            if target not in present and target not in rename.values():
                rename[col] = target
    return df.rename(columns=rename)


# ---------------------------------------------------------------- tables on the Hugging Face Hub

HUB_PREFIX = "hf://"


def hub_filesystem():
    """The fsspec filesystem for hf:// paths (huggingface_hub's HfFileSystem; token from HF_TOKEN or `hf auth
    login`). Tests replace it with an in-memory one."""
    from huggingface_hub import HfFileSystem

    return HfFileSystem()


class HubFile:
    """A table on the Hub, e.g. hf://datasets/OWNER/NAME/train.csv (hf://datasets/OWNER/NAME@REVISION/...
    for a revision), opened like a Path through `hub_filesystem()`; nothing is copied to disk."""

    def __init__(self, url: str):
        self.url = url
        self.path = url[len(HUB_PREFIX):]
        self.name = self.path.rsplit("/", 1)[-1]
        self._fs = hub_filesystem()

    @classmethod
    def of(cls, path) -> "HubFile | None":
        """A HubFile for an hf:// path (also the hf:/ that Path() folds it to), else None."""
        s = str(path)
        if s.startswith(HUB_PREFIX):
            return cls(s)
        return cls(HUB_PREFIX + s[len("hf:/"):]) if s.startswith("hf:/") else None

    def __str__(self) -> str:
        return self.url

    def is_file(self) -> bool:
        try:
            return bool(self._fs.isfile(self.path))
        except Exception as e:  # noqa: BLE001 - network and auth errors vary
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot read {self.url} from the Hugging Face Hub ({msg}); a private or gated "
                            "dataset needs `hf auth login` or HF_TOKEN") from None

    def open(self, mode: str = "r", **kwargs):
        return self._fs.open(self.path, mode, **kwargs)


def _read_parquet(p):
    import pandas as pd

    if isinstance(p, HubFile):
        with p.open("rb") as f:
            return pd.read_parquet(f)
    return pd.read_parquet(p)


def read_table(path: str | Path, required: Iterable[str] = (), map_columns: bool = True):
    """Read CSV/JSONL/Parquet into a DataFrame of strings (ids kept as text), validating columns.
    `path` may be an hf:// path (a file of a Hub dataset), read through huggingface_hub's HfFileSystem."""
    import pandas as pd

    p = HubFile.of(path) or Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {p}")
    fmt = table_format(str(p))
    try:
        if fmt == "csv":
            df = _read_csv(p)
        elif fmt == "jsonl":
            df = _read_jsonl(p)
        else:
            df = _read_parquet(p)
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not valid UTF-8 (byte {e.start})") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise UserError(f"cannot read {p} as {fmt}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if map_columns:
        df = canonicalize_columns(df)
    require_columns(df, required, p)
    for col in df.columns:
        if df[col].dtype == object or col in COLUMNS:
            df[col] = df[col].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v))
    return df


def _read_csv(p: Path):
    """A CSV of text cells. A row with more fields than the header is an error naming its line (pandas would
    silently take a first row with one field too many as an index column and shift every id)."""
    import pandas as pd

    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # texts longer than the 128 KiB default are fine
    with p.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            while header is not None and not header:  # leading blank lines
                header = next(reader, None)
            if header is None:
                return pd.DataFrame()
            header = _unique_names(header)
            rows = []
            for row in reader:
                if not row:
                    continue  # a blank line
                if len(row) > len(header):
                    raise UserError(f"{p}:{reader.line_num}: {len(row)} fields, but the header has {len(header)}; "
                                    "a field containing a comma, quote or line break must be in double quotes")
                rows.append(row + [""] * (len(header) - len(row)))
        except csv.Error as e:
            raise UserError(f"{p}:{reader.line_num}: not valid CSV: {e}") from None
    return pd.DataFrame(rows, columns=header, dtype=object)


def _unique_names(names: list[str]) -> list[str]:
    """Column names as pandas gives them: a repeated name gets .1, .2, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        new = name
        while new in seen:
            seen[name] += 1
            new = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        seen.setdefault(new, 0)
        out.append(new)
    return out


def _read_jsonl(p: Path):
    """One JSON object per line, each value text, a number, true/false or null; anything else is an error
    naming the line (no Python reprs of nested values in the data)."""
    import pandas as pd

    records = []
    with p.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{p}:{n}: not valid JSON ({e.msg} at character {e.colno})") from None
            except RecursionError:
                raise UserError(f"{p}:{n}: not valid JSON (nested too deeply)") from None
            if not isinstance(rec, dict):
                raise UserError(f"{p}:{n}: expected a JSON object {{\"column\": value, ...}}, got "
                                f"{_json_kind(rec)}")
            for key, value in rec.items():
                if isinstance(value, (dict, list)):
                    raise UserError(f"{p}:{n}: field {key!r} holds {_json_kind(value)}; expected text, a number "
                                    "or null")
            records.append(rec)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def _json_kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def require_columns(df, required: Iterable[str], where: str | Path = "input") -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}; "
                        f"found {', '.join(map(str, df.columns)) or '(none)'}")


def with_row_ids(df, path: str | Path):
    """`df` (index reset) with an `id` column: the file's own, else the row numbers 0, 1, 2... as text (with a
    warning naming `path`)."""
    df = df.reset_index(drop=True)
    if "id" not in df.columns:
        log.warning("%s has no id column; using row numbers 0..%d as ids", path, max(len(df) - 1, 0))
        df.insert(0, "id", [str(i) for i in range(len(df))])
    return df


def read_text_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of a file the user named (`what` names it in errors: "suffix", "original", ...)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file not found: {p}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} file {p} is not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"cannot read {what} file {p}: {e.strerror or e}") from None


# ---------------------------------------------------------------- atomic writes

@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", directory: bool = False, replace: bool = False):
    """Write `path` atomically: yields a temporary path in the same folder (a file, or a folder with `directory`)
    to write into; when the block ends without an error it takes `path`'s place in one rename, with the usual
    permissions (0666/0777 less the umask); on an error it is removed and `path` is left as it was.

    `suffix` ends the temporary name (some writers choose the format by it: ".npz", ".png"). A folder does not
    replace an existing non-empty folder: the rename raises OSError (e.g. another process made it first),
    unless `replace` is set: then the new folder and the old one are swapped in one step (`_exchange`) and the
    old one is removed afterwards."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if directory:
            tmp = tempfile.mkdtemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
        else:
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
            os.close(fd)
    except OSError as e:
        raise UserError(f"cannot write {p}: {e.strerror or e}") from None
    try:
        yield Path(tmp)
        # mkstemp/mkdtemp make 0600/0700 entries; give the usual permissions
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_current_umask())
        if directory and replace and os.path.isdir(p) and not os.path.islink(p):
            _exchange(tmp, p)  # the old folder is now at `tmp`, removed below
        else:
            os.replace(tmp, p)
    finally:
        if os.path.islink(tmp):
            os.unlink(tmp)
        elif directory:
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: str | Path, b: str | Path) -> None:
    """Swap two existing paths of one file system: in one step with Linux's renameat2(RENAME_EXCHANGE), so a
    reader sees the old or the new entry at each name, never none; where that is missing (another system, an
    old kernel or C library, a file system without it) `b` is moved aside, `a` renamed to `b` and the old `b`
    put at `a` (for a moment `b` is missing; if the second rename fails, `b` is put back)."""
    import ctypes
    import errno

    a, b = os.fsencode(a), os.fsencode(b)
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform.startswith("linux") else None
    if fn is not None:
        if fn(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), os.fsdecode(b))
    aside = a + b".old"
    os.rename(b, aside)
    try:
        os.rename(a, b)
    except OSError:
        os.rename(aside, b)
        raise
    os.rename(aside, a)


def write_table(df, path: str | Path) -> Path:
    """Write atomically (temporary file in the same folder, then rename)."""
    p = Path(path)
    fmt = table_format(p)
    check_output(p)
    with atomic_path(p) as tmp:
        if fmt == "csv":
            df.to_csv(tmp, index=False, encoding="utf-8")
        elif fmt == "jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            df.to_parquet(tmp, index=False)
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    p = Path(path)
    check_output(p)
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------- output guards

def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_folder_writable(folder: Path, what: str) -> None:
    """`folder` exists and can be written, or can be created: else a one-line UserError."""
    folder = Path(os.path.abspath(folder))
    probe = folder
    while not probe.exists():  # the nearest existing ancestor must be a writable folder
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"cannot write {what}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what}: no permission to write in {probe}")


def check_output(output: str | Path, inputs: Iterable[str | Path | None] = (), what: str | None = None,
                 append: bool = False) -> Path:
    """Fail fast, with one line, when `output` (a file to be written) is one of `inputs`, is a folder,
    or cannot be written; call it before any expensive work."""
    p = Path(output)
    what = what or str(p)
    for src in inputs:
        if src is not None and (_same_file(p, Path(src)) or Path(os.path.abspath(p)) == Path(os.path.abspath(src))):
            raise UserError(f"{what} is also an input file ({src}); write the output to another file")
    if p.is_dir():
        raise UserError(f"cannot write {what}: {p} is a folder; give a file name")
    check_folder_writable(p.parent, what)
    if append and p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"cannot write {what}: no permission to write {p}")
    return p


def check_output_dir(output_dir: str | Path, inputs: Iterable[str | Path | None] = (), written: Iterable[str] = (),
                     what: str | None = None) -> Path:
    """Fail fast when `output_dir` (a folder to write `written` files into) is an existing file, cannot be
    written, is an input, holds an input, or would overwrite an input with one of the `written` names."""
    d = Path(output_dir)
    what = what or str(d)
    if d.exists() and not d.is_dir():
        raise UserError(f"cannot write {what}: {d} is a file, not a folder")
    check_folder_writable(d, what)
    names = set(written)
    ad = Path(os.path.abspath(d))
    for src in inputs:
        if src is None:
            continue
        s = Path(os.path.abspath(src))
        if s == ad or _same_file(d, Path(src)):
            raise UserError(f"{what} is also an input ({src}); write the output to another folder")
        if s.parent == ad and s.name in names:
            raise UserError(f"{what} would overwrite the input {src}; write the output to another folder")
    return d
