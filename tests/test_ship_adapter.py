"""scripts/ship_adapter.py: an extracted adapter becomes the default's files, and the card's evaluation table is built
from every report there is (dev and the quality parts), so that re-scoring dev no longer drops the held-out rows."""

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src/prompt_recovery/adapters/smollm2-135m-prompt-recovery"


def _report(path: Path, n: int, scs: float, family: float | None = None) -> None:
    rep = {"metrics": {"n": n, "scs": scs, "bleu": 3.0}, "ci": {"scs": [scs - 0.01, scs + 0.01]}}
    if family is not None:
        rep["family_accuracy"] = {"accuracy": family}
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(rep))


def test_copy_adapter_replaces_the_files_and_names_the_run(tmp_path, script):
    ship = script("ship_adapter")
    src, dest = tmp_path / "f10-l56e", tmp_path / "default"
    src.mkdir(), dest.mkdir()
    for f in ship.ADAPTER_FILES:
        (src / f).write_text(f"new {f}")
        (dest / f).write_text(f"old {f}")
    (src / "extracted.json").write_text(json.dumps({"rank": 56, "from": "runs/exp/f10"}))
    (dest / "evaluation.json").write_text("{}")  # not an adapter file: kept
    ship.copy_adapter(src, "F10", dest)
    assert (dest / "adapter_model.safetensors").read_text() == "new adapter_model.safetensors"
    assert json.loads((dest / "extracted.json").read_text()) == {"rank": 56,
                                                                  "from": "runs/exp/f10 (run F10 of docs/quality.md)"}
    assert (dest / "evaluation.json").read_text() == "{}"
    assert not list(dest.glob(".*.tmp"))


def test_copy_adapter_refuses_a_directory_that_is_not_an_extracted_adapter(tmp_path, script):
    ship = script("ship_adapter")
    (tmp_path / "src").mkdir(), (tmp_path / "dest").mkdir()
    (tmp_path / "src" / "adapter_config.json").write_text("{}")
    with pytest.raises(SystemExit, match="lacks adapter_model.safetensors"):
        ship.copy_adapter(tmp_path / "src", "F10", tmp_path / "dest")
    assert not list((tmp_path / "dest").iterdir())


def test_card_has_dev_and_every_scored_part_and_names_what_is_missing(tmp_path, capsys, script):
    ship = script("ship_adapter")
    card = tmp_path / "card"
    shutil.copytree(SHIPPED, card, ignore=shutil.ignore_patterns("*.safetensors"))
    ev = tmp_path / "eval"
    _report(ev / "dev", 756, 0.224)
    _report(ev / "dev_typos", 756, 0.183)
    _report(ev / "f10_heldout", 576, 0.230)
    _report(ev / "f10_suite", 89, 0.150, family=0.6)
    _report(ev / "f10_suited", 84, 0.110, family=0.7)
    reports = ship.write_card("f10", dest=card, eval_dir=ev)
    assert list(reports) == ["shipped adapter, dev", "shipped adapter, dev with typos (rate 0.05)",
                             "shipped adapter, heldout", "shipped adapter, family suite", "shipped adapter, suite D"]
    out = json.loads((card / "evaluation.json").read_text())
    assert out["shipped adapter, suite D"]["family_accuracy"] == 0.7 and out["shipped adapter, suite D"]["n"] == 84
    assert out["shipped adapter, heldout"]["scs"] == pytest.approx([0.230, 0.220, 0.240])
    assert "756 rows" in out["_note"] and "576 rows" in out["_note"] and "Suite D: the 84" in out["_note"]
    assert 'PARTS="heldout suite suited"' in out["_note"] and "Suite B" not in out["_note"]
    assert "suite B left out" in capsys.readouterr().err
    assert "| shipped adapter, suite D |" in (card / "README.md").read_text()


def test_card_needs_the_dev_report(tmp_path, script):
    with pytest.raises(SystemExit, match="evaluate_default_adapter.sh"):
        script("ship_adapter").write_card("f10", dest=tmp_path, eval_dir=tmp_path / "eval")
