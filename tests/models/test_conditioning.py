"""Our conditioning equals what the diffusers pipelines feed the UNet, for every family."""

from __future__ import annotations

import pytest
import torch

from textboost_ext.models.conditioning import encode_prompt_conditioning, tokenize
from textboost_ext.models.load import load_base_model
from textboost_ext.models.types import LoadedModel

PROMPTS = ["a photo of a sks dog on the beach", "", "an oil painting, " * 30]  # the last is truncated


def _sd_pipeline(model: LoadedModel):  # noqa: ANN202
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=model.vae, text_encoder=model.text_encoders[0], tokenizer=model.tokenizers[0], unet=model.unet,
        scheduler=model.noise_scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def test_tokenize_pads_each_tokenizer_its_own_way(folder_model) -> None:
    ids = tokenize(folder_model("sdxl"), PROMPTS)
    assert [t.shape for t in ids] == [torch.Size([3, 77])] * 2
    assert ids[0][0, 0].item() == 49406  # <|startoftext|>
    assert ids[0][1, :3].tolist() == [49406, 49407, 49407]  # CLIP-L pads with <|endoftext|>
    assert ids[1][1, :3].tolist() == [49406, 49407, 0]  # OpenCLIP pads with "!" (id 0)
    assert ids[0][2, -1].item() == 49407  # truncated, still ends with <|endoftext|>


@pytest.mark.parametrize("family", ["sd1", "sd2", "sd2v"])
def test_sd_conditioning_equals_pipeline(folder_model, family: str) -> None:
    model = folder_model(family)
    pipe = _sd_pipeline(model)
    with torch.no_grad():
        (ours,) = encode_prompt_conditioning(model, tokenize(model, PROMPTS), clip_skip=None)
        theirs, _ = pipe.encode_prompt(PROMPTS, "cpu", 1, False)
    assert ours.shape == (3, 77, model.text_encoders[0].config.hidden_size)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_clip_skip_is_kohya_numbered(folder_model, family: str) -> None:
    """kohya/A1111 clip_skip=2 (penultimate layer) is diffusers' clip_skip=1.

    StableDiffusionPipeline.encode_prompt(clip_skip=c) takes ``hidden_states[-(c + 1)]`` and applies
    ``text_encoder.text_model.final_layer_norm``; with transformers >= 5.6 the flat CLIPTextModel has no
    ``text_model``, so diffusers 0.42 crashes there: the reference is written out here.
    """
    model = folder_model(family)
    te = model.text_encoders[0]
    ids = tokenize(model, PROMPTS)
    with torch.no_grad():
        (skip2,) = encode_prompt_conditioning(model, ids, clip_skip=2)
        (skip1,) = encode_prompt_conditioning(model, ids, clip_skip=1)
        (plain,) = encode_prompt_conditioning(model, ids, clip_skip=None)
        diffusers_clip_skip = 1
        hidden = te(ids[0], output_hidden_states=True).hidden_states[-(diffusers_clip_skip + 1)]
        theirs = getattr(te, "text_model", te).final_layer_norm(hidden)
    torch.testing.assert_close(skip2, theirs, rtol=0, atol=0)
    torch.testing.assert_close(skip1, plain, rtol=0, atol=0)
    assert not torch.allclose(skip2, plain)
    with pytest.raises(ValueError, match="clip_skip must be between 1"):
        encode_prompt_conditioning(model, ids, clip_skip=te.config.num_hidden_layers + 1)


def test_sdxl_conditioning_equals_pipeline(folder_model) -> None:
    from diffusers import StableDiffusionXLPipeline

    model = folder_model("sdxl")
    pipe = StableDiffusionXLPipeline(
        vae=model.vae, text_encoder=model.text_encoders[0], text_encoder_2=model.text_encoders[1],
        tokenizer=model.tokenizers[0], tokenizer_2=model.tokenizers[1], unet=model.unet, scheduler=model.noise_scheduler,
    )
    with torch.no_grad():
        h1, h2, pooled = encode_prompt_conditioning(model, tokenize(model, PROMPTS), clip_skip=None)
        prompt_embeds, _, pooled_embeds, _ = pipe.encode_prompt(PROMPTS, device="cpu", do_classifier_free_guidance=False)
    w1, w2 = (te.config.hidden_size for te in model.text_encoders)
    assert h1.shape == (3, 77, w1) and h2.shape == (3, 77, w2)
    assert pooled.shape == (3, model.text_encoders[1].config.projection_dim)
    torch.testing.assert_close(torch.cat([h1, h2], dim=-1), prompt_embeds, rtol=0, atol=0)
    torch.testing.assert_close(pooled, pooled_embeds, rtol=0, atol=0)
    with pytest.raises(ValueError, match="clip_skip is not used with SDXL"):
        encode_prompt_conditioning(model, tokenize(model, PROMPTS), clip_skip=2)


def test_sd2_conditioning_is_ln_final_of_the_penultimate_open_clip_layer(single_file) -> None:
    """What LDM/A1111 compute from the full OpenCLIP tower equals our cut encoder's last_hidden_state."""
    from transformers import CLIPTextModel

    from textboost_ext.models.checkpoint_file import read_checkpoint
    from textboost_ext.models.ldm_text_encoders import build_text_encoder, open_clip_state_dict

    path = single_file("sd2", ".safetensors")
    model = load_base_model(str(path))
    cut = model.text_encoders[0]
    full_config = cut.config.__class__(**{**cut.config.to_dict(), "num_hidden_layers": cut.config.num_hidden_layers + 1})
    ckpt = read_checkpoint(path)
    weights = open_clip_state_dict(ckpt.state_dict, "cond_stage_model.model.", full_config.num_hidden_layers, False)
    full = build_text_encoder(CLIPTextModel, full_config, weights, torch.float32, str(path))
    ids = tokenize(model, PROMPTS)
    with torch.no_grad():
        (ours,) = encode_prompt_conditioning(model, ids)
        penultimate = full(ids[0], output_hidden_states=True).hidden_states[-2]
        ldm = getattr(full, "text_model", full).final_layer_norm(penultimate)
        last = full(ids[0]).last_hidden_state
    torch.testing.assert_close(ours, ldm, rtol=0, atol=1e-6)
    assert not torch.allclose(ours, last, atol=1e-3)  # the extra layer is real and skipped


def test_conditioning_carries_gradients_to_the_text_encoder(folder_model) -> None:
    model = folder_model("sd1")
    te = model.text_encoders[0]
    embedding = te.get_input_embeddings().weight
    was_trainable = embedding.requires_grad
    embedding.requires_grad_(True)
    try:
        (hidden,) = encode_prompt_conditioning(model, tokenize(model, PROMPTS[:1]))
        hidden.sum().backward()
        assert embedding.grad is not None and embedding.grad.abs().sum() > 0
    finally:
        embedding.grad = None
        embedding.requires_grad_(was_trainable)


def test_pooled_output_stays_at_eos_after_adding_tokens(single_file) -> None:
    """Released configs say eos_token_id=2, making transformers pool at argmax(input_ids): that would
    land on an added placeholder token (id 49408) instead of <|endoftext|>."""
    model = load_base_model(str(single_file("sdxl", ".safetensors")))  # a fresh copy: we add a token
    tok, te = model.tokenizers[1], model.text_encoders[1]
    assert te.config.eos_token_id == tok.eos_token_id == 49407
    tok.add_tokens(["<sks>"])
    te.resize_token_embeddings(len(tok))
    ids = tokenize(model, ["a photo of <sks> dog"])
    assert ids[1].max().item() == 49408
    with torch.no_grad():
        out = te(ids[1])
        eos = (ids[1] == 49407).int().argmax(-1)
        expected = te.text_projection(out.last_hidden_state[torch.arange(1), eos])
    torch.testing.assert_close(out.text_embeds, expected, rtol=0, atol=0)


def test_wrong_number_of_input_ids(folder_model) -> None:
    model = folder_model("sdxl")
    with pytest.raises(ValueError, match="expected 2 input-id tensors"):
        encode_prompt_conditioning(model, tokenize(model, PROMPTS)[:1])
