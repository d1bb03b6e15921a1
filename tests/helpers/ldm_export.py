"""Test-only: write a diffusers folder as an A1111/LDM single file (``.safetensors`` or ``.ckpt``).

Written from the LDM key layout (the inverse of what the loader reads), so a tiny model can take
the same path a real A1111 checkpoint takes:
- UNet under ``model.diffusion_model.``: ``input_blocks`` (conv_in, then per level
  ``layers_per_block`` resnet[+attention] blocks and a downsampler), ``middle_block`` (resnet,
  attention, resnet), ``output_blocks`` (``layers_per_block + 1`` per level, the last one carrying
  the upsampler), ``time_embed``, ``label_emb`` (SDXL), ``out``.
- VAE under ``first_stage_model.``: ``encoder.down.N.block.M``, ``mid.block_1/attn_1/block_2``,
  ``decoder.up`` numbered from the lowest resolution up (reverse of diffusers), 1x1-conv attention.
- Text encoders: CLIP ViT-L in HF layout (``text_model.*``), OpenCLIP in its own layout with q/k/v
  stacked in ``in_proj``; SD 2.x files carry the FULL OpenCLIP tower, i.e. one layer more than the
  (penultimate-cut) diffusers encoder: we add a random extra last layer, as the real files have one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

ARCHITECTURE_HINT_KEY = "textboost.architecture"

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET[head]}.{tail}"


def unet_to_ldm(sd: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    per = config.layers_per_block
    up_has_attention = {i: t.startswith("CrossAttn") for i, t in enumerate(config.up_block_types)}
    simple = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
              "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
              "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        parts = key.split(".")
        new = None
        for old, ldm in simple.items():
            if key.startswith(old + "."):
                new = ldm + key[len(old):]
        if new is None and parts[0] == "down_blocks":
            i = int(parts[1])
            if parts[2] == "downsamplers":
                new = f"input_blocks.{1 + i * (per + 1) + per}.0.op." + ".".join(parts[5:])
            else:
                idx = 1 + i * (per + 1) + int(parts[3])
                rest = ".".join(parts[4:])
                new = f"input_blocks.{idx}.0.{_resnet(rest)}" if parts[2] == "resnets" else f"input_blocks.{idx}.1.{rest}"
        elif new is None and parts[0] == "mid_block":
            rest = ".".join(parts[3:])
            if parts[1] == "attentions":
                new = f"middle_block.1.{rest}"
            else:
                new = f"middle_block.{2 * int(parts[2])}.{_resnet(rest)}"
        elif new is None and parts[0] == "up_blocks":
            i = int(parts[1])
            if parts[2] == "upsamplers":
                slot = 2 if up_has_attention[i] else 1
                new = f"output_blocks.{i * (per + 1) + per}.{slot}.conv." + ".".join(parts[5:])
            else:
                idx = i * (per + 1) + int(parts[3])
                rest = ".".join(parts[4:])
                new = f"output_blocks.{idx}.0.{_resnet(rest)}" if parts[2] == "resnets" else f"output_blocks.{idx}.1.{rest}"
        if new is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out[new] = value
    return out


def vae_to_ldm(sd: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        side, _, rest = key.partition(".")
        if side in ("quant_conv", "post_quant_conv"):
            out[key] = value
            continue
        parts = rest.split(".")
        if rest.startswith("conv_norm_out."):
            new = "norm_out." + parts[-1]
        elif rest.startswith(("conv_in.", "conv_out.")):
            new = rest
        elif parts[0] == "mid_block" and parts[1] == "resnets":
            new = f"mid.block_{int(parts[2]) + 1}." + ".".join(parts[3:]).replace("conv_shortcut", "nin_shortcut")
        elif parts[0] == "mid_block":
            inner = ".".join(parts[3:-1])
            new = f"mid.attn_1.{attn[inner]}.{parts[-1]}"
            if value.ndim == 2:  # LDM attention uses 1x1 convolutions
                value = value[:, :, None, None]
        elif parts[0] in ("down_blocks", "up_blocks"):
            i = int(parts[1])
            level, name = (i, "down") if parts[0] == "down_blocks" else (levels - 1 - i, "up")
            if parts[2] == "resnets":
                new = f"{name}.{level}.block.{parts[3]}." + ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            else:
                new = f"{name}.{level}.{'downsample' if name == 'down' else 'upsample'}.conv.{parts[-1]}"
        else:
            raise KeyError(f"no LDM name for VAE key {key}")
        out[f"{side}.{new}"] = value
    return out


def _with_text_model(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v for k, v in sd.items()}


def clip_to_ldm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k: v for k, v in _with_text_model(sd).items() if not k.endswith("position_ids")}
    n = out["text_model.embeddings.position_embedding.weight"].shape[0]
    out["text_model.embeddings.position_ids"] = torch.arange(n)[None]  # real SD 1.x files carry it
    return out


def open_clip_to_ldm(sd: dict[str, torch.Tensor], *, extra_last_layer: bool, seed: int = 1234) -> dict[str, torch.Tensor]:
    sd = _with_text_model(sd)
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    out = {
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": sd["text_model.final_layer_norm.weight"],
        "ln_final.bias": sd["text_model.final_layer_norm.bias"],
        "logit_scale": torch.tensor(4.6052),
    }
    width = out["token_embedding.weight"].shape[1]
    out["text_projection"] = sd["text_projection.weight"].t().contiguous() if "text_projection.weight" in sd else torch.eye(width)
    n_layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers."))
    for i in range(n_layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([sd[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            for hf, ldm in names.items():
                out[dst + f"{ldm}.{kind}"] = sd[src + f"{hf}.{kind}"]
    if extra_last_layer:
        gen = torch.Generator().manual_seed(seed)
        last = f"transformer.resblocks.{n_layers - 1}."
        for key in [k for k in out if k.startswith(last)]:
            new = key.replace(last, f"transformer.resblocks.{n_layers}.")
            out[new] = torch.randn(out[key].shape, generator=gen, dtype=out[key].dtype)
    return out


def architecture_hints(folder: Path) -> dict[str, dict[str, Any]]:
    """What no tensor shape tells (head counts, GroupNorm groups, sizes), from the folder's configs."""
    def cfg(name: str) -> dict[str, Any]:
        return json.loads((folder / name / "config.json").read_text())

    unet, vae = cfg("unet"), cfg("vae")
    hints = {
        "unet": {k: unet[k] for k in ("attention_head_dim", "norm_num_groups", "sample_size", "upcast_attention")},
        "vae": {k: vae[k] for k in ("norm_num_groups", "sample_size", "scaling_factor")},
        "text_encoder": {"num_attention_heads": cfg("text_encoder")["num_attention_heads"]},
    }
    if (folder / "text_encoder_2").is_dir():
        hints["text_encoder_2"] = {"num_attention_heads": cfg("text_encoder_2")["num_attention_heads"]}
    return hints


def ldm_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """The whole A1111/LDM state dict of a diffusers SD 1.x / 2.x / XL folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    out = {"model.diffusion_model." + k: v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()}
    levels = len(vae.config.block_out_channels)
    out.update({"first_stage_model." + k: v for k, v in vae_to_ldm(vae.state_dict(), levels).items()})
    te1 = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    if (folder / "text_encoder_2").is_dir():
        te2 = CLIPTextModelWithProjection.from_pretrained(folder, subfolder="text_encoder_2")
        out.update({"conditioner.embedders.0.transformer." + k: v for k, v in clip_to_ldm(te1.state_dict()).items()})
        te2_ldm = open_clip_to_ldm(te2.state_dict(), extra_last_layer=False)
        out.update({"conditioner.embedders.1.model." + k: v for k, v in te2_ldm.items()})
    elif te1.config.hidden_act == "gelu":  # SD 2.x: OpenCLIP ViT-H, full tower
        out.update({"cond_stage_model.model." + k: v for k, v in open_clip_to_ldm(te1.state_dict(), extra_last_layer=True).items()})
    else:
        out.update({"cond_stage_model.transformer." + k: v for k, v in clip_to_ldm(te1.state_dict()).items()})
    return {k: v.detach().contiguous() for k, v in out.items()}


def export_single_file(folder: str | Path, out_path: str | Path, *, hints: bool = True, dtype: torch.dtype | None = None) -> Path:
    """Write ``folder`` as ``out_path`` (.safetensors, or .ckpt nested under "state_dict" as LDM saves it)."""
    folder, out_path = Path(folder), Path(out_path)
    sd = ldm_state_dict(folder)
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    hint_json = json.dumps(architecture_hints(folder)) if hints else None
    if out_path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(out_path), metadata={ARCHITECTURE_HINT_KEY: hint_json} if hint_json else None)
    else:
        obj: dict[str, Any] = {"state_dict": sd, "global_step": 0, "epoch": 0}
        if hint_json:
            obj[ARCHITECTURE_HINT_KEY] = hint_json
        torch.save(obj, str(out_path))
    return out_path
