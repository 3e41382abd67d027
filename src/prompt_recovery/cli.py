"""The `prompt-recovery` command: maps each subcommand to one stage function, nothing else.

    prompt-recovery --help
    prompt-recovery recover --examples

Each stage module defines a config dataclass and `run(cfg) -> int`; the module is imported
only when its subcommand runs (or shows its --help), so start-up stays instant.
Errors the user can fix print one line on stderr and exit 2; `--debug` shows tracebacks.
"""

from __future__ import annotations

import importlib
import os
import sys

from prompt_recovery import __version__
from prompt_recovery.config import load_config
from prompt_recovery.errors import Interrupted, UserError

# subcommand -> (module, config class, one-line description)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "recover": ("prompt_recovery.inference.recover", "RecoverConfig", "recover the instruction for one (original, rewritten) pair"),
    "predict": ("prompt_recovery.inference.predict", "PredictConfig", "recover instructions for a CSV/JSONL/Parquet file of pairs (submission format)"),
    "evaluate": ("prompt_recovery.scoring.evaluate", "EvaluateConfig", "score predictions against true instructions: report.json, report.md, plots"),
    "baseline": ("prompt_recovery.scoring.baselines", "BaselineConfig", "score constant-instruction baselines on a file with true instructions"),
    "data": ("prompt_recovery.data.command", "DataConfig", "import, clean, split and describe training triples"),
    "generate": ("prompt_recovery.data.generate", "GenerateConfig", "generate new triples with a local or HTTP LLM rewriter (resumable)"),
    "serve": ("prompt_recovery.serving.serve", "ServeConfig", "HTTP API and web page for recoveries (FastAPI, 127.0.0.1:8000)"),
    "train": ("prompt_recovery.training.train", "TrainConfig", "LoRA fine-tuning (PEFT + Trainer) from a YAML preset"),
    "mean-prompt": ("prompt_recovery.search.mean_prompt", "MeanPromptConfig", "find one constant instruction with the highest mean SCS against training instructions"),
    "extract-lora": ("prompt_recovery.training.extract", "ExtractConfig", "a LoRA adapter from a fully fine-tuned model (truncated SVD of its weight changes)"),
    "export": ("prompt_recovery.training.export", "ExportConfig", "merge an adapter into its base model and save it"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: prompt-recovery COMMAND [options]   (prompt-recovery COMMAND --help for its options)", "",
             "Recover the instruction an LLM was given from the original and rewritten texts.", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, _, desc) in COMMANDS.items()]
    return "\n".join(lines)


def error(msg: str, code: int = 2) -> int:
    print(f"prompt-recovery: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"prompt-recovery {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return error(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}")
    debug = "--debug" in rest
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:
        _quiet_libraries()
    module_name, cls_name, desc = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        cfg, debug = load_config(getattr(module, cls_name), rest, f"prompt-recovery {name}", desc)
        return int(module.run(cfg) or 0)
    except Interrupted as e:  # stopped by a signal after saving its work (e.g. a training checkpoint)
        return error(str(e), e.exit_code)
    except UserError as e:
        if debug:
            raise
        return error(str(e))
    except KeyboardInterrupt:
        return error("interrupted", 130)
    except BrokenPipeError:  # `prompt-recovery evaluate ... | head`: the reader left; exit as a killed writer would
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when stdout is flushed
        except (OSError, ValueError):
            pass
        return 141
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - last-resort one-line report
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return error(f"{type(e).__name__}: {first} (rerun with --debug for the traceback)", 1)


def _quiet_libraries() -> None:
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING, format="prompt-recovery: %(levelname)s: %(message)s")


if __name__ == "__main__":
    sys.exit(main())
