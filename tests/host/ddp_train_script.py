"""Run by test_multiprocess.py under ``accelerate launch``: train, then dump this rank's LoRA weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from textboost_ext.config import TextBoostConfig, TrainConfig
from textboost_ext.host.trainer import HostTrainer


def main() -> None:
    values = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    values["textboost"] = TextBoostConfig(**values["textboost"])
    dump_dir = Path(sys.argv[2])
    trainer = HostTrainer(TrainConfig(**values))
    result = trainer.train()
    rank = trainer.accelerator.process_index
    save_file(trainer.network.kohya_state_dict(), str(dump_dir / f"rank{rank}.safetensors"))
    (dump_dir / f"rank{rank}.json").write_text(json.dumps({"steps": result.steps, "world": trainer.accelerator.num_processes,
                                                           "captions_seen": len(result.logs)}), encoding="utf-8")


if __name__ == "__main__":
    main()
