"""Typed configs: dataclasses are the single source of a stage's options.

Each pipeline stage declares one dataclass (next to its code); `build_parser` turns it
into argparse options (`field_name` -> `--field-name`, bools get `--no-...`), and
`load_config` merges, in order: dataclass defaults < YAML preset (`--config`) < flags.
YAML presets under `configs/` use the field names as keys, so they mirror the signature.

    prompt-recovery train --config configs/smollm2-135m-cpu.yaml --learning-rate 1e-4
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_recovery.errors import UserError


def opt(default: Any = None, help: str = "", *, positional: bool = False, aliases: tuple[str, ...] = (),
        choices: tuple | None = None, default_factory: Any = None):
    """A dataclass field with CLI metadata."""
    meta = {"help": help, "positional": positional, "aliases": aliases, "choices": choices}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelOptions:
    """Options shared by every stage that loads a recovery model."""

    model: str = opt("smollm2-135m", "model preset name, local HF directory, .gguf file or hub id "
                     "(presets: smollm2-135m, mistral-7b-instruct-v0.2, gemma3-270m, tiny-random-llama, "
                     "tiny-random-mistral)")
    adapter: str | None = opt("default", "PEFT LoRA adapter: a directory or hub id; 'default' = the adapter "
                              "shipped for the chosen preset (if any); 'none' = base model only")
    prompt_format: str | None = opt(None, "prompt format name (chat, plain); default: the adapter's, else chat")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    dtype: str = opt("auto", "auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16 or float16")
    backend: str = opt("auto", "generation backend: auto (fastest installed), transformers, llama-cpp, vllm")
    max_new_tokens: int = opt(48, "maximum tokens generated per instruction")
    batch_size: int = opt(8, "pairs per generation batch")


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def build_parser(cls, prog: str, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser whose options are the fields of dataclass `cls`."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", metavar="YAML", help="YAML preset whose keys are the option names below",
                        default=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(hints[f.name])
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kwargs: dict[str, Any] = {"help": meta.get("help", ""), "default": argparse.SUPPRESS}
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("positional"):
            kwargs["metavar"] = f.name.upper()
            if default is not None or f.default is None:
                kwargs["nargs"] = "?"
            parser.add_argument(f.name, type=_scalar(tp), **kwargs)
            continue
        flags = ["--" + f.name.replace("_", "-"), *meta.get("aliases", ())]
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = _scalar(typing.get_args(tp)[0])
        else:
            kwargs["type"] = _scalar(tp)
        if default is not None:
            kwargs["help"] += f" (default: {default})"
        parser.add_argument(*flags, dest=f.name, **kwargs)
    return parser


def _scalar(tp):
    if tp in (int, float, str):
        return tp
    if tp is Path:
        return str
    return str


def load_yaml(path: str | Path) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise UserError(f"config file {p} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise UserError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must be a mapping of option names to values")
    return data


def make_config(cls, values: dict, source: str = "options"):
    """Instantiate `cls` from `values`, naming unknown keys clearly."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"unknown option(s) in {source}: {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls)
    converted = {k: coerce(v, hints[k], k, source) for k, v in values.items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k, v in converted.items():
        choices = fields[k].metadata.get("choices")
        if choices and v is not None and v not in choices:
            raise UserError(f"{source}: {k} must be one of {', '.join(map(str, choices))}, not {v!r}")
    cfg = cls(**converted)
    validate = getattr(cfg, "validate", None)
    if validate:
        validate()
    return cfg


def coerce(value: Any, tp: Any, key: str, source: str = "options") -> Any:
    """`value` (from YAML or a flag) converted to the field type `tp`; a UserError naming `key` if it cannot be.

    YAML 1.1 reads `5e-5` as a string and `1e3` as a string too: numbers are parsed from strings;
    an int field refuses 2.5 and booleans; a list field takes one scalar as a one-item list.
    """
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise UserError(f"{source}: {key} must be {_type_name(tp)}, not empty")

    def bad(expect: str):
        return UserError(f"{source}: {key} must be {expect}, not {value!r}")

    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, dict):
            raise bad(f"a list of {_type_name(item)}")
        return [coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(items)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise bad("true or false")
    if tp is int:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        try:
            f = float(value) if isinstance(value, (float, str)) else None
        except ValueError:
            f = None
        if f is None or not f.is_integer():
            raise bad("an integer")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise bad("a number") from None
        raise bad("a number")
    if tp in (str, Path):
        if isinstance(value, (dict, list, tuple)):
            raise bad("a single value")
        return str(value) if not isinstance(value, bool) else str(value).lower()
    return value


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(tp, getattr(tp, "__name__", str(tp)))


def load_config(cls, argv: list[str] | None, prog: str, description: str = ""):
    """Parse `argv` into an instance of `cls` (YAML preset, then flags). Returns (config, debug)."""
    parser = build_parser(cls, prog, description)
    ns = vars(parser.parse_args(argv))
    debug = bool(ns.pop("debug", False))
    values: dict = {}
    if "config" in ns:
        values.update(load_yaml(ns.pop("config")))
    values.update(ns)
    return make_config(cls, values, "config"), debug


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
