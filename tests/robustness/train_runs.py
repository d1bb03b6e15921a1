"""Training runs in subprocesses for the fault-injection tests: a tiny config, start, pause, kill, check.

Each run is the real entry script's ``main`` on the built-in tiny SD 1.x model (64 px, batch 1, no
samples) in a process of its own, forked from ``forkserver.py`` so the imports are paid once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "examples" / "demo_subject"


def write_config(folder: Path, name: str = "mug", token: str = "tbmug", **extra: object) -> Path:
    keys: dict[str, object] = {
        "pretrained_model_name_or_path": "builtin:tiny-sd1", "train_data_dir": str(DEMO_DATA), "resolution": 64,
        "train_batch_size": 1, "max_train_steps": 2, "learning_rate": 1e-3, "optimizer_type": "AdamW",
        "mixed_precision": "no", "seed": 7, "output_name": name, "save_state": True, **extra,
    }
    lines = [f"{k} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false") for k, v in keys.items()]
    lines += ["[textboost]", f'placeholder_token = "{token}"', 'initializer = "coffee mug"', 'class_noun = "mug"']
    path = folder / f"{name}-{token}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def env(pause: str | None = None, marker: Path | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("SD_SCRIPTS_DIR", "TEXTBOOST_PAUSE_AT", "TEXTBOOST_DEBUG")}
    out.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if pause:
        out.update(TEXTBOOST_PAUSE_AT=pause, TEXTBOOST_PAUSE_FILE=str(marker))
    return out


@dataclass
class Run:
    """One training run (a forked process); ``rc_file`` appears when it returns."""

    pid: int
    folder: Path

    def returncode(self) -> int | None:
        rc = self.folder / "rc"
        if rc.exists() and rc.read_text():
            return int(rc.read_text())
        return None if _alive(self.pid) else -9

    def output(self) -> tuple[str, str]:
        return ((self.folder / "stdout").read_text(errors="replace"), (self.folder / "stderr").read_text(errors="replace"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ForkServer:
    """``forkserver.py`` in a subprocess: pays the imports once; ``start`` forks a run from it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("forkserver.py"))], cwd=ROOT, env=env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def start(self, config: Path, store: Path, *args: str, pause: str | None = None, marker: Path | None = None,
              file_size_limit: int | None = None) -> Run:
        self.count += 1
        folder = self.workdir / f"run{self.count:03d}"
        folder.mkdir(parents=True)
        request = {"argv": ["--config_file", str(config), "--output_dir", str(store), *args], "cwd": str(ROOT),
                   "env": env(pause, marker), "stdout": str(folder / "stdout"), "stderr": str(folder / "stderr"),
                   "rc_file": str(folder / "rc"), "file_size_limit": file_size_limit}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return Run(json.loads(self.proc.stdout.readline())["pid"], folder)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.kill()  # nothing to finish: every run it forked has ended or was killed
        self.proc.wait(timeout=60)


def finish(run: Run, timeout: float = 300) -> tuple[int, str, str]:
    deadline = time.monotonic() + timeout
    while (code := run.returncode()) is None:
        if time.monotonic() > deadline:
            os.kill(run.pid, signal.SIGKILL)
            raise AssertionError(f"run {run.folder} did not finish in {timeout} s")
        time.sleep(0.1)
    return (code, *run.output())


def wait_and_kill(run: Run, marker: Path, timeout: float = 300) -> None:
    """Wait until the run is paused at its point (the marker file appears), then SIGKILL it."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        code = run.returncode()
        if code is not None:
            raise AssertionError(f"the run ended (exit {code}) before reaching its pause point:\n{run.output()[1][-3000:]}")
        if time.monotonic() > deadline:
            os.kill(run.pid, signal.SIGKILL)
            raise AssertionError("the run did not reach its pause point in time")
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    while _alive(run.pid):
        time.sleep(0.02)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden_paths(folder: Path) -> list[str]:
    """Hidden files/folders anywhere under ``folder`` (temp files and staging areas are hidden)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*"))
