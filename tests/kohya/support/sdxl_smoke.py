"""SDXL smoke test of the sd-scripts adapter, short of a UNet step. Run with the sd-scripts Python; prints JSON.

    sdxl_smoke.py SD_SCRIPTS_DIR WORK_DIR

sd-scripts' SDXL UNet class hard-codes its blocks, so a tiny SDXL model cannot train in its loop. This
runs everything around the UNet with sd-scripts' real SDXL pieces: ``TextBoostSdxlNetworkTrainer`` (over
``SdxlNetworkTrainer``) and its parser, ``SdxlTokenizeStrategy``/``SdxlTextEncodingStrategy``, a
``networks.lora`` network over two tiny CLIP encoders (TE1 has 12 layers because sd-scripts reads its
hidden state 11), then the hooks: assert_extra_args, post_process_network, on_step_start, the KP term
of process_batch through sd-scripts' SDXL encoding, and a save.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace


def main(sd_scripts_dir: str, work: Path) -> dict:
    import contextlib

    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from textboost_ext.hooks import StepBatch
    from textboost_ext.kohya.args import TextBoostArgumentError
    from textboost_ext.kohya.trainer import build_parser, import_sd_scripts, trainer_class
    from textboost_ext.models.tokenizer import build_clip_tokenizer
    from textboost_ext.registry import create_extension

    sdxl_module = import_sd_scripts(Path(sd_scripts_dir), sdxl=True)
    import networks.lora as sd_lora
    from library import strategy_base, strategy_sdxl

    result: dict = {}
    cls = trainer_class(sdxl=True)
    result["trainer"] = cls.__name__
    result["is_sdxl_trainer"] = issubclass(cls, sdxl_module.SdxlNetworkTrainer)
    parser = build_parser(sdxl=True)
    common = ["--sdxl", "--placeholder_token", "tbdog", "--initializer", "corgi dog", "--class_noun", "dog", "--seed", "0",
              "--pretrained_model_name_or_path", "unused", "--output_name", "tbx", "--resolution", "64",
              "--output_dir", str(work / "out")]
    group = SimpleNamespace(datasets=[], verify_bucket_reso_steps=lambda steps: None)
    try:
        refused = parser.parse_args([*common, "--cache_text_encoder_outputs"])
        cls(create_extension("textboost")).assert_extra_args(refused, group, None)
        result["cache_te_outputs_refused"] = False
    except TextBoostArgumentError as err:
        result["cache_te_outputs_refused"] = "cache_text_encoder_outputs" in str(err)

    args = parser.parse_args(common)
    trainer = cls(create_extension("textboost"))
    trainer.assert_extra_args(args, group, None)
    result["optimizer_type"] = args.optimizer_type

    tokenizers = work / "tokenizers"
    build_clip_tokenizer(tokenizers / "openai_clip-vit-large-patch14")
    build_clip_tokenizer(tokenizers / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k", pad_token="!")
    strategy = strategy_sdxl.SdxlTokenizeStrategy(None, str(tokenizers))
    strategy_base.TokenizeStrategy.set_strategy(strategy)
    strategy_base.TextEncodingStrategy.set_strategy(strategy_sdxl.SdxlTextEncodingStrategy())
    torch.manual_seed(0)
    clip = dict(intermediate_size=37, num_attention_heads=4, vocab_size=49408, bos_token_id=49406, eos_token_id=49407,
                max_position_embeddings=77)
    te1 = CLIPTextModel(CLIPTextConfig(hidden_size=32, num_hidden_layers=12, pad_token_id=49407, **clip)).eval()
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=48, num_hidden_layers=2, pad_token_id=0, projection_dim=48,
                                                     hidden_act="gelu", **clip)).eval()
    network = sd_lora.create_network(1.0, 4, 4.0, None, [te1, te2], torch.nn.Module())
    accelerator = SimpleNamespace(device=torch.device("cpu"), process_index=0, is_main_process=True, sync_gradients=True,
                                  unwrap_model=lambda m: m, autocast=contextlib.nullcontext)
    trainer.post_process_network(args, accelerator, network, [te1, te2], None)
    network.apply_to([te1, te2], None, True, False)
    result["tokenizer_lengths"] = [len(strategy.tokenizer1), len(strategy.tokenizer2)]
    tokenizers_used = (strategy.tokenizer1, strategy.tokenizer2)
    result["placeholder_ids"] = [t.convert_tokens_to_ids(["tbdog", "tbdog_1"]) for t in tokenizers_used]
    params, descriptions = network.prepare_optimizer_params(None, None, 1e-4)
    result["descriptions"] = descriptions
    result["embedding_group_sizes"] = [len(list(params[-1]["params"])), params[-1]["weight_decay"]]

    batch = {"images": torch.rand(2, 3, 64, 64) * 2 - 1, "captions": ["a photo of sks dog"] * 2,
             "input_ids_list": list(strategy.tokenize(["a photo of sks dog"] * 2))}
    trainer.on_step_start(args, accelerator, network, [te1, te2], None, batch, torch.float32, is_train=True)
    result["captions"] = batch["captions"]
    result["input_ids_shapes"] = [list(t.shape) for t in batch["input_ids_list"]]
    result["placeholder_in_both_id_lists"] = [bool((t == 49408).any(dim=-1).all()) for t in batch["input_ids_list"]]
    conditioning = trainer._encode_prompts(batch["captions"])
    result["conditioning_shapes"] = [list(t.shape) for t in conditioning]
    with torch.no_grad():
        for lora in network.text_encoder_loras:
            lora.lora_up.weight.normal_(0, 0.5)  # a LoRA that moved, so the KP term is non-zero
    terms = trainer.extension.process_batch(trainer.ctx, StepBatch(batch["images"], batch["captions"]), 0, trainer.generator)
    result["kp"] = float(terms["kp"].detach())
    result["multiplier_after_kp"] = network.multiplier

    out = work / "out"
    out.mkdir()
    metadata = {"ss_output_name": "tbx", "ss_base_model_version": "sdxl_base_v1-0", "ss_v2": "False", "ss_network_dim": "4",
                "ss_network_alpha": "4.0", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}
    network.save_weights(str(out / "tbx.safetensors"), None, metadata)
    result["lora_file"] = str(out / "tbx.safetensors")
    result["embedding_file"] = str(out / "embeddings" / "tbdog.safetensors")
    result["sidecar"] = json.loads((out / "tbx.json").read_text())
    result["te_dims"] = [[te1.config.num_hidden_layers, 32, 37], [te2.config.num_hidden_layers, 48, 37]]
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
