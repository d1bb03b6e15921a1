"""``textboost-toyworld build``: the shipped base's whole recipe as one command.

The shipped base is not one training run but a chain (README "Rebuilding the base"): a first run (oracle,
VAE, its decoder, then text encoder + UNet for 12,000 steps at 6e-4) and four continuations of 6,000 steps
at 3e-4, each starting from the last one's weights with a fresh warm-up + cosine schedule and reusing the
first run's oracle, VAE and decoder. ``build`` runs that chain into ``<output_dir>/run0 .. runN``. Every
stage of every run skips what is done and the text encoder + UNet checkpoint, so a killed build, started
again with the same command, continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textboost_ext.toyworld.pretrain import DECODER_DIR, copy_into_place, pretrain

# what every continuation takes from the first run instead of training again
SHARED = ("oracle.safetensors", "vae", DECODER_DIR)


@dataclass
class Chain:
    first_steps: int = 12_000
    continuations: int = 4
    continuation_steps: int = 6_000
    continuation_learning_rate: float = 3e-4


def _copy_shared(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        if not (target / name).exists():
            copy_into_place(source / name, target / name)


def build(out: Path, seed: int, chain: Chain | None = None, **pretrain_options: Any) -> Path:
    """Run the chain; returns the last run's folder (what ``ship`` takes). ``pretrain_options`` go to every
    ``pretrain`` call (device, step counts of the first stages, quick checks)."""
    chain = chain or Chain()
    previous = pretrain(out / "run0", seed, t2i_steps=chain.first_steps, **pretrain_options)
    for k in range(1, chain.continuations + 1):
        run = out / f"run{k}"
        _copy_shared(out / "run0", run)
        previous = pretrain(run, seed, stages=("t2i",), t2i_steps=chain.continuation_steps,
                            t2i_recipe={"learning_rate": chain.continuation_learning_rate},
                            init_from=previous / "pipeline", **pretrain_options)
    return previous
