"""CPU training in several single-threaded processes (DDP over gloo), launched by `train` itself.

    prompt-recovery train --config configs/smollm2-135m-cpu.yaml                  # processes: 0 = one per core
    prompt-recovery train --config configs/smollm2-135m-cpu.yaml --processes 1    # one process, all threads

On a small model PyTorch's threads scale poorly inside one process (about 1.6x for 2 cores), while
N processes x 1 thread each train on their own examples and only all-reduce the LoRA gradients
once per optimiser update: 1.26x faster than one 2-thread process on a 2-core Xeon, the same
loss (`benchmarks/train_speed.py`, docs/training_speed.md). `gradient_accumulation_steps` counts micro-batches per optimiser
update across all the processes, so a preset trains the same updates (per_device_train_batch_size
x gradient_accumulation_steps examples each) whatever the number of processes; each process
accumulates gradient_accumulation_steps / N of them.

`run` re-launches the command as `python -m torch.distributed.run --standalone --nproc_per_node N
-m prompt_recovery.cli train --config <the resolved config>` with OMP_NUM_THREADS=1; processes
already started by torchrun/accelerate (WORLD_SIZE set) and GPU runs train in-process as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from prompt_recovery import hardware
from prompt_recovery.config import to_dict
from prompt_recovery.errors import Interrupted, UserError
from prompt_recovery.schema import atomic_write_text

LAUNCHED_CONFIG = "launch_config.yaml"  # written into output_dir for the worker processes
STOP_FILE = ".stop-requested"  # created in output_dir when the launching command gets SIGINT / SIGTERM
STOP_FILE_ENV = "PROMPT_RECOVERY_STOP_FILE"  # tells the workers where to look for it


def cpu_processes(requested: int, accumulation: int, cores: int | None = None) -> int:
    """How many training processes `requested` means here: 0 = the most cores (of `cores`) that divide
    the accumulation steps evenly; N = N, which must divide them."""
    if requested < 0:
        raise UserError(f"train: processes must be 0 (one per core) or a positive count, not {requested}")
    if requested == 0:
        cores = hardware.usable_cores() if cores is None else cores
        return max(n for n in range(1, max(1, cores) + 1) if accumulation % n == 0)
    if accumulation % requested:
        raise UserError(f"train: gradient_accumulation_steps ({accumulation}) must be a multiple of processes "
                        f"({requested}): each process accumulates an equal share of every update")
    return requested


def accumulation_per_process(cfg) -> int:
    """Micro-batches each process accumulates: the config's count split over the processes that `train`
    launched itself (WORLD_SIZE of them, processes != 1); under an external launcher the count is per process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.processes == 1 or world <= 1:
        return cfg.gradient_accumulation_steps
    return cfg.gradient_accumulation_steps // cpu_processes(world, cfg.gradient_accumulation_steps)


def should_launch(cfg, device: str) -> int:
    """The number of processes to launch for `cfg` (0: train in this process)."""
    if device != "cpu" or "WORLD_SIZE" in os.environ:
        return 0
    n = cpu_processes(cfg.processes, cfg.gradient_accumulation_steps)
    return n if n > 1 else 0


def torchrun(n: int, args: list[str], stop_file: Path | None = None, **kwargs) -> tuple[int, int]:
    """`python -m torch.distributed.run --standalone --nproc_per_node n ARGS` with one thread per process; its exit
    status and the first SIGINT / SIGTERM this process got while it ran (0: none). The launcher runs in a session
    of its own, so Ctrl-C reaches this process only: the first signal creates `stop_file` (the workers' cue to save
    a checkpoint and exit cleanly, `train.stop_on_signal`; without one it is passed on), a second one is passed on
    to torchrun (which signals the workers), a third kills it. `kwargs` go to subprocess.Popen."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if stop_file is not None:
        env[STOP_FILE_ENV] = str(stop_file)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *args]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, **kwargs)
    got = []

    def forward(signum, frame):
        got.append(signum)
        if len(got) == 1 and stop_file is not None:
            Path(stop_file).touch()
            print(f"\ntrain: {signal.Signals(signum).name}: the processes save a checkpoint after this update, then "
                  "stop (a second signal stops them at once)", file=sys.stderr, flush=True)
        else:
            proc.send_signal(signal.SIGKILL if len(got) > 2 else signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return rc, (got[0] if got else 0)


def launch(cfg, n: int) -> int:
    """Run `cfg` as `n` single-threaded torchrun workers."""
    import yaml

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / LAUNCHED_CONFIG
    atomic_write_text(config_path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    print(f"train: {n} processes x 1 thread (DDP over gloo; --processes 1 trains in one process)", flush=True)
    stop_file = out / STOP_FILE
    stop_file.unlink(missing_ok=True)  # left by a run killed before it could clean up
    try:
        rc, signum = torchrun(n, ["-m", "prompt_recovery.cli", "train", "--config", str(config_path)], stop_file)
    finally:
        stop_file.unlink(missing_ok=True)
    if signum:
        steps = {p: p.name.rpartition("-")[2] for p in (out / "checkpoints").glob("checkpoint-*")}
        saved = sorted((p for p, s in steps.items() if s.isdigit()), key=lambda p: int(steps[p]))
        where = f"checkpoint {saved[-1]}" if saved else f"no checkpoint in {out / 'checkpoints'} yet"
        status = "" if rc == 0 else f" (the processes exited with status {rc})"
        raise Interrupted(f"train: stopped by {signal.Signals(signum).name}{status}; {where}: the same command "
                          f"resumes from it", signum)
    if rc != 0:
        raise UserError(f"train: a training process failed (exit status {rc}; its message is above). "
                        f"The same command resumes from the last checkpoint.")
    config_path.unlink(missing_ok=True)  # train_config.yaml, written by the workers, holds the same values
    return 0
