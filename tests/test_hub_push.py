"""--push-to-hub for train and export, against a fake HfApi (no network): the exact files and card that
would be uploaded; checkpoints stay local."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
from huggingface_hub.utils import filter_repo_objects

from prompt_recovery import hub, models
from prompt_recovery.errors import UserError


class FakeHfApi:
    """Records what HfApi.create_repo/upload_folder would do; lists files the way upload_folder does
    (every file below the folder, filtered by huggingface_hub's filter_repo_objects)."""

    def __init__(self, token=None):
        self.token = token
        self.repos: list[tuple] = []
        self.uploads: list[dict] = []

    def create_repo(self, repo_id, *, repo_type=None, exist_ok=False, private=None, **kw):
        self.repos.append((repo_id, repo_type, exist_ok, private))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, ignore_patterns=None, allow_patterns=None,
                      commit_message=None, **kw):
        folder = Path(folder_path)
        rel = [p.relative_to(folder).as_posix() for p in sorted(folder.glob("**/*")) if p.is_file()]
        files = list(filter_repo_objects(rel, allow_patterns=allow_patterns,
                                         ignore_patterns=[*(ignore_patterns or []), *DEFAULT_IGNORE_PATTERNS]))
        self.uploads.append({"repo_id": repo_id, "repo_type": repo_type, "files": sorted(files),
                             "card": (folder / "README.md").read_text(), "message": commit_message})


@pytest.fixture
def api(monkeypatch):
    fake = FakeHfApi()
    monkeypatch.setattr(hub, "hf_api", lambda token=None: fake)
    return fake


def front_matter(text):
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_train_pushes_the_adapter_folder_without_checkpoints(tmp_path, api, tiny_cfg):
    from prompt_recovery.training.train import train

    out = tmp_path / "adapter"
    train(tiny_cfg(out, max_steps=2, eval_steps=1, save_total_limit=1, push_to_hub="someone/tiny-adapter"))
    assert (out / "checkpoints").is_dir() and any((out / "checkpoints").rglob("*.safetensors"))
    assert api.repos == [("someone/tiny-adapter", "model", True, None)]
    [up] = api.uploads
    assert up["repo_id"] == "someone/tiny-adapter" and up["repo_type"] == "model"
    assert up["files"] == ["README.md", "adapter_config.json", "adapter_model.safetensors", "chat_template.jinja",
                           "loss.png", "prompt_recovery.json", "tokenizer.json", "tokenizer_config.json",
                           "train_config.yaml", "train_log.jsonl", "train_summary.json"]
    card = up["card"]
    assert card == (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "peft" and meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "text-generation" and "prompt-recovery" in meta["tags"]
    assert "base_model" not in meta  # a test model has no Hub id
    assert "--adapter someone/tiny-adapter" in card
    assert yaml.safe_load((out / "train_config.yaml").read_text())["push_to_hub"] == "someone/tiny-adapter"


def _tiny_adapter(path: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    model, tok = models.tiny_random("mistral")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(path)
    tok.save_pretrained(path)
    models.write_adapter_meta(path, {"prompt_format": {"name": "chat", "max_text_tokens": 64}})
    (path / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (path / "checkpoints" / "checkpoint-1" / "optimizer.pt").write_bytes(b"x")
    return path


def test_export_pushes_the_merged_model_with_its_card(tmp_path, api, capsys):
    from prompt_recovery.training.export import ExportConfig, run

    adapter = _tiny_adapter(tmp_path / "adapter")
    out = tmp_path / "merged"
    assert run(ExportConfig(adapter=str(adapter), model="tiny-random-mistral", output_dir=str(out),
                            push_to_hub="someone/tiny-merged")) == 0
    assert api.repos == [("someone/tiny-merged", "model", True, None)]
    [up] = api.uploads
    assert up["files"] == ["README.md", "chat_template.jinja", "config.json", "generation_config.json",
                           "model.safetensors", "prompt_recovery.json", "tokenizer.json", "tokenizer_config.json"]
    meta = front_matter(up["card"])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert "--model someone/tiny-merged --adapter none" in up["card"]
    assert "uploaded: https://huggingface.co/someone/tiny-merged" in capsys.readouterr().out


def test_push_ignores_checkpoints_hidden_and_temporary_files(tmp_path, api):
    d = tmp_path / "x"
    for f in ("README.md", "adapter_model.safetensors", "checkpoints/checkpoint-5/optimizer.pt",
              ".README.md.abc.tmp", "sub/.hidden", "sub/kept.json", "partial.tmp"):
        (d / f).parent.mkdir(parents=True, exist_ok=True)
        (d / f).write_text("---\nlicense: apache-2.0\n---\n" if f == "README.md" else "x")
    hub.push_folder(d, "someone/x", private=True)
    assert api.repos == [("someone/x", "model", True, True)]
    assert api.uploads[0]["files"] == ["README.md", "adapter_model.safetensors", "sub/kept.json"]


@pytest.mark.parametrize("repo_id", ["noslash", "a/b/c", "/name", "owner/", "owner/na me", "owner/..x"])
def test_bad_repo_id_is_a_user_error(repo_id, tmp_path, api):
    (tmp_path / "README.md").write_text("card")
    with pytest.raises(UserError, match="not a Hub repository id"):
        hub.push_folder(tmp_path, repo_id)
    assert not api.uploads


def test_export_checks_the_repo_id_before_merging(tmp_path, api):
    from prompt_recovery.training.export import ExportConfig, run

    with pytest.raises(UserError, match="not a Hub repository id"):
        run(ExportConfig(adapter=str(tmp_path / "missing"), model="tiny-random-mistral",
                         output_dir=str(tmp_path / "m"), push_to_hub="not-a-repo"))


def test_failed_upload_is_one_line_with_the_retry_command(tmp_path, monkeypatch):
    class Denied(FakeHfApi):
        def create_repo(self, repo_id, **kw):
            raise RuntimeError("401 Client Error: Unauthorized for url\nInvalid credentials")

    monkeypatch.setattr(hub, "hf_api", lambda token=None: Denied())
    (tmp_path / "README.md").write_text("card")
    with pytest.raises(UserError) as e:
        hub.push_folder(tmp_path, "someone/x")
    msg = str(e.value)
    assert "\n" not in msg and "401" in msg and "hf auth login" in msg
    assert f"python -m prompt_recovery.hub {tmp_path} someone/x" in msg


def test_folder_without_a_card_is_not_uploaded(tmp_path, api):
    with pytest.raises(UserError, match="no README.md"):
        hub.push_folder(tmp_path, "someone/x")
    assert not api.repos


def test_module_command_uploads_a_folder(tmp_path, api, capsys):
    (tmp_path / "README.md").write_text("card")
    assert hub._main([str(tmp_path), "someone/x"]) == 0
    assert api.uploads[0]["files"] == ["README.md"]
    assert hub._main([str(tmp_path), "bad"]) == 2
    assert "not a Hub repository id" in capsys.readouterr().err
