"""Where a training step of the built-in host goes: wall time per part, measured by wrapping its pieces.

Used by ``step_benchmark.py`` (benchmark-only: nothing in the package imports it). ``StepParts.install``
wraps, on one set-up ``HostTrainer``, the functions a step calls and charges their wall time to a part:

- ``data``: the next batch (image loading/decoding, caption shuffling),
- ``augmentation``: the extension's ``on_step_start`` (views rendered from the photo, captions),
- ``te_instance_fwd`` / ``te_kp_fwd`` / ``te_kp_frozen_fwd``: text-encoder forwards of the instance
  captions, of the KP prompts (adapted, with grad) and of the KP targets (LoRA off; cache misses only),
- ``vae_encode``, ``unet_fwd``,
- ``te_bwd``: the backward through the text encoder passes (from the gradient reaching a pass's output to
  it reaching that pass's token embeddings); ``unet_bwd``: the rest of the backward (the UNet's, mostly),
- ``optimizer``: ``optimizer.step`` (plus ``zero_grad``),
- ``other``: the rest of the step (noise, timesteps, loss arithmetic, clipping, logs).

On CUDA every boundary synchronises, so the parts add up to the step (and the step is slightly slower).
On CPU the clock is this process's CPU time (``time.process_time``): with one torch thread it is the work
done, and it stays meaningful on a machine shared with other jobs, where wall time swings several-fold.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

PARTS = ("data", "augmentation", "te_instance_fwd", "te_kp_fwd", "te_kp_frozen_fwd", "vae_encode", "unet_fwd",
         "unet_bwd", "te_bwd", "optimizer", "other")


class StepParts:
    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.totals: dict[str, float] = defaultdict(float)  # seconds per part, summed over the recorded steps
        self._te_label = "te_instance_fwd"
        self._pass_id = 0  # text-encoder passes of this step with grad, numbered
        self._te_bwd_marks: dict[int, list[float]] = defaultdict(list)  # pass -> grad-arrival times
        self._step_walls: list[float] = []
        self._patched: list[tuple[Any, str, Any]] = []

    def clock(self) -> float:
        """Seconds on this benchmark's clock (see the module docstring)."""
        return self._now()

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    @contextmanager
    def _timed(self, part: str) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self.totals[part] += self._now() - start

    def _wrap(self, fn: Callable[..., Any], part: str | Callable[[], str]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self._timed(part() if callable(part) else part):
                return fn(*args, **kwargs)
        return wrapped

    def install(self, trainer: Any) -> None:
        """Wrap the pieces of ``trainer`` (after ``setup``) and of the host's diffusion module."""
        from textboost_ext.host import diffusion

        ext, ctx = trainer.ext, trainer.ctx
        trainer._next_batch = self._wrap(trainer._next_batch, "data")
        ext.on_step_start = self._wrap(ext.on_step_start, "augmentation")
        ctx.encode_prompts = self._encode_wrapper(ctx.encode_prompts)
        trainer.encode_prompts = ctx.encode_prompts
        prefix = getattr(ctx, "encode_prompt_prefix", None)
        if prefix is not None:
            ctx.encode_prompt_prefix = self._encode_wrapper(prefix)
        for name, label in (("process_batch", "te_kp_fwd"), ("_original_outputs", "te_kp_frozen_fwd")):
            if hasattr(ext, name):
                setattr(ext, name, self._labelled(getattr(ext, name), label))
        for te in trainer.model.text_encoders:  # the end of each pass's backward: grad at the token embeddings
            te.get_input_embeddings().register_forward_hook(self._embedding_hook)
        self._patch(diffusion, "encode_latents", self._wrap(diffusion.encode_latents, "vae_encode"))
        self._patch(diffusion, "predict", self._wrap(diffusion.predict, "unet_fwd"))
        backward = trainer.accelerator.backward

        def timed_backward(loss: torch.Tensor, **kwargs: Any) -> None:
            start = self._now()
            backward(loss, **kwargs)
            total = self._now() - start
            te = sum(max(marks) - min(marks) for marks in self._te_bwd_marks.values() if len(marks) > 1)
            self.totals["te_bwd"] += te
            self.totals["unet_bwd"] += total - te
            self._te_bwd_marks.clear()

        trainer.accelerator.backward = timed_backward
        trainer.optimizer.step = self._wrap(trainer.optimizer.step, "optimizer")
        trainer.optimizer.zero_grad = self._wrap(trainer.optimizer.zero_grad, "optimizer")

    def _labelled(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            previous, self._te_label = self._te_label, label
            try:
                return fn(*args, **kwargs)
            finally:
                self._te_label = previous
        return wrapped

    def _encode_wrapper(self, encode: Callable[..., list[torch.Tensor]]) -> Callable[..., list[torch.Tensor]]:
        """Time the forward under the current label; mark when the backward reaches its outputs."""
        def wrapped(*args: Any, **kwargs: Any) -> list[torch.Tensor]:
            self._pass_id += 1
            with self._timed(self._te_label):
                outputs = encode(*args, **kwargs)
            if torch.is_grad_enabled():
                for out in outputs:
                    if out.requires_grad:
                        out.register_hook(self._marker(self._pass_id))
            return outputs
        return wrapped

    def _embedding_hook(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        if output.requires_grad:
            output.register_hook(self._marker(self._pass_id))

    def _marker(self, pass_id: int) -> Callable[[torch.Tensor], None]:
        def mark(grad: torch.Tensor) -> None:
            self._te_bwd_marks[pass_id].append(self._now())
        return mark

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._patched.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def uninstall(self) -> None:
        while self._patched:
            owner, name, value = self._patched.pop()
            setattr(owner, name, value)

    def reset(self) -> None:
        """Forget what was measured so far (call after the warm-up steps)."""
        self.totals.clear()
        self._step_walls.clear()

    def record_step(self, step_seconds: float) -> None:
        self._step_walls.append(step_seconds)

    def per_step(self) -> dict[str, float]:
        """Mean seconds per step for each part; ``other`` = the step wall minus the named parts."""
        n = max(1, len(self._step_walls))
        named = {k: self.totals.get(k, 0.0) / n for k in PARTS if k != "other"}
        named["other"] = max(0.0, sum(self._step_walls) / n - sum(named.values()))
        return named
