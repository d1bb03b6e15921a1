"""Config inference from tensor shapes reproduces the RELEASED families' configs (checked on the meta
device: real-size shapes, no real weights), and our OpenCLIP conversion agrees with diffusers'."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.ldm_export import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm
from textboost_ext.models.family_configs import BASE_CONFIG_FILES, base_config, base_config_name
from textboost_ext.models.ldm_layout import (
    SD1_TEXT_PREFIX,
    SD2_TEXT_PREFIX,
    SDXL_TEXT1_PREFIX,
    SDXL_TEXT2_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    infer_clip_config,
    infer_open_clip_config,
    infer_unet_config,
    infer_vae_config,
    set_sdxl_time_embedding,
)


def _public(config: dict) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _real_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """LDM key -> shape for a released base, built on the meta device from its shipped configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = base_config(name)

    def text_config(c: dict) -> CLIPTextConfig:
        return CLIPTextConfig(**{k: v for k, v in c.items() if k not in ("architectures", "model_type")})

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg["unet"])
        vae = AutoencoderKL.from_config(cfg["vae"])
        te1 = CLIPTextModel(text_config(cfg["text_encoder"]))
        te2 = CLIPTextModelWithProjection(text_config(cfg["text_encoder_2"])) if "text_encoder_2" in cfg else None
    sd = {UNET_PREFIX + k: v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()}
    sd.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)).items()})
    if cfg["family"] == "sd1":
        sd.update({SD1_TEXT_PREFIX + k: v for k, v in clip_to_ldm(te1.state_dict()).items()})
    elif cfg["family"] == "sd2":
        sd.update({SD2_TEXT_PREFIX + k: v for k, v in open_clip_to_ldm(te1.state_dict(), extra_last_layer=True).items()})
    else:
        sd.update({SDXL_TEXT1_PREFIX + k: v for k, v in clip_to_ldm(te1.state_dict()).items()})
        sd.update({SDXL_TEXT2_PREFIX + k: v for k, v in open_clip_to_ldm(te2.state_dict(), extra_last_layer=False).items()})
    return {k: tuple(v.shape) for k, v in sd.items()}


@pytest.mark.parametrize("name", sorted(BASE_CONFIG_FILES))
def test_inference_reproduces_released_configs_without_hints(name: str) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    released = base_config(name)
    # start from ANOTHER family's configs: every size must come from the shapes, not the starting point
    other = base_config("sdxl-base" if released["family"] != "sdxl" else "sd15")
    shapes = _real_shapes(name)

    # the head rule depends on the family (SD 1.x: a fixed count; SD 2.x/XL: 64-wide), the sizes must not
    unet = infer_unet_config(shapes, dict(other["unet"], attention_head_dim=released["unet"]["attention_head_dim"]), None, name)
    if released["family"] == "sdxl":
        te2 = infer_open_clip_config(shapes, SDXL_TEXT2_PREFIX, other["text_encoder"], None, name, drop_last_layer=False)
        set_sdxl_time_embedding(unet, te2["projection_dim"], name)
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "projection_dim"):
            assert te2[key] == released["text_encoder_2"][key], key
    with torch.device("meta"):
        ours = UNet2DConditionModel.from_config(unet).config
        theirs = UNet2DConditionModel.from_config(released["unet"]).config
    differing = {k for k in _public(theirs) if _public(ours).get(k) != _public(theirs)[k]}
    assert differing <= {"sample_size", "upcast_attention"}, {k: (ours[k], theirs[k]) for k in differing}

    vae = infer_vae_config(shapes, VAE_PREFIX, other["vae"], None, name)
    with torch.device("meta"):
        ours_vae, theirs_vae = AutoencoderKL.from_config(vae).config, AutoencoderKL.from_config(released["vae"]).config
    assert {k for k in _public(theirs_vae) if _public(ours_vae).get(k) != _public(theirs_vae)[k]} <= {
        "sample_size", "scaling_factor", "force_upcast"}

    if released["family"] == "sd2":
        te = infer_open_clip_config(shapes, SD2_TEXT_PREFIX, other["text_encoder"], None, name, drop_last_layer=True)
    else:
        prefix = SD1_TEXT_PREFIX if released["family"] == "sd1" else SDXL_TEXT1_PREFIX
        te = infer_clip_config(shapes, prefix, other["text_encoder"], None, name)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "max_position_embeddings"):
        assert te[key] == released["text_encoder"][key], key


def test_sd2_uses_23_of_24_open_clip_layers() -> None:
    shapes = _real_shapes("sd21-768-v")
    assert len({k.split(".")[4] for k in shapes if ".resblocks." in k}) == 24
    te = infer_open_clip_config(shapes, SD2_TEXT_PREFIX, base_config("sd21-base")["text_encoder"], None, "x", drop_last_layer=True)
    assert te["num_hidden_layers"] == 23


def test_base_config_choice() -> None:
    assert base_config_name("sd1", False) == "sd15"
    assert base_config_name("sd2", False) == "sd21-base"
    assert base_config_name("sd2", True) == "sd21-768-v"
    assert base_config_name("sdxl", False) == "sdxl-base"
    assert base_config("sd21-768-v")["scheduler"]["prediction_type"] == "v_prediction"
    assert base_config("sdxl-base")["tokenizer_2"]["pad_token"] == "!"


@pytest.mark.parametrize(("family", "prefix"), [("sdxl", SDXL_TEXT2_PREFIX), ("sd2", SD2_TEXT_PREFIX)])
def test_open_clip_conversion_agrees_with_diffusers(single_file, family: str, prefix: str) -> None:
    """diffusers' own OpenCLIP converter (an independent implementation) gives the same tensors."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    from textboost_ext.models.checkpoint_file import read_checkpoint
    from textboost_ext.models.ldm_text_encoders import open_clip_state_dict

    sd = read_checkpoint(single_file(family, ".safetensors")).state_dict
    n_layers = len({k.split(".")[len(prefix.split(".")) + 1] for k in sd if k.startswith(prefix + "transformer.resblocks.")})
    keep = n_layers - 1 if family == "sd2" else n_layers
    ours = open_clip_state_dict(sd, prefix, keep, with_projection=family == "sdxl")

    class _Config:  # what convert_open_clip_checkpoint reads when the file has a text_projection
        hidden_size = sd[prefix + "token_embedding.weight"].shape[1]

    model = type("M", (), {"config": _Config()})()
    theirs = convert_open_clip_checkpoint(model, sd, prefix=prefix)
    # diffusers drops SD 2's last layer by its released index (23); for other sizes we compare the kept layers
    theirs = {k: v for k, v in theirs.items() if not k.startswith(f"text_model.encoder.layers.{keep}.") and (family == "sdxl" or k != "text_projection.weight")}
    assert set(ours) == set(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
