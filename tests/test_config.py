"""Typed configs: YAML and flag values converted to the field types, one-line errors naming the key."""

from pathlib import Path

import pytest

from prompt_recovery import cli
from prompt_recovery.config import load_config, load_yaml, make_config
from prompt_recovery.errors import UserError
from prompt_recovery.training.train import TrainConfig

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_yaml_scientific_notation_becomes_a_float(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("train_data: x.csv\nlearning_rate: 5e-5\nnum_train_epochs: 2\nmax_steps: 1e3\n")
    cfg, _ = load_config(TrainConfig, ["--config", str(y)], "t")
    assert cfg.learning_rate == pytest.approx(5e-5) and isinstance(cfg.learning_rate, float)
    assert cfg.num_train_epochs == 2.0 and isinstance(cfg.num_train_epochs, float)
    assert cfg.max_steps == 1000 and isinstance(cfg.max_steps, int)


@pytest.mark.parametrize("key,value,expect", [
    ("max_steps", 2.5, "max_steps must be an integer"),
    ("per_device_train_batch_size", "eight", "per_device_train_batch_size must be an integer"),
    ("learning_rate", "fast", "learning_rate must be a number"),
    ("gradient_checkpointing", "maybe", "gradient_checkpointing must be true or false"),
    ("lora_r", True, "lora_r must be an integer"),
    ("output_dir", {"a": 1}, "output_dir must be a single value"),
    ("precision", "fp8", "precision must be one of"),
])
def test_bad_values_name_the_key(key, value, expect):
    with pytest.raises(UserError, match=expect):
        make_config(TrainConfig, {"train_data": "x.csv", key: value}, "config")


def test_a_single_target_module_is_a_one_item_list():
    cfg = make_config(TrainConfig, {"train_data": "x.csv", "target_modules": "q_proj"})
    assert cfg.target_modules == ["q_proj"]
    cfg = make_config(TrainConfig, {"train_data": "x.csv", "gradient_checkpointing": "yes", "max_val_rows": None})
    assert cfg.gradient_checkpointing is True and cfg.max_val_rows is None


def test_cli_reports_bad_yaml_in_one_line(tmp_path, capsys):
    y = tmp_path / "c.yaml"
    y.write_text("train_data: x.csv\nbatch_size: 1\nmax_steps: 2.5\n")
    y.write_text("train_data: x.csv\nmax_steps: 2.5\n")
    assert cli.main(["train", "--config", str(y)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "max_steps must be an integer" in err
    y.write_bytes(b"learning_rate: \xff\xfe\n")
    assert cli.main(["train", "--config", str(y)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    from prompt_recovery.training.train import TrainConfig

    cfg = make_config(TrainConfig, load_yaml(path), str(path))
    assert cfg.learning_rate > 0 and cfg.lora_r > 0 and cfg.target_modules
