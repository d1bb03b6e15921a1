"""Fakes of sd-scripts' objects for the unit tests of the kohya adapter (no sd-scripts needed).

``FakeNetworkTrainer`` stands where ``train_network.NetworkTrainer`` stands in the real class: the
mixin's hooks call ``super()`` into it, and it behaves like sd-scripts where the mixin depends on it
(the timestep draw goes through ``train_util.get_timesteps``; ``save_weights`` writes every
registered tensor). The tokenizer is the real CLIP tokenizer and the encoder a tiny real CLIP.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from textboost_ext.kohya.args import add_textboost_arguments
from textboost_ext.kohya.mixin import TextBoostTrainerMixin
from textboost_ext.network import TextEncoderLoRA


class FakeTokenizeStrategy:
    """sd-scripts' SdTokenizeStrategy.tokenize: one [B, 1, 77] tensor per text encoder."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def tokenize(self, text: str | list[str]) -> list[torch.Tensor]:
        text = [text] if isinstance(text, str) else text
        ids = self.tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        return [ids.unsqueeze(1)]


class FakeTextEncodingStrategy:
    def encode_tokens(self, strategy: Any, models: list[Any], tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        return [models[0](tokens[0].reshape(-1, 77))[0]]


class FakeLoRANetwork(nn.Module):
    """What the adapter uses of sd-scripts' LoRANetwork; ``save_weights`` saves every registered tensor."""

    def __init__(self, text_encoders: list[nn.Module], alpha: float = 4.0) -> None:
        super().__init__()
        self.lora = TextEncoderLoRA(text_encoders, rank=4, alpha=alpha)
        self.text_encoder_loras = [SimpleNamespace(lora_name=name) for name in self.lora.module_names()]
        self.multiplier = 1.0

    def set_multiplier(self, multiplier: float) -> None:
        self.multiplier = multiplier
        self.lora.set_multiplier(multiplier)

    def prepare_optimizer_params(self, text_encoder_lr: float | None, unet_lr: float | None, default_lr: float) -> Any:
        self.requires_grad_(True)
        return [{"params": self.lora.trainable_parameters(), "lr": text_encoder_lr or default_lr}], ["textencoder"]

    def get_trainable_params(self) -> Any:
        return self.parameters()

    def save_weights(self, file: str, dtype: torch.dtype | None, metadata: dict[str, str] | None) -> None:
        from safetensors.torch import save_file

        # like sd-scripts: EVERY tensor in the save dtype, alpha included
        state = {k: v.to(dtype) if dtype else v for k, v in self.lora.kohya_state_dict(torch.float32).items()}
        state.update({k: v.detach().clone() for k, v in self.state_dict().items() if not k.startswith("lora.")})
        save_file(state, file, metadata)


class FakeNetworkTrainer:
    """The part of sd-scripts' NetworkTrainer the mixin builds on."""

    def __init__(self) -> None:
        self.is_sdxl = False
        self.calls: list[Any] = []
        self.tokenize_strategy: FakeTokenizeStrategy | None = None
        self.base_loss = torch.tensor(1.0, requires_grad=True)
        self.train_util = SimpleNamespace(get_timesteps=self.uniform_timesteps)
        self.sample_prompt_texts: list[str] = []

    @staticmethod
    def uniform_timesteps(low: int, high: int, batch_size: int, device: Any) -> torch.Tensor:
        return torch.randint(low, max(high, low + 1), (batch_size,))

    def assert_extra_args(self, args: Any, train_group: Any, val_group: Any) -> None:
        self.calls.append("assert_extra_args")

    def post_process_network(self, *args: Any) -> None:
        self.calls.append("post_process_network")

    def get_tokenizers(self, strategy: FakeTokenizeStrategy) -> list[Any]:
        return [strategy.tokenizer]

    def get_models_for_text_encoding(self, args: Any, accelerator: Any, text_encoders: list[Any]) -> list[Any]:
        return text_encoders

    def get_noise_scheduler(self, args: Any, device: Any) -> Any:
        from diffusers import DDPMScheduler

        return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)

    def update_metadata(self, metadata: dict[str, Any], args: Any) -> None:
        metadata["ss_host"] = "fake"

    def on_step_start(self, *args: Any, **kwargs: Any) -> None:
        pass

    def get_noise_pred_and_target(self, args: Any, accelerator: Any, noise_scheduler: Any, latents: torch.Tensor, batch: Any,
                                  conds: Any, unet: Any, network: Any, weight_dtype: Any, train_unet: bool,
                                  is_train: bool = True) -> Any:
        # like train_util.get_noise_noisy_latents_and_timesteps: the module global, looked up at call time
        low = 0 if args.min_timestep is None else args.min_timestep
        high = 1000 if args.max_timestep is None else args.max_timestep
        timesteps = self.train_util.get_timesteps(low, high, latents.shape[0], latents.device)
        if getattr(self, "fail_after_draw", False):
            raise RuntimeError("unet failed")
        return latents, latents, timesteps, None

    def post_process_loss(self, loss: torch.Tensor, *args: Any) -> torch.Tensor:
        return loss

    def process_batch(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.base_loss * 1.0

    def all_reduce_network(self, accelerator: Any, network: Any) -> None:
        self.calls.append("all_reduce_network")

    def sample_images(self, accelerator: Any, args: Any, *rest: Any) -> None:
        if args.sample_prompts:
            self.sample_prompt_texts.append(Path(args.sample_prompts).read_text(encoding="utf-8"))

    def generate_step_logs(self, args: Any, current_loss: float, *rest: Any, **kwargs: Any) -> dict[str, Any]:
        return {"loss/current": current_loss}


class Trainer(TextBoostTrainerMixin, FakeNetworkTrainer):
    def current_tokenize_strategy(self) -> FakeTokenizeStrategy:
        assert self.tokenize_strategy is not None
        return self.tokenize_strategy

    def current_text_encoding_strategy(self) -> FakeTextEncodingStrategy:
        return FakeTextEncodingStrategy()

    def sd_train_util(self) -> Any:
        return self.train_util


def sd_scripts_like_parser() -> argparse.ArgumentParser:
    """The sd-scripts options the adapter reads, with sd-scripts' defaults, plus the TextBoost options."""
    parser = argparse.ArgumentParser()
    for flag in ("network_train_unet_only", "network_train_text_encoder_only", "cache_latents", "cache_latents_to_disk",
                 "cache_text_encoder_outputs", "debiased_estimation_loss", "use_8bit_adam", "use_lion_optimizer",
                 "v2", "v_parameterization", "full_fp16", "full_bf16"):
        parser.add_argument(f"--{flag}", action="store_true")
    for name, default, kind in (("network_module", None, str), ("optimizer_type", "", str), ("min_snr_gamma", None, float),
                                ("save_model_as", "safetensors", str), ("max_token_length", None, int),
                                ("min_timestep", None, int), ("max_timestep", None, int), ("resolution", None, str),
                                ("output_name", None, str), ("clip_skip", None, int), ("seed", 0, int),
                                ("mixed_precision", "no", str), ("pretrained_model_name_or_path", "tiny", str),
                                ("sample_prompts", None, str), ("config_file", None, str), ("output_dir", None, str)):
        parser.add_argument(f"--{name}", type=kind, default=default)
    return add_textboost_arguments(parser)


REQUIRED = ["--placeholder_token", "tbdog", "--initializer", "corgi dog", "--class_noun", "dog", "--output_dir", "out"]


def fake_accelerator(sync_gradients: bool = True) -> SimpleNamespace:
    return SimpleNamespace(device=torch.device("cpu"), process_index=0, is_main_process=True, sync_gradients=sync_gradients,
                           unwrap_model=lambda model: model, autocast=contextlib.nullcontext)


def fake_dataset_group(**subset: Any) -> SimpleNamespace:
    flags = {"flip_aug": False, "color_aug": False, **subset}
    return SimpleNamespace(datasets=[SimpleNamespace(width=64, height=64, subsets=[SimpleNamespace(**flags)])])


@pytest.fixture
def tiny() -> Any:
    """A fresh tiny SD 1.x pipeline: tokens added to its tokenizer do not leak into other tests."""
    from textboost_ext.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline("sd1")


@pytest.fixture
def trained_setup(tiny: Any, tmp_path: Path) -> Callable[..., SimpleNamespace]:
    """``trained_setup(*extra_cli)``: a Trainer after assert_extra_args + post_process_network on the tiny model."""

    def make(*extra: str, accelerator: SimpleNamespace | None = None, dataset_group: Any = None) -> SimpleNamespace:
        args = sd_scripts_like_parser().parse_args([*REQUIRED, "--resolution", "64", "--output_name", "tb", *extra])
        trainer = Trainer()
        trainer.tokenize_strategy = FakeTokenizeStrategy(tiny.tokenizer)
        trainer.assert_extra_args(args, dataset_group or fake_dataset_group(), None)
        network = FakeLoRANetwork([tiny.text_encoder])
        accelerator = accelerator or fake_accelerator()
        trainer.post_process_network(args, accelerator, network, [tiny.text_encoder], tiny.unet)
        return SimpleNamespace(trainer=trainer, args=args, network=network, accelerator=accelerator, tiny=tiny, out=tmp_path)

    return make


@pytest.fixture
def fakes() -> SimpleNamespace:
    """The fakes and helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(Trainer=Trainer, parser=sd_scripts_like_parser, accelerator=fake_accelerator,
                           dataset_group=fake_dataset_group, TokenizeStrategy=FakeTokenizeStrategy,
                           LoRANetwork=FakeLoRANetwork, required=list(REQUIRED))
