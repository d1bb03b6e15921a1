"""Two CPU processes under ``accelerate launch``: gradients are averaged, only the main process writes."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textboost_ext.config import TrainConfig

SCRIPT = Path(__file__).with_name("ddp_train_script.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_run(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a sks dog --s 2\n", encoding="utf-8")
    cfg = make_config(max_train_steps=2, train_batch_size=1, sample_prompts=str(prompts), save_state=True)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(dataclasses.asdict(cfg)), encoding="utf-8")
    dump = tmp_path / "dump"
    dump.mkdir()
    # accelerate 1.15's `launch --cpu --num_processes 2` goes through its simple launcher, which starts
    # ONE process unless MPI's mpirun is installed (it is not here). Its torchrun path (--multi_gpu)
    # with ACCELERATE_USE_CPU=1 starts two real processes in a gloo CPU process group.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               str(SCRIPT), str(config_file), str(dump)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-4000:]

    infos = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i == {"steps": 2, "world": 2, "captions_seen": 2} for i in infos)
    rank0, rank1 = load_file(str(dump / "rank0.safetensors")), load_file(str(dump / "rank1.safetensors"))
    # each process saw a different image position and different noise: only averaged gradients keep them equal
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert any(bool(v.abs().sum() > 0) for k, v in rank0.items() if k.endswith("lora_up.weight"))

    adapter = tmp_path / "out" / "adapter"
    written = load_file(str(adapter / "adapter.safetensors"))
    assert all(torch.equal(written[k], rank0[k]) for k in written)
    index = json.loads((adapter / "samples" / "index.json").read_text())
    assert [e["file"] for e in index] == ["adapter_000002_00.png"]  # sampled once, by the main process
    state = json.loads((adapter / "state" / "step-000002" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2
