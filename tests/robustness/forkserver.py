"""Start many short training runs cheaply: import torch/diffusers/transformers once, then fork one child
per request (JSON lines on stdin), each running the entry script's ``main(argv)`` in a fresh process.

A child is a real process of its own (SIGKILL, file-size limits and locks behave as for any run); only
the import time (seconds per run on 2 cores) is shared. The server runs no torch operation before
forking. Children are reaped automatically (SIGCHLD ignored), so a killed run's pid is gone at once, as
when a shell runs it. Each child writes its exit code to ``rc_file`` when ``main`` returns.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# what a training run imports anyway (the expensive part of a tiny run)
import accelerate  # noqa: E402,F401
import diffusers  # noqa: E402,F401
import safetensors.torch  # noqa: E402,F401
import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # noqa: E402,F401
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402,F401

import textboost_ext.config  # noqa: E402,F401
import textboost_ext.extension  # noqa: E402,F401
import textboost_ext.host.trainer  # noqa: E402,F401
import textboost_ext.models.load  # noqa: E402,F401
import train_network_textboost as entry  # noqa: E402


def child(request: dict) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a run may start subprocesses and wait for them
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    if request.get("file_size_limit"):  # a tiny "disk": writes past it fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_size_limit"],) * 2)
    torch.set_num_threads(1)
    try:
        code = int(entry.main(request["argv"]) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    Path(request["rc_file"]).write_text(str(code))
    return code


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(child(request))
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    main()
