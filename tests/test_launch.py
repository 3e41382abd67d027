"""CPU training in several processes (`training.launch`): how many, how updates are split, and that
two single-threaded processes train the same adapter as one process.

    python -m pytest -q tests/test_launch.py
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from prompt_recovery.errors import UserError
from prompt_recovery.training import launch
from prompt_recovery.training.launch import accumulation_per_process, cpu_processes, should_launch
from prompt_recovery.training.train import TrainConfig, run, train


@pytest.mark.parametrize("requested, accumulation, cores, expected", [
    (0, 4, 2, 2), (0, 4, 3, 2), (0, 4, 8, 4), (0, 4, 1, 1), (0, 3, 2, 1), (0, 6, 4, 3), (2, 4, 1, 2), (1, 4, 8, 1),
])
def test_processes_per_core_divide_the_accumulation(requested, accumulation, cores, expected):
    assert cpu_processes(requested, accumulation, cores) == expected


@pytest.mark.parametrize("requested, accumulation", [(3, 4), (-1, 4)])
def test_bad_process_counts_are_refused(requested, accumulation):
    with pytest.raises(UserError, match="processes"):
        cpu_processes(requested, accumulation, 8)


def test_accumulation_is_split_only_over_processes_train_launched(monkeypatch):
    cfg = TrainConfig(train_data="x.csv", gradient_accumulation_steps=4, processes=0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert accumulation_per_process(cfg) == 4
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert accumulation_per_process(cfg) == 2
    cfg.processes = 1  # started by an external launcher (torchrun/accelerate): counts are per process
    assert accumulation_per_process(cfg) == 4


def test_launch_only_on_cpu_outside_a_launcher(monkeypatch):
    monkeypatch.setattr(launch.hardware, "usable_cores", lambda: 2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = TrainConfig(train_data="x.csv", gradient_accumulation_steps=4, processes=0)
    assert should_launch(cfg, "cpu") == 2
    assert should_launch(cfg, "cuda") == 0
    cfg.processes = 1
    assert should_launch(cfg, "cpu") == 0
    cfg.processes = 0
    monkeypatch.setenv("WORLD_SIZE", "2")  # already a worker
    assert should_launch(cfg, "cpu") == 0


def test_a_missing_table_fails_before_any_process_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = TrainConfig(train_data=str(tmp_path / "missing.csv"), output_dir=str(tmp_path / "o"),
                      gradient_accumulation_steps=2, processes=2, device="cpu")
    with pytest.raises(UserError, match="missing.csv"):
        run(cfg)
    assert not (tmp_path / "o" / launch.LAUNCHED_CONFIG).exists()


def _adapter(path):
    return load_file(str(path / "adapter_model.safetensors"))


def _losses(path):
    return [r["loss"] for r in map(json.loads, (path / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


def test_two_processes_train_the_same_adapter_as_one(tmp_path, tiny_cfg, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    common = dict(per_device_train_batch_size=1, gradient_accumulation_steps=2, max_steps=2, precision="fp32",
                  val_fraction=0.0, val_data=None, device="cpu")
    train(tiny_cfg(tmp_path / "one", **common))
    assert run(tiny_cfg(tmp_path / "two", processes=2, **common)) == 0

    summary = json.loads((tmp_path / "two" / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_steps"] == 2
    assert not (tmp_path / "two" / launch.LAUNCHED_CONFIG).exists()
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    one, two = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    assert one.keys() == two.keys()
    moved = 0
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-5, rtol=1e-4), k
        moved += "lora_B" in k and one[k].abs().max() > 0
    assert moved  # the updates happened (B starts at zero): not a comparison of two untrained adapters
