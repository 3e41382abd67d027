"""Publish an output folder (a trained adapter or a merged model, with its card) to the Hugging Face Hub.

    prompt-recovery train --config configs/smollm2-135m-cpu.yaml --push-to-hub OWNER/NAME
    prompt-recovery export --adapter runs/adapter --output-dir runs/merged --push-to-hub OWNER/NAME-merged
    python -m prompt_recovery.hub runs/adapter OWNER/NAME     # upload a folder written earlier

Uses huggingface_hub's `HfApi`: `create_repo(exist_ok=True)` then one `upload_folder` commit. Training
checkpoints (`checkpoints/`), hidden and temporary files stay local. The token comes from `HF_TOKEN`
or `hf auth login`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from prompt_recovery.errors import UserError

# relative to the folder; patterns ending in "/" cover everything below
IGNORE_PATTERNS = ["checkpoints/", ".*", "*/.*", "*.tmp", "__pycache__/"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def hf_api(token: str | None = None):
    """huggingface_hub's HfApi (tests put a fake in its place)."""
    from huggingface_hub import HfApi

    return HfApi(token=token)


def check_repo_id(repo_id: str) -> str:
    if not _REPO_ID.match(repo_id or "") or ".." in repo_id or repo_id.endswith((".", "-")):
        raise UserError(f"--push-to-hub {repo_id!r} is not a Hub repository id; use OWNER/NAME, e.g. "
                        "your-user/prompt-recovery-adapter")
    return repo_id


def push_folder(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None) -> str:
    """Create the model repo if needed and upload `folder` (without checkpoints/); returns the repo URL."""
    check_repo_id(repo_id)
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise UserError(f"{folder} has no README.md (model card); nothing was uploaded")
    api = hf_api(token)
    print(f"uploading {folder} to https://huggingface.co/{repo_id} ...", flush=True)
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          ignore_patterns=list(IGNORE_PATTERNS),
                          commit_message=commit_message or f"Upload {folder.name} with prompt-recovery")
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - HTTP, auth and network errors vary
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"upload of {folder} to {repo_id} failed: {msg}; log in with `hf auth login` (or set "
                        f"HF_TOKEN to a write token) and retry with: python -m prompt_recovery.hub {folder} "
                        f"{repo_id}") from None
    return str(getattr(url, "url", None) or url or f"https://huggingface.co/{repo_id}")


def _main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m prompt_recovery.hub",
                                 description="upload an adapter or merged-model folder (without checkpoints/)")
    ap.add_argument("folder")
    ap.add_argument("repo_id", help="OWNER/NAME of the Hub model repository (created if missing)")
    ap.add_argument("--private", action="store_true", help="create the repository as private")
    a = ap.parse_args(argv)
    try:
        print(f"uploaded: {push_folder(a.folder, a.repo_id, private=a.private or None)}")
    except UserError as e:
        print(f"prompt-recovery: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
