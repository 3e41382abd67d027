"""Bad input and unsafe outputs (issue 16): nothing lost, nothing misread, nothing run that should not be.

Every user-fixable problem is one line on stderr and exit 2, found before any expensive work.

    .venv/bin/python -m pytest -q tests/test_bad_input.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from prompt_recovery.cli import main
from prompt_recovery.errors import UserError
from prompt_recovery.prompting import DEFAULT_INSTRUCTION, postprocess
from prompt_recovery.schema import read_table, write_table

FIX = Path(__file__).parent / "fixtures"
PAIRS = FIX / "predict_pairs.csv"
TINY = ["--model", "tiny-random-llama", "--adapter", "none", "--max-new-tokens", "4", "--no-progress"]


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prompt-recovery: error: "), err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a model would be loaded (errors must come before any expensive work)."""
    from prompt_recovery.inference import recover

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the error")

    monkeypatch.setattr(recover, "load_recoverer", boom)


# ---------------------------------------------------------------- 1. never overwrite an input

def test_predict_refuses_to_overwrite_its_input(tmp_path, capsys, no_model):
    same = tmp_path / "same.csv"
    same.write_bytes(PAIRS.read_bytes())
    assert main(["predict", str(same), "-o", str(same), *TINY]) == 2
    one_line_error(capsys, "also an input file")
    assert same.read_bytes() == PAIRS.read_bytes()
    # the same file by another name
    assert main(["predict", str(same), "-o", str(tmp_path / "." / "same.csv"), *TINY]) == 2
    assert same.read_bytes() == PAIRS.read_bytes()


def test_data_commands_refuse_to_overwrite_their_input(tmp_path, capsys):
    src = tmp_path / "t.csv"
    src.write_bytes((FIX / "data_triples.csv").read_bytes())
    for action in ("import", "clean", "noise"):
        assert main(["data", action, "--input", str(src), "--output", str(src)]) == 2, action
        one_line_error(capsys, "also an input file")
    assert src.read_bytes() == (FIX / "data_triples.csv").read_bytes()
    # split into a folder: an input there with the name of a split file is not overwritten either
    d = tmp_path / "splits"
    d.mkdir()
    inside = d / "train.csv"
    inside.write_bytes(src.read_bytes())
    assert main(["data", "split", "--input", str(inside), "--output", str(d), "--format", "csv"]) == 2
    one_line_error(capsys, "would overwrite the input")
    assert inside.read_bytes() == src.read_bytes()


def test_generate_refuses_to_write_into_its_corpus(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"id": f"c{i}", "original_text": f"Original passage number {i}, long enough to be used.",
             "rewritten_text": "x"} for i in range(3)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = corpus.read_bytes()
    assert main(["generate", "--originals", str(corpus), "-o", str(corpus), "--llm-originals", "0",
                 "--template-ratio", "1", "--rewriter", "http", "--endpoint", "http://127.0.0.1:9/v1", "--n", "5"]) == 2
    one_line_error(capsys, "also an input file")
    assert corpus.read_bytes() == before


def test_evaluate_output_dir_checked_before_scoring(tmp_path, capsys, monkeypatch):
    from prompt_recovery.scoring.embedders import Embedder

    monkeypatch.setattr(Embedder, "load", classmethod(lambda *a, **k: pytest.fail("embedder loaded")))
    pred = FIX / "eval_pred.csv"
    truth = FIX / "eval_truth.csv"
    # -d names a file (here: the predictions themselves)
    assert main(["evaluate", str(pred), "--truth", str(truth), "-d", str(pred)]) == 2
    one_line_error(capsys, "is a file, not a folder")
    # predictions stored as DIR/report.json would be overwritten by the report
    d = tmp_path / "rep"
    d.mkdir()
    inside = d / "report.json"
    pd.read_csv(pred, dtype=str).to_json(inside, orient="records", lines=True)
    before = inside.read_bytes()
    assert main(["evaluate", str(inside), "--truth", str(truth), "-d", str(d)]) == 2
    one_line_error(capsys, "would overwrite the input")
    assert inside.read_bytes() == before


def _tiny_adapter(path: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    from prompt_recovery import models

    base, _ = models.tiny_random("mistral")
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(path)
    return path


def test_export_never_deletes_an_input_or_a_foreign_folder(tmp_path, capsys):
    adapter = _tiny_adapter(tmp_path / "runs" / "adapter")
    snapshot = {p.name: p.read_bytes() for p in adapter.iterdir()}
    for out in (adapter, tmp_path / "runs"):  # the adapter itself, or a folder holding it
        assert main(["export", "--model", "tiny-random-mistral", "--adapter", str(adapter), "--output-dir",
                     str(out)]) == 2
        one_line_error(capsys, "it would be deleted")
        assert {p.name: p.read_bytes() for p in adapter.iterdir()} == snapshot
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    assert main(["export", "--model", "tiny-random-mistral", "--adapter", str(adapter), "--output-dir",
                 str(notes)]) == 2
    one_line_error(capsys, "is not a model folder")
    assert (notes / "todo.txt").read_text() == "keep me"
    # a new folder, then the same again (replacing an earlier export is fine)
    merged = tmp_path / "merged"
    for _ in range(2):
        assert main(["export", "--model", "tiny-random-mistral", "--adapter", str(adapter), "--output-dir",
                     str(merged)]) == 0
        assert (merged / "config.json").is_file()


# ---------------------------------------------------------------- 2. generate only resumes its own files

def _generate(out: Path) -> list[str]:
    return ["generate", "-o", str(out), "--n", "3", "--llm-originals", "1", "--template-ratio", "1",
            "--rewriter", "http", "--endpoint", "http://127.0.0.1:9/v1", "--retries", "0"]


def test_generate_refuses_a_foreign_jsonl(tmp_path, capsys):
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"id": "a", "text": "first"}\n{"id": "b", "text": "last record, no newline"}')
    before = foreign.read_bytes()
    assert main(_generate(foreign)) == 2
    one_line_error(capsys, "was not written by `prompt-recovery generate`")
    assert foreign.read_bytes() == before  # not cut, not appended to
    assert not (tmp_path / "notes.jsonl.plan.json").exists()


def test_generate_keeps_its_own_last_row_without_newline(tmp_path):
    from prompt_recovery.data.generate import plan_path, read_done

    out = tmp_path / "gen.jsonl"
    rows = [{"id": f"gen-{k:06d}", "original_text": "o", "rewrite_prompt": "p", "rewritten_text": "r"}
            for k in range(2)]
    plan_path(out).write_text("{}\n")
    out.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1]))  # e.g. saved by an editor
    assert read_done(out) == {"gen-000000", "gen-000001"}
    assert out.read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    out.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:20])  # cut by a kill
    assert read_done(out) == {"gen-000000"}
    assert out.read_text() == json.dumps(rows[0]) + "\n"


# ---------------------------------------------------------------- 3. CSV rows with too many fields

@pytest.mark.parametrize("bad_line", [2, 4])
def test_csv_row_with_more_fields_than_the_header_is_an_error_naming_the_line(tmp_path, capsys, bad_line, no_model):
    rows = ["r1,Hello world,Ahoy matey", "r2,It rains today.,Rain falls", "r3,Buy milk.,Acquire milk"]
    i = bad_line - 2
    rows[i] = rows[i].replace(" ", ", ", 1)  # an unquoted comma
    f = tmp_path / "in.csv"
    f.write_text("id,original_text,rewritten_text\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError, match=f"in.csv:{bad_line}: 4 fields, but the header has 3"):
        read_table(f)
    assert main(["predict", str(f), "-o", str(tmp_path / "out.csv"), *TINY]) == 2
    one_line_error(capsys, f":{bad_line}: 4 fields")
    assert not (tmp_path / "out.csv").exists()


def test_csv_quoting_blank_lines_bom_and_short_rows(tmp_path):
    f = tmp_path / "ok.csv"
    f.write_bytes('\ufeffid,original_text,rewritten_text\n\nr1,"Hello, world","Line one\nline two"\nr2,Short\n'
                  .encode())
    df = read_table(f)
    assert list(df.columns) == ["id", "original_text", "rewritten_text"]
    assert df.to_dict("records") == [
        {"id": "r1", "original_text": "Hello, world", "rewritten_text": "Line one\nline two"},
        {"id": "r2", "original_text": "Short", "rewritten_text": ""}]


# ---------------------------------------------------------------- 4. control characters

@pytest.mark.parametrize("raw, want", [
    ("Make\x00 it a po\x07em\x08.", "Make it a poem."),
    ("\x1b[31mMake it red.\x1b[0m", "Make it red."),
    ("Make it \u202eesrever\u202c now.", "Make it esrever now."),
    ("Turn\tit\x0binto\x7f a\u200b haiku\ufeff.\x85", "Turn it into a haiku."),
    ("\x00\x01\x1b", DEFAULT_INSTRUCTION),
    ("Add emoji \U0001F468\u200d\U0001F469 here.", "Add emoji \U0001F468\u200d\U0001F469 here."),
])
def test_postprocess_strips_control_characters(raw, want):
    out = postprocess(raw)
    assert out == want
    assert out.isprintable() or "\u200d" in out


def test_recovered_instructions_reach_stdout_and_files_without_controls(tmp_path):
    from prompt_recovery.inference import predict as pr
    from prompt_recovery.models import Loaded, tiny_tokenizer
    from prompt_recovery.prompting import get_format
    from prompt_recovery.inference.recover import Recoverer

    class Engine:
        name = "fake"

        def generate(self, ids, *a, **k):
            return ["Rewrite\x00 it\x1b[2J as a \u202epoem\x07." for _ in ids]

    tok = tiny_tokenizer(True)
    rec = Recoverer(Loaded(None, tok, "fake", "fake"), get_format("chat", 64, tok), engine=Engine())
    assert rec.recover("a", "b") == "Rewrite it as a poem."
    out = tmp_path / "o.csv"
    cfg = pr.PredictConfig(input=str(PAIRS), output=str(out), progress=False)
    preds = pr.predict_frame(pr.read_pairs(str(PAIRS)), cfg, recoverer=rec)
    write_table(pd.DataFrame({"id": list(range(len(preds))), "rewrite_prompt": preds}), out)
    text = out.read_text()
    assert not any(c in text for c in "\x00\x1b\x07\u202e")


# ---------------------------------------------------------------- 5. no custom model code, ever

def _evil_model(folder: Path, marker: Path) -> Path:
    folder.mkdir()
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["evil.Tok", None]}}))
    return folder


def test_custom_code_models_are_refused_and_never_run(tmp_path, monkeypatch, capsys):
    import builtins

    from prompt_recovery import models

    marker = tmp_path / "ran.txt"
    evil = _evil_model(tmp_path / "evil-model", marker)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(builtins, "input", lambda *a, **k: "y")  # a user who answers "y" to transformers' question
    with pytest.raises(UserError, match="custom code .* not supported"):
        models.load_base(str(evil), "cpu", "float32")
    with pytest.raises(UserError, match="custom code .* not supported"):
        models.load_tokenizer(str(evil))
    assert main(["recover", "--model", str(evil), "--adapter", "none", "--original", "a", "--rewritten", "b"]) == 2
    one_line_error(capsys, "not supported")
    assert not marker.exists()


def test_from_pretrained_always_passes_trust_remote_code_false(tmp_path, monkeypatch):
    from prompt_recovery import models

    seen = []

    class Fake:
        @classmethod
        def from_pretrained(cls, source, **kw):
            seen.append(kw.get("trust_remote_code", "missing"))
            return "ok"

    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    assert models._from_pretrained(Fake, str(d), "m") == "ok"
    assert seen == [False]


# ---------------------------------------------------------------- 11. outputs checked before any work

def test_predict_output_checked_before_the_model_loads(tmp_path, capsys, no_model):
    folder = tmp_path / "a-folder.csv"
    folder.mkdir()
    assert main(["predict", str(PAIRS), "-o", str(folder), *TINY]) == 2
    one_line_error(capsys, "is a folder")
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["predict", str(PAIRS), "-o", str(afile / "out.csv"), *TINY]) == 2
    one_line_error(capsys, "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_predict_unwritable_output_folder(tmp_path, capsys, no_model):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["predict", str(PAIRS), "-o", str(ro / "out.csv"), *TINY]) == 2
        one_line_error(capsys, "no permission")
    finally:
        ro.chmod(0o700)


def test_write_table_errors_are_one_line(tmp_path):
    d = tmp_path / "x.csv"
    d.mkdir()
    with pytest.raises(UserError, match="is a folder"):
        write_table(pd.DataFrame({"a": [1]}), d)


# ---------------------------------------------------------------- 12. JSONL lines must be flat objects

@pytest.mark.parametrize("lines, needle", [
    (['{"id": "a", "original_text": "x", "rewritten_text": "y"}', "42"], ":2: expected a JSON object"),
    (['["a", "b", "c"]'], ":1: expected a JSON object"),
    (['{"id": "a", "original_text": {"x": 1}, "rewritten_text": "y"}'], ":1: field 'original_text' holds an object"),
    (['{"id": "a", "original_text": "x", "rewritten_text": "y"}', "",
      '{"id": "b", "original_text": "x", "rewritten_text": ["y"]}'], ":3: field 'rewritten_text' holds a list"),
    (['{"id": "a", "original_text": "x", "rewritten_text": "y"', ], ":1: not valid JSON"),
])
def test_jsonl_lines_that_are_not_flat_objects_are_refused_with_the_line(tmp_path, capsys, lines, needle, no_model):
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=needle.replace("[", r"\[")):
        read_table(f)
    assert main(["predict", str(f), "-o", str(tmp_path / "out.csv"), *TINY]) == 2
    one_line_error(capsys, needle)


def test_jsonl_scalars_are_text(tmp_path):
    f = tmp_path / "ok.jsonl"
    f.write_text('{"id": 1, "original_text": "x", "rewritten_text": "y", "n": null}\n'
                 '{"id": 2, "original_text": "x2", "rewritten_text": "y2", "n": 3}\n')
    df = read_table(f)
    assert df["id"].tolist() == ["1", "2"] and df["original_text"].tolist() == ["x", "x2"]


# ---------------------------------------------------------------- 14. train_log.jsonl after a resume

def test_train_log_is_cut_back_to_the_checkpoint_on_resume(tmp_path):
    from transformers import TrainerCallback

    from prompt_recovery.training.train import TrainConfig, train

    class Kill(TrainerCallback):  # an interruption after step 3 was logged, checkpoint-2 being the last
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    out = tmp_path / "adapter"
    cfg = TrainConfig(train_data=str(FIX / "toy_triples.csv"), output_dir=str(out), model="tiny-random-mistral",
                      val_fraction=0.2, per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=4,
                      eval_steps=2, logging_steps=1, lora_r=4, lora_alpha=8, max_text_tokens=48, max_length=96,
                      precision="fp32", device="cpu", learning_rate=1e-3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Kill()])
    log = out / "train_log.jsonl"
    with log.open("a") as f:
        f.write('{"step": 3, "lo')  # and a line cut short
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    train(cfg)
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3, 4]
    # the same records as a run never interrupted (the final evaluation logs one more eval at step 4)
    whole = tmp_path / "whole"
    train(TrainConfig(**{**cfg.__dict__, "output_dir": str(whole)}))
    want = [json.loads(line) for line in (whole / "train_log.jsonl").read_text().splitlines()]
    assert [(r["step"], sorted(r)) for r in recs] == [(r["step"], sorted(r)) for r in want]
    assert [r["loss"] for r in recs if "loss" in r] == pytest.approx([r["loss"] for r in want if "loss" in r])


def test_truncate_log_keeps_up_to_the_step(tmp_path):
    from prompt_recovery.training.train import truncate_log

    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    truncate_log(log, 2)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]
    truncate_log(log, 0)  # a fresh run starts a fresh log
    assert log.read_text() == ""


# ---------------------------------------------------------------- process-wide state

def test_writing_files_never_flips_the_umask(tmp_path, monkeypatch):
    import stat

    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    mask = os.umask(0o027)
    os.umask(mask)
    old = os.umask(0o027)
    try:
        def no_flip(*a):
            raise AssertionError("os.umask called while writing (it races with other threads' files)")

        monkeypatch.setattr(os, "umask", no_flip)
        p = write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_embedder_load_sets_hf_hub_offline_only_while_loading(monkeypatch):
    import sentence_transformers

    from prompt_recovery.scoring.embedders import Embedder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = []

    class FakeST:
        def __init__(self, *a, **k):
            seen.append(os.environ.get("HF_HUB_OFFLINE"))

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeST)
    Embedder.load("minilm")
    assert seen == ["1"]
    assert "HF_HUB_OFFLINE" not in os.environ
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a value the user set is left alone
    Embedder.load("minilm")
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_resume_skips_a_checkpoint_cut_short_while_saving(tmp_path):
    from prompt_recovery.training.train import _last_checkpoint

    ck = tmp_path / "checkpoints"
    for step, state in ((2, '{"global_step": 2}'), (4, None), (6, '{"global_st')):
        d = ck / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "adapter_config.json").write_text("{}")
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    assert _last_checkpoint(ck) == str(ck / "checkpoint-2")
    assert _last_checkpoint(tmp_path / "none") is None


def test_predict_never_overwrites_a_foreign_file_at_the_resume_file_place(tmp_path, capsys, no_model):
    out = tmp_path / "out.csv"
    foreign = tmp_path / "out.csv.partial.jsonl"
    foreign.write_text('{"id": 1, "note": "mine"}\n')
    for extra in ([], ["--no-resume"]):
        assert main(["predict", str(PAIRS), "-o", str(out), *TINY, *extra]) == 2
        one_line_error(capsys, "was not written by `prompt-recovery predict`")
        assert foreign.read_text() == '{"id": 1, "note": "mine"}\n'
