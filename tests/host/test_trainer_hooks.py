"""The hook contract: call order, and that what an extension returns is really used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from textboost_ext.config import TrainConfig
from textboost_ext.hooks import HostContext, StepBatch, TrainerExtension
from textboost_ext.host import train
from textboost_ext.host.trainer import HostTrainer

STEP_HOOKS = ["on_step_start", "sample_timesteps", "post_process_loss", "process_batch", "on_after_backward", "on_step_end", "step_logs"]


class Recording(TrainerExtension):
    """Records every hook call; pins timesteps, adds a known loss term, rewrites captions."""

    name = "recording"

    def __init__(self, timestep: int = 321, extra_loss: float = 0.25) -> None:
        self.calls: list[str] = []
        self.timestep, self.extra_loss = timestep, extra_loss
        self.encoded_in_process_batch: list[torch.Tensor] = []

    def assert_extra_args(self, config: Any) -> None:
        self.calls.append("assert_extra_args")

    def post_process_network(self, ctx: HostContext) -> None:
        self.calls.append("post_process_network")

    def prepare_optimizer_params(self, ctx: HostContext, lora_params: list, learning_rate: float, weight_decay: float) -> list[dict]:
        self.calls.append("prepare_optimizer_params")
        self.weight_decay = weight_decay
        return [{"name": "lora_te", "params": lora_params, "lr": learning_rate, "weight_decay": weight_decay}]

    def on_step_start(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> None:
        self.calls.append("on_step_start")
        batch.captions = [f"{c} rewritten{i}" for i, c in enumerate(batch.captions)]

    def sample_timesteps(self, ctx: HostContext, batch_size: int, min_timestep: int, max_timestep: int, generator: torch.Generator) -> torch.Tensor:
        self.calls.append("sample_timesteps")
        return torch.full((batch_size,), self.timestep, dtype=torch.long)

    def post_process_loss(self, ctx: HostContext, loss: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        self.calls.append("post_process_loss")
        assert timesteps.tolist() == [self.timestep] * len(loss)
        return loss

    def process_batch(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        self.calls.append("process_batch")
        hidden = ctx.encode_prompts(["a plain prompt"])[0]
        # a real term with a gradient path, plus a known constant so the logged value can be checked
        return {"extra": hidden.mean() * 0.0 + self.extra_loss}

    def on_after_backward(self, ctx: HostContext) -> None:
        self.calls.append("on_after_backward")
        assert any(p.grad is not None for p in ctx.network.trainable_parameters())

    def on_step_end(self, ctx: HostContext, step: int) -> None:
        self.calls.append("on_step_end")

    def step_logs(self, ctx: HostContext) -> dict[str, float]:
        self.calls.append("step_logs")
        return {"recording/custom": 42.0}

    def update_metadata(self, ctx: HostContext, metadata: dict[str, str]) -> None:
        self.calls.append("update_metadata")
        metadata["ss_textboost_recorded"] = "yes"

    def on_save(self, ctx: HostContext, lora_path: Path, save_dtype: torch.dtype) -> list[Path]:
        self.calls.append("on_save")
        side = lora_path.with_name(f"{lora_path.stem}.extra.txt")
        side.write_text(str(save_dtype))
        return [side]

    def trigger_phrase(self) -> str | None:
        return "sks dog"


def test_hooks_are_called_in_the_documented_order(make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    import textboost_ext.models.conditioning as conditioning

    tokenized: list[list[str]] = []
    real_tokenize = conditioning.tokenize
    monkeypatch.setattr(conditioning, "tokenize", lambda model, captions: tokenized.append(list(captions)) or real_tokenize(model, captions))

    ext = Recording()
    result = train(make_config(max_train_steps=2, optimizer_args=["weight_decay=0.03"]), ext)

    assert ext.calls == ["assert_extra_args", "post_process_network", "prepare_optimizer_params", *STEP_HOOKS, *STEP_HOOKS,
                         "update_metadata", "on_save"]
    assert ext.weight_decay == 0.03  # the default handed to the hook comes from optimizer_args
    # captions are tokenised AFTER on_step_start rewrote them
    assert tokenized[0] == ["sks dog rewritten0", "sks dog rewritten1"]
    assert tokenized[1] == ["a plain prompt"]  # then the extension's own encode
    for logs in result.logs:
        assert logs["timestep/mean"] == 321.0
        assert logs["loss/extra"] == pytest.approx(0.25)
        assert logs["loss/total"] == pytest.approx(logs["loss/diffusion"] + 0.25)
        assert logs["recording/custom"] == 42.0 and "lr/lora_te" in logs
    from safetensors import safe_open

    with safe_open(str(result.lora_path), "pt") as f:
        meta = f.metadata()
    assert meta["ss_textboost_recorded"] == "yes" and meta["modelspec.trigger_phrase"] == "sks dog"
    assert (result.adapter_dir / "adapter.extra.txt").read_text() == "torch.float32"
    import json

    assert json.loads((result.adapter_dir / "adapter.json").read_text())["activation text"] == "sks dog"


def test_gradient_accumulation_calls_step_hooks_per_micro_batch(make_config: Callable[..., TrainConfig]) -> None:
    ext = Recording()
    trainer = HostTrainer(make_config(max_train_steps=1, gradient_accumulation_steps=2), ext)
    trainer.train()
    per_step = ext.calls[3 : ext.calls.index("on_after_backward")]
    assert per_step == ["on_step_start", "sample_timesteps", "post_process_loss", "process_batch"] * 2
    assert ext.calls.count("on_after_backward") == 1 and ext.calls.count("on_step_end") == 1


class OutOfRange(TrainerExtension):
    def sample_timesteps(self, ctx: HostContext, batch_size: int, min_timestep: int, max_timestep: int, generator: torch.Generator) -> torch.Tensor:
        return torch.full((batch_size,), max_timestep, dtype=torch.long)


def test_extension_timesteps_outside_the_range_are_an_error(make_config: Callable[..., TrainConfig]) -> None:
    with pytest.raises(ValueError, match=r"sample_timesteps returned .* outside \[0, 1000\)"):
        train(make_config(max_train_steps=1), OutOfRange())


class VelocitySpy(TrainerExtension):
    def post_process_network(self, ctx: HostContext) -> None:
        scheduler = ctx.model.noise_scheduler
        real = scheduler.get_velocity
        self.velocity_calls = 0

        def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
            self.velocity_calls += 1
            return real(*args, **kwargs)

        scheduler.get_velocity = spy


@pytest.mark.parametrize(("family", "expected_calls"), [("sd2v", 2), ("sd1", 0)])
def test_v_prediction_target_is_used_for_v_models(make_config: Callable[..., TrainConfig], family: str, expected_calls: int) -> None:
    ext = VelocitySpy()
    train(make_config(family, max_train_steps=2), ext)
    assert ext.velocity_calls == expected_calls
