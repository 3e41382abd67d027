"""Export a model with its LoRA adapter merged in: a transformers folder, or one GGUF file for llama.cpp/Ollama.

    prompt-recovery export --adapter runs/adapter --output-dir runs/merged
    prompt-recovery recover --model runs/merged --adapter none --original ... --rewritten ...
    prompt-recovery export --format gguf --dtype f16 --output-dir runs/gguf      # + an Ollama Modelfile
    ollama create prompt-recovery -f runs/gguf/Modelfile

``--format transformers`` (default): the base is reloaded in full precision (fp32) before merging
(`merge_and_unload`), then saved in `--dtype` (float32, bfloat16 or float16) with the tokenizer and
the adapter's `prompt_recovery.json`.

``--format gguf``: for a GGUF-backed model (the ``smollm2-135m`` preset or a Llama ``.gguf``
file), the project's GGUF LoRA merger (`inference.gguf_merge.merged_gguf`, the weights the ``llama-cpp``
backend runs) writes one GGUF file, ``<name>.<type>.gguf`` (the cached merge, hard-linked where the
file system allows), with weights of type `--dtype` (f32/float32, f16/float16, bf16/bfloat16 or
q8_0; norms, token embedding and output head stay float32), next to it an Ollama ``Modelfile`` (`render_modelfile`: the tokenizer's chat template for
one user turn as the TEMPLATE, the stop tokens, temperature 0 and no repeat penalty, so greedy
decoding as in `recover`; comments say how the user turn is filled), `prompt_recovery.json` and
a model card. The GGUF keeps the base's metadata, its Jinja chat template included (what
``llama-server --jinja`` uses). docs/export.md shows `ollama create` and `llama-server` use.

The output folder is written beside it and swapped in as a whole (`schema.atomic_path`: an interrupted
export leaves an earlier one intact); it may not be (or hold) the adapter or base model, and an
existing folder is only replaced when it is a model folder (holds config.json, or a Modelfile and a
.gguf file), e.g. an earlier export.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from prompt_recovery import models
from prompt_recovery.config import opt
from prompt_recovery.errors import UserError
from prompt_recovery.hub import check_repo_id, push_folder
from prompt_recovery.inference import gguf_merge
from prompt_recovery.prompting import TRUNCATION_MARK, from_meta, user_message
from prompt_recovery.schema import atomic_path, atomic_write_text, check_folder_writable
from prompt_recovery.training import card

FORMATS = ("transformers", "gguf")
DEFAULT_DIRS = {"transformers": "runs/merged", "gguf": "runs/gguf"}
TORCH_DTYPES = ("float32", "bfloat16", "float16")
# --dtype values accepted with --format gguf -> gguf_merge.GGUF_TYPES
GGUF_DTYPES = {"float32": "f32", "fp32": "f32", "f32": "f32", "float16": "f16", "fp16": "f16", "f16": "f16",
               "bfloat16": "bf16", "bf16": "bf16", "q8_0": "q8_0", "q8": "q8_0"}
OLLAMA_MAX_CTX = 4096  # the Modelfile's num_ctx: the model's context, at most this (KV cache memory)
_SLOT = "\x00PROMPT-RECOVERY-USER-TURN\x00"


@dataclass
class ExportConfig:
    adapter: str = opt("default", "LoRA adapter directory or hub id ('default' = the shipped adapter)")
    model: str = opt("smollm2-135m", "base model the adapter was trained on")
    output_dir: str | None = opt(None, "where the export is written (default: runs/merged, or runs/gguf with "
                                 "--format gguf)")
    format: str = opt("transformers", "transformers: a model folder; gguf: one GGUF file (llama.cpp, Ollama, "
                      "LM Studio) with an Ollama Modelfile (GGUF-backed models: smollm2-135m or a .gguf file)",
                      choices=FORMATS)
    dtype: str = opt("float32", "weight type: float32, bfloat16 or float16; with --format gguf also q8_0 "
                     "(f32, f16, bf16 accepted)")
    max_new_tokens: int = opt(48, "gguf: the Modelfile's num_predict (as recover's --max-new-tokens)")
    push_to_hub: str | None = opt(None, "then upload the output folder (model + card) to this Hugging Face Hub "
                                  "model repo, OWNER/NAME")

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"unknown --format {self.format!r}; choose one of: {', '.join(FORMATS)}")
        if self.format == "gguf":
            if self.dtype.lower() not in GGUF_DTYPES:
                raise UserError(f"unknown --dtype {self.dtype!r} for --format gguf; use f32, f16, bf16 or q8_0")
        elif self.dtype not in TORCH_DTYPES:
            hint = " (q8_0 needs --format gguf)" if self.dtype.lower() in ("q8_0", "q8") else ""
            raise UserError(f"unknown dtype {self.dtype!r}; use float32, bfloat16 or float16{hint}")
        if self.max_new_tokens < 1:
            raise UserError("--max-new-tokens must be at least 1")


def is_export_folder(path: Path) -> bool:
    """An earlier export: a transformers model folder, or a GGUF export (a Modelfile and a .gguf file)."""
    return (path / "config.json").is_file() or ((path / "Modelfile").is_file() and any(path.glob("*.gguf")))


def check_export_dir(output_dir: str, inputs: list[str]) -> Path:
    """Before any work: the output folder is replaced at the end, so it must not be (or hold) an input,
    and an existing folder is only replaced when it is a model folder (an earlier export), never, say, `.`."""
    out = Path(output_dir)
    absout = Path(os.path.abspath(out))
    for src in inputs:
        s = Path(os.path.abspath(Path(src).expanduser()))
        if Path(src).expanduser().exists() and (s == absout or absout in s.parents):
            raise UserError(f"--output-dir {out} is (or holds) the input {src}; it would be deleted: choose "
                            "another folder")
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--output-dir {out} is a file, not a folder")
        if any(out.iterdir()) and not is_export_folder(out):
            raise UserError(f"--output-dir {out} exists and is not a model folder (no config.json, nor a Modelfile "
                            "with a .gguf file); it would be replaced: choose a new folder or remove it first")
    check_folder_writable(out.parent, f"--output-dir {out}")
    return out


def export(cfg: ExportConfig) -> Path:
    cfg.validate()  # also when called from Python, not through the CLI
    if cfg.format == "gguf":
        return export_gguf(cfg)
    import torch

    adapter = models.resolve_adapter(cfg.model, cfg.adapter)
    if adapter is None:
        raise UserError(f"no adapter to merge for {cfg.model}; pass --adapter DIR")
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(cfg.dtype)
    if dt is None:
        raise UserError(f"unknown dtype {cfg.dtype!r}; use float32, bfloat16 or float16")
    out = check_export_dir(cfg.output_dir or DEFAULT_DIRS["transformers"], [adapter, cfg.model])
    base, tok, _ = models.load_base(cfg.model, "cpu", "float32")
    merged = models.attach_adapter(base, adapter).merge_and_unload()
    with atomic_path(out, directory=True, replace=True) as tmp:  # an earlier export is swapped out in one step
        merged.to(dt).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        meta = Path(adapter) / models.ADAPTER_META
        if meta.is_file():
            shutil.copy(meta, tmp / models.ADAPTER_META)
        atomic_write_text(tmp / "README.md", card.render_merged_card(out, cfg.model, adapter, cfg.dtype,
                                                                     cfg.push_to_hub))
    return out


# ---------------------------------------------------------------- GGUF + Ollama Modelfile

def gguf_name(model: str, adapter: str | None, qtype: str) -> str:
    """File name of the exported GGUF, e.g. ``smollm2-135m-prompt-recovery.f16.gguf``."""
    stem = Path(model).stem if model.endswith(".gguf") else model.replace("/", "-")
    return f"{stem}{'-prompt-recovery' if adapter else ''}.{qtype}.gguf"


def _gguf_meta(path: Path) -> dict:
    """The few metadata values the Modelfile needs: context length and whether llama.cpp adds BOS itself."""
    import gguf

    r = gguf.GGUFReader(str(path))

    def get(key, default=None):
        f = r.get_field(key)
        return f.contents() if f is not None else default

    arch = get("general.architecture", "llama")
    tok_model = get("tokenizer.ggml.model", "llama")
    # llama.cpp's default when the key is missing: BOS for SentencePiece vocabularies (tokenizer model "llama")
    add_bos = get("tokenizer.ggml.add_bos_token", tok_model == "llama")
    return {"context_length": int(get(f"{arch}.context_length", 2048)), "add_bos": bool(add_bos)}


def _go_text(s: str) -> str:
    """Literal text inside a Go template (what Ollama's TEMPLATE is): only `{{` needs escaping."""
    return s.replace("{{", '{{ "{{" }}')


def rendered_turn(tokenizer, prompt_format) -> tuple[str, str]:
    """(before, after): the prompt `recover` gives the model is before + the user message + after
    (the tokenizer's chat template for one user turn with the generation prompt; or the plain format)."""
    if prompt_format.name == "chat":
        text = tokenizer.apply_chat_template([{"role": "user", "content": _SLOT}], tokenize=False,
                                             add_generation_prompt=True)
    else:
        text = f"{tokenizer.bos_token or ''}{_SLOT}\nInstruction:"
    if text.count(_SLOT) != 1:
        raise UserError("the tokenizer's chat template does not place the user message exactly once; it cannot "
                        "be written as an Ollama TEMPLATE")
    before, after = text.split(_SLOT)
    return before, after


def ollama_template(tokenizer, prompt_format, add_bos: bool) -> str:
    """The Ollama TEMPLATE (Go template syntax): `rendered_turn` around ``{{ .Prompt }}``. A leading BOS
    token is left out when llama.cpp adds it itself (`add_bos`), so it is not there twice."""
    before, after = rendered_turn(tokenizer, prompt_format)
    bos = tokenizer.bos_token
    if add_bos and bos and before.startswith(bos):
        before = before[len(bos):]
    return _go_text(before) + "{{ .Prompt }}" + _go_text(after)


def stop_tokens(tokenizer, prompt_format) -> list[str]:
    """Strings that end an answer: the EOS token, then every special token of the rendered template
    (turn markers such as ``<|im_start|>``/``<|im_end|>``), in that order, without repeats."""
    before, after = rendered_turn(tokenizer, prompt_format)
    found = [t for t in getattr(tokenizer, "all_special_tokens", []) if t and t in before + after]
    return list(dict.fromkeys([t for t in [tokenizer.eos_token, *found] if t]))


def _quote(s: str) -> str:
    if '"' in s or "\n" in s:
        raise UserError(f"stop token {s!r} cannot be written in a Modelfile")
    return f'"{s}"'


def render_modelfile(tokenizer, prompt_format, gguf_file: str, *, add_bos: bool, context_length: int,
                     max_new_tokens: int = 48, title: str = "") -> str:
    """An Ollama Modelfile for the exported GGUF (see the module docstring)."""
    template = ollama_template(tokenizer, prompt_format, add_bos)
    if '"""' in template:
        raise UserError('the chat template holds """, which a Modelfile TEMPLATE cannot')
    hint = ("Length: original <N> words, rewritten <M> words (<R> times shorter | <R> times longer | "
            "about the same length)." if getattr(prompt_format, "length_hint", False) else None)
    example = user_message("<original text>", "<rewritten text>", hint)
    lines = [f"# prompt-recovery: {title}" if title else "# prompt-recovery",
             "# Recovers the instruction an LLM was given from an original text and its rewrite.",
             "#",
             "# Send ONE user message per pair, exactly this text (the format the adapter was trained on):",
             "#"]
    lines += [f"#   {ln}".rstrip() for ln in example.split("\n")]
    lines += ["#",
              f"# `prompt-recovery recover` first cuts the two texts to {prompt_format.max_text_tokens} tokens together",
              f"# (each keeps its beginning and ends with \"{TRUNCATION_MARK.strip()}\"); send texts that short for the",
              "# same answers. It also post-processes the answer (first line, no \"Sure, ...\" preamble or quotes).",
              *(["# The Length line counts the words of the whole texts (before cutting); R = M/N or N/M to one",
                 "# decimal, \"about the same length\" when M/N is between 0.8 and 1.25."] if hint else []),
              *(["# The TEMPLATE is the tokenizer's chat template rendered for one user turn (with the system",
                 "# turn it adds by default, if any; a SYSTEM message is not used)."] if prompt_format.name == "chat"
                else ["# The TEMPLATE is the plain prompt format: the message, then a line \"Instruction:\"."]),
              "# Greedy decoding, as prompt-recovery: temperature 0, no repeat penalty.",
              "",
              f"FROM ./{gguf_file}",
              "",
              f'TEMPLATE """{template}"""',
              ""]
    lines += [f"PARAMETER stop {_quote(t)}" for t in stop_tokens(tokenizer, prompt_format)]
    lines += ["PARAMETER temperature 0", "PARAMETER repeat_penalty 1",
              f"PARAMETER num_predict {max_new_tokens}", f"PARAMETER num_ctx {min(context_length, OLLAMA_MAX_CTX)}",
              ""]
    return "\n".join(lines)


def parse_modelfile(text: str) -> dict:
    """FROM, TEMPLATE and PARAMETER values of a Modelfile written by `render_modelfile` (for tests and checks):
    {"from": str, "template": str, "parameters": {name: [values]}}."""
    out: dict = {"from": None, "template": None, "parameters": {}}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("FROM "):
            out["from"] = line[5:].strip()
        elif line.startswith('TEMPLATE """'):
            body = line[len('TEMPLATE """'):]
            while '"""' not in body:
                i += 1
                body += "\n" + lines[i]
            out["template"] = body[: body.index('"""')]
        elif line.startswith("PARAMETER "):
            _, name, value = line.split(" ", 2)
            value = json.loads(value) if value.startswith('"') else value
            out["parameters"].setdefault(name, []).append(value)
        i += 1
    return out


def export_gguf(cfg: ExportConfig) -> Path:
    qtype = GGUF_DTYPES[cfg.dtype.lower()]
    base = gguf_merge.gguf_source(cfg.model)
    if base is None:
        raise UserError(f"--format gguf needs a GGUF-backed model (smollm2-135m or a .gguf file), not {cfg.model!r}: "
                        "export it with --format transformers and convert that folder with llama.cpp's "
                        "convert_hf_to_gguf.py")
    adapter = models.resolve_adapter(cfg.model, cfg.adapter)
    if adapter is None:
        raise UserError(f"no adapter to merge for {cfg.model}; pass --adapter DIR")
    if not Path(adapter).is_dir():
        raise UserError(f"--format gguf needs a local adapter directory, not {adapter!r}; download it first "
                        f"(`hf download {adapter} --local-dir DIR`) and pass --adapter DIR")
    out = check_export_dir(cfg.output_dir or DEFAULT_DIRS["gguf"], [adapter, cfg.model])
    tok = models.load_tokenizer(cfg.model)
    meta = models.read_adapter_meta(adapter)
    fmt = from_meta(meta.get("prompt_format", {}), tok)

    merged = gguf_merge.merged_gguf(base, adapter, weight_type=qtype)  # built once, cached; says so when it builds
    try:  # written 0600 (a temporary file renamed); the export, a hard link to it, shares the mode
        os.chmod(merged, 0o644)
    except OSError:
        pass
    name = gguf_name(cfg.model, adapter, qtype)
    t0 = time.time()
    with atomic_path(out, directory=True, replace=True) as tmp:  # an earlier export is swapped out in one step
        try:  # the cached merge, without a second copy on disk where the file system allows
            os.link(merged, tmp / name)
        except OSError:
            shutil.copyfile(merged, tmp / name)
        info = _gguf_meta(tmp / name)
        title = f"{cfg.model} + adapter {Path(adapter).name}, {qtype} weights"
        atomic_write_text(tmp / "Modelfile", render_modelfile(
            tok, fmt, name, add_bos=info["add_bos"], context_length=info["context_length"],
            max_new_tokens=cfg.max_new_tokens, title=title))
        meta = {**meta, "export": {"format": "gguf", "gguf_file": name, "weight_type": qtype,
                                   "base_model": cfg.model, "adapter": Path(adapter).name}}
        atomic_write_text(tmp / models.ADAPTER_META, json.dumps(meta, indent=2) + "\n")
        atomic_write_text(tmp / "README.md", render_gguf_card(out, cfg.model, adapter, name, qtype, cfg.push_to_hub))
    size = (out / name).stat().st_size / 1e6
    print(f"wrote {out / name} ({size:.0f} MB, {qtype}) and {out / 'Modelfile'} in {time.time() - t0:.1f} s")
    return out


def render_gguf_card(model_dir: str | Path, model: str, adapter: str, gguf_file: str, qtype: str,
                     repo_id: str | None = None) -> str:
    """The model card of a GGUF export (library gguf; base model, licence, evaluation as for the adapter)."""
    import yaml

    d, a = Path(model_dir), Path(adapter)
    cfg = yaml.safe_load((a / "train_config.yaml").read_text()) if (a / "train_config.yaml").is_file() else {}
    cfg = {**(cfg or {}), "model": model}
    run = json.loads((a / "train_summary.json").read_text()) if (a / "train_summary.json").is_file() else {}
    results = card._read_results(a)
    name = repo_id.split("/")[-1] if repo_id else d.resolve().name
    src = "shipped with prompt-recovery" if card._shipped(a, model) else f"`{a.name}`"
    body = [f"# prompt-recovery model: {model} with its LoRA adapter merged, as GGUF", "",
            "Recovers the instruction an LLM was given from an (original text, rewritten text) pair, "
            "as in the Kaggle *LLM Prompt Recovery* competition. One GGUF file for llama.cpp, Ollama and LM Studio: "
            f"the LoRA adapter {src} merged into the base weights, 2-D weights stored as {qtype} (norms, token "
            "embedding and output head float32), with an Ollama `Modelfile` (chat template, stop tokens, greedy "
            "decoding) and `prompt_recovery.json` (the prompt format).", ""]
    body += card._base_section(cfg, run, merged=True)
    body += ["", "## Use", "",
             "Send one user message per pair: `Original text:`, the original, a blank line, `Rewritten text:`, the "
             "rewrite, a blank line, then `Which instruction turned the original text into the rewritten text? "
             "Reply with the instruction only.` (see the Modelfile's comments).", "", "```bash",
             "ollama create prompt-recovery -f Modelfile",
             "ollama run prompt-recovery \"$(cat message.txt)\"",
             f"llama-server -m {gguf_file} --jinja --temp 0 -n 48 --port 8080   # OpenAI-compatible API",
             "```"]
    if cfg.keys() - {"model"}:
        body += card._recipe_sections(cfg, run)
    if results:
        body += card._evaluation_section(results, merged=True)
        body += ["", "The evaluation above was measured with `prompt-recovery` on the adapter (float32 weights)."]
    body += ["", "Generated by `prompt-recovery export --format gguf` (prompt_recovery/training/export.py).", ""]
    return card._card(body, cfg, results, name, "gguf", ("gguf", "llama.cpp", "ollama", "merged-lora"),
                      base_model_relation="finetune")


def run(cfg: ExportConfig) -> int:
    if cfg.push_to_hub:
        check_repo_id(cfg.push_to_hub)  # before the merge
    out = export(cfg)
    if cfg.format == "gguf":
        print(f"GGUF export written to {out}; Ollama: ollama create prompt-recovery -f {out / 'Modelfile'}")
    else:
        print(f"merged model written to {out}")
    if cfg.push_to_hub:
        print(f"uploaded: {push_folder(out, cfg.push_to_hub)}")
    return 0
