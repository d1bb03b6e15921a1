"""TextBoost through the built-in host on tiny models: each method component is shown to be active."""

from __future__ import annotations

import pytest
import torch

from textboost_ext.extension import TextBoostExtension
from textboost_ext.host.trainer import HostTrainer
from textboost_ext.models.load import load_base_model


def _train(config) -> tuple[HostTrainer, object]:
    trainer = HostTrainer(config, TextBoostExtension())
    return trainer, trainer.train()


def _assert_state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_only_lora_and_new_embedding_rows_change(textboost_config) -> None:
    config = textboost_config(max_train_steps=3)
    trainer, result = _train(config)
    original = load_base_model(config.pretrained_model_name_or_path)
    _assert_state_equal(trainer.model.unet, original.unet)  # bit-identical
    _assert_state_equal(trainer.model.vae, original.vae)
    ext = trainer.ext
    (emb,) = ext.embeddings
    orig_table = original.text_encoders[0].get_input_embeddings().weight
    assert torch.equal(emb.base.weight, orig_table)  # the whole original vocabulary
    init = orig_table[ext.vector_tokens and original.tokenizers[0]("coffee mug", add_special_tokens=False).input_ids]
    assert not torch.allclose(emb.new_rows[: len(ext.vector_tokens)], init)  # the placeholder trained
    # every non-LoRA text-encoder weight is untouched
    trained = {k: v for k, v in trainer.model.text_encoders[0].state_dict().items() if "lora_" not in k and "token_embedding" not in k}
    reference = original.text_encoders[0].state_dict()
    for key, value in trained.items():
        assert torch.equal(value, reference[key.replace(".base_layer", "")]), key
    assert any(float(p.detach().abs().sum()) > 0 for p in trainer.network.trainable_parameters()[1::2])  # lora_up moved off zero
    assert result.lora_path.is_file()


def test_optimizer_groups_8bit_lora_and_embedding(textboost_config) -> None:
    trainer, _ = _train(textboost_config(max_train_steps=1))
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["lora"]["weight_decay"] == 0.01 and groups["lora"]["lr"] == pytest.approx(1e-3)
    assert groups["embedding"]["weight_decay"] == 0.0 and groups["embedding"]["lr"] == pytest.approx(1e-3)
    assert "bitsandbytes" in type(trainer.optimizer.optimizer).__module__
    states = [trainer.optimizer.optimizer.state[p] for p in groups["lora"]["params"]]
    assert any(v.dtype == torch.uint8 for s in states for v in s.values() if torch.is_tensor(v))


def test_step_logs_every_component(textboost_config) -> None:
    _, result = _train(textboost_config(max_train_steps=2))
    logs = result.logs[-1]
    for key in ("loss/total", "loss/diffusion", "loss/kp", "lr/lora", "lr/embedding", "timestep/mean", "embedding/placeholder_norm"):
        assert key in logs, key
    assert logs["loss/total"] == pytest.approx(logs["loss/diffusion"] + logs["loss/kp"], rel=1e-5)


def test_snr_sampler_is_the_one_used(textboost_config, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = HostTrainer(textboost_config(max_train_steps=1), TextBoostExtension())
    trainer.setup()
    try:
        sampler = trainer.ext.sampler
        ac = trainer.model.noise_scheduler.alphas_cumprod.double()
        log_snr = torch.log(ac / (1 - ac))
        expected = (log_snr[0] - log_snr) / (log_snr[0] - log_snr).sum()
        assert torch.allclose(sampler.probabilities.double(), expected, atol=1e-9)  # SNR weights, not uniform
        monkeypatch.setattr(sampler, "sample", lambda n, generator=None: torch.full((n,), 777, dtype=torch.long))
        batch = trainer._next_batch()
        trainer.ext.on_step_start(trainer.ctx, batch, 0, trainer.generator)
        terms = trainer.compute_loss(batch, 0)
        assert float(terms["timestep/mean"]) == 777.0
    finally:
        trainer.cleanup()


def test_captions_name_registered_tokens(textboost_config) -> None:
    trainer = HostTrainer(textboost_config(train_batch_size=8, textboost={"augment_p": 1.0}), TextBoostExtension())
    trainer.setup()
    try:
        tokenizer = trainer.model.tokenizers[0]
        vocab = tokenizer.get_vocab()
        batch = trainer._next_batch()
        before = batch.images.clone()
        trainer.ext.on_step_start(trainer.ctx, batch, 0, trainer.generator)
        assert not torch.equal(before, batch.images)  # every view geometric-augmented (p = 1)
        added = set(trainer.ext.vector_tokens + trainer.ext.augment_tokens)
        for caption in batch.captions:
            assert "tbmug" in caption and "[" not in caption
            for word in caption.replace(",", " ").split():
                if word.startswith("<") or word.startswith("tbmug"):
                    assert word in added and word in vocab, word
            ids = tokenizer(caption).input_ids
            assert any(i >= trainer.ext.embeddings[0].num_old for i in ids)
            assert sum(1 for w in caption.split() if w.startswith("<")) >= 1
    finally:
        trainer.cleanup()


def test_kp_loss_zero_at_start_and_grads_reach_only_lora(textboost_config) -> None:
    trainer = HostTrainer(textboost_config(), TextBoostExtension())
    trainer.setup()
    try:
        ext, ctx = trainer.ext, trainer.ctx
        batch = trainer._next_batch()
        terms = ext.process_batch(ctx, batch, 0, trainer.generator)
        assert float(terms["kp"]) == pytest.approx(0.0, abs=1e-6)  # B = 0: adapted == original
        with torch.no_grad():
            for p in trainer.network.trainable_parameters()[1::2]:
                p.normal_(std=0.05)  # pretend training moved the LoRA
        terms = ext.process_batch(ctx, batch, 1, trainer.generator)
        assert float(terms["kp"]) > 0
        terms["kp"].backward()
        lora = set(map(id, trainer.network.trainable_parameters()))
        assert all(p.grad is not None for p in trainer.network.trainable_parameters())
        for module in (trainer.model.unet, trainer.model.vae, trainer.model.text_encoders[0]):
            for name, p in module.named_parameters():
                if id(p) not in lora and "new_rows" not in name:
                    assert p.grad is None, name
        assert ext.kp_cache.misses > 0
        ext.process_batch(ctx, batch, 2, trainer.generator)
        assert ext.kp_cache.hits + ext.kp_cache.misses >= 3 * len(batch.captions)
    finally:
        trainer.cleanup()


HELD_OUT = ["a red bicycle leaning against a brick wall", "two cats sleeping on a sofa", "a lighthouse at dusk"]


def _drift(trainer: HostTrainer) -> float:
    from textboost_ext.method import kp_loss

    with torch.no_grad():
        adapted = trainer.encode_prompts(HELD_OUT)
        trainer.network.set_multiplier(0.0)
        original = trainer.encode_prompts(HELD_OUT)
        trainer.network.set_multiplier(1.0)
    return float(kp_loss(adapted, original))


def test_kp_loss_reduces_language_drift(textboost_config) -> None:
    drifts = {}
    for weight in (0.0, 1.0):
        config = textboost_config(max_train_steps=8, learning_rate=2e-2, output_name=f"kp{weight}",
                                  optimizer_type="AdamW", optimizer_args=[], textboost={"kpl_weight": weight})
        trainer, _ = _train(config)
        drifts[weight] = _drift(trainer)
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    assert drifts[0.0] > 0
    assert drifts[1.0] < drifts[0.0]


@pytest.mark.parametrize("family", ["sd1", "sd2v", "sdxl"])
def test_end_to_end_each_family_passes_verify(textboost_config, family: str) -> None:
    from safetensors.torch import load_file

    from textboost_ext.export.verify import verify_file

    trainer, result = _train(textboost_config(family))
    report = verify_file(result.lora_path, base=str(textboost_config(family).pretrained_model_name_or_path))
    assert report.ok, report.format_table()
    emb = load_file(str(result.adapter_dir / "embeddings" / "tbmug.safetensors"))
    assert set(emb) == ({"clip_l", "clip_g"} if family == "sdxl" else {"emb_params"})
    n_vectors = len(trainer.ext.vector_tokens)
    assert all(t.shape[0] == n_vectors for t in emb.values())


def test_uniform_sampling_selectable(textboost_config) -> None:
    trainer = HostTrainer(textboost_config(textboost={"timestep_sampling": "uniform"}), TextBoostExtension())
    trainer.setup()
    try:
        probs = trainer.ext.sampler.probabilities
        assert torch.allclose(probs, torch.full_like(probs, 1 / len(probs)))
    finally:
        trainer.cleanup()


@pytest.mark.parametrize(
    ("textboost", "message"),
    [
        ({"placeholder_token": None}, "placeholder_token is required"),
        ({"placeholder_token": "dog"}, "dog"),
        ({"placeholder_token": "<dog>"}, "placeholder_token"),
        ({"initializer": ""}, "initializer"),
        ({"preservation_prompts": "/nonexistent/prompts.txt"}, "prompts.txt"),
    ],
)
def test_bad_textboost_settings_fail_clearly(textboost_config, textboost, message: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        HostTrainer(textboost_config(textboost=textboost), TextBoostExtension()).train()
    assert message in str(err.value)
