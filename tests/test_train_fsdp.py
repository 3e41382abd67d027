"""FSDP saving: the adapter written after a 2-process FSDP2 run holds the full LoRA weights, not one shard.

Under FSDP each process holds a shard of every LoRA matrix (a DTensor); the adapter must be gathered from all
processes before the main process writes it (train.py: accelerate's `get_state_dict` on every rank). Run on
the CPU with gloo through tests/fixtures/fsdp_cpu_train.py (see there why a launcher is needed).
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).parent / "fixtures"
FSDP_ENV = {  # what `accelerate launch` sets for configs/accelerate/fsdp-2gpu.yaml (FSDP2, sharded checkpoints)
    "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_SHARDING_STRATEGY": "FULL_SHARD",
    "FSDP_RESHARD_AFTER_FORWARD": "true", "FSDP_OFFLOAD_PARAMS": "false", "FSDP_MIN_NUM_PARAMS": "100000000",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_TRANSFORMER_CLS_TO_WRAP": "MistralDecoderLayer",
    "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT", "FSDP_USE_ORIG_PARAMS": "true",
    "FSDP_CPU_RAM_EFFICIENT_LOADING": "false", "FSDP_SYNC_MODULE_STATES": "true",
    "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
}


@pytest.mark.slow
def test_fsdp_run_saves_the_full_adapter(tmp_path):
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = tmp_path / "fsdp"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(FIXTURES / "fsdp_cpu_train.py"), "train", str(FIXTURES / "toy_triples.csv"),
           "--model", "tiny-random-mistral", "--output-dir", str(out), "--max-steps", "3",
           "--per-device-train-batch-size", "1", "--gradient-accumulation-steps", "1", "--learning-rate", "1e-2",
           "--max-val-rows", "0", "--max-text-tokens", "64", "--max-length", "128", "--logging-steps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **FSDP_ENV}, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = out / "checkpoints" / "checkpoint-3"
    assert (ckpt / "pytorch_model_fsdp_0").is_dir()  # it really ran sharded: a DCP checkpoint, one shard a rank
    dcp_to_torch_save(ckpt / "pytorch_model_fsdp_0", tmp_path / "gathered.pt")  # the final weights, gathered
    gathered = torch.load(tmp_path / "gathered.pt", weights_only=False)
    gathered = gathered.get("model", gathered)

    saved = load_file(out / "adapter_model.safetensors")
    assert len(saved) == 2 * 3 * 2  # lora_A and lora_B of q/k/v (the default targets) in both layers
    for name, tensor in saved.items():
        full = gathered[name] if name in gathered else gathered[name.replace(".weight", ".default.weight")]
        assert tensor.shape == full.shape and torch.equal(tensor, full.to(tensor.dtype)), name
    assert all(t.abs().sum() > 0 for n, t in saved.items() if "lora_B" in n)  # trained (lora_B starts at zero)
