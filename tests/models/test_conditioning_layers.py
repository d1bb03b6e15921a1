"""conditioning_layer_counts names exactly the layers a gradient from the conditioning reaches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from textboost_ext.models.conditioning import conditioning_layer_counts, encode_prompt_conditioning, tokenize
from textboost_ext.models.load import load_base_model
from textboost_ext.network import TextEncoderLoRA


@pytest.mark.parametrize(("family", "clip_skip"), [("sd1", None), ("sd1", 2), ("sd2", None), ("sd2", 3), ("sdxl", None)])
def test_counts_are_the_layers_the_conditioning_reaches(tiny_model_dir: Callable[[str], Path], family: str,
                                                        clip_skip: int | None) -> None:
    model = load_base_model(str(tiny_model_dir(family)))  # fresh: the LoRA is injected into it
    network = TextEncoderLoRA(model.text_encoders)  # every layer adapted
    with torch.no_grad():
        for layer in network.trainable_parameters()[1::2]:
            layer.normal_()  # lora_up off zero, so that lora_down gets gradients too
    conditioning = encode_prompt_conditioning(model, tokenize(model, ["a photo of a dog"]), clip_skip)
    sum(c.float().pow(2).sum() for c in conditioning).backward()
    reached: dict[str, set[int]] = {}
    for name, layer in network.named_lora_layers():
        prefix, index = name.split("_text_model_encoder_layers_")[0], int(name.split("_layers_")[1].split("_")[0])
        grad = layer.lora_A["default"].weight.grad
        if grad is not None and bool(grad.abs().sum()):
            reached.setdefault(prefix, set()).add(index)
    counts = conditioning_layer_counts(model.family, model.text_encoders, clip_skip)
    assert [sorted(reached.get(p, set())) for p in network.prefixes] == [list(range(n)) for n in counts]
    total = [te.config.num_hidden_layers for te in model.text_encoders]
    if family == "sdxl":
        assert counts == [total[0] - 1, total[1]]  # encoder 1 is read at its penultimate layer only
    elif clip_skip:
        assert counts == [total[0] - clip_skip + 1]


def test_counts_refuse_an_impossible_clip_skip(folder_model) -> None:
    model = folder_model("sd1")
    with pytest.raises(ValueError, match="clip_skip must be between 1 and"):
        conditioning_layer_counts("sd1", model.text_encoders, 9)
