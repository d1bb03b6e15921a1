"""The training loop the oracle, the VAE and its decoder share: AdamW under a one-cycle schedule."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def fit_one_cycle(params: list[torch.nn.Parameter], steps: int, learning_rate: float,
                  loss_of_step: Callable[[], torch.Tensor], label: str, log: Callable[[str], None],
                  weight_decay: float = 0.0, pct_start: float = 0.05) -> None:
    """Minimise ``loss_of_step()`` (which draws its own fresh batch) over ``params`` for ``steps`` steps,
    logging every 100. The caller puts its model in train mode and on its device first."""
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=steps, pct_start=pct_start)
    start = time.time()
    for step in range(1, steps + 1):
        loss = loss_of_step()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            log(f"{label} step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)")
