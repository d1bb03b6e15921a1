from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from textboost_ext.method.tokens import (
    ExtendedTokenEmbedding,
    add_placeholder_tokens,
    clamp_new_row_norms_,
    fix_legacy_eos_pooling,
    masked_zero_old_rows_grad,
    phrase_token_ids,
    placeholder_vector_tokens,
)
from textboost_ext.method.token_names import suggest_token_name, validate_token_name


class ToyTokenizer:
    """The duck-typed tokenizer interface: whole words map to ``word</w>``, added tokens verbatim."""

    def __init__(self) -> None:
        words = ["a", "dog", "photo", "of", "zoom", "in", "mug"]
        self.vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1} | {w + "</w>": i + 2 for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def add_tokens(self, tokens: list[str]) -> int:
        new = [t for t in tokens if t not in self.vocab]
        for t in new:
            self.vocab[t] = len(self.vocab)
        return len(new)

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab[t] for t in tokens]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [self.vocab[w] if w in self.vocab else self.vocab[w + "</w>"] for w in text.lower().split()]
        return [0, *ids, 1] if add_special_tokens else ids

    def __call__(self, text: str) -> SimpleNamespace:
        return SimpleNamespace(input_ids=self.encode(text))


def base_embedding(n: int, dim: int = 8, seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Embedding:
    torch.manual_seed(seed)
    return nn.Embedding(n, dim).to(dtype)


# ---- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,reason",
    [
        ("dog", "word of the CLIP vocabulary"),
        ("Dog", "word of the CLIP vocabulary"),
        ("sks", "word of the CLIP vocabulary"),  # the DreamBooth classic IS a CLIP word
        ("<dog>", "ASCII letters and digits"),
        ("dog-", "ASCII letters and digits"),
        ("_dog", "ASCII letters and digits"),
        ("my dog", "whitespace"),
        ("corgi!", "ASCII letters and digits"),
        ("123", "no letter"),
        ("x", "characters"),
        ("a" * 33, "characters"),
        ("", "empty"),
    ],
)
def test_bad_names_are_rejected_with_a_valid_suggestion(clip_tokenizer, name: str, reason: str) -> None:
    vocab = clip_tokenizer.get_vocab()
    with pytest.raises(ValueError, match=reason) as err:
        validate_token_name(name, vocab)
    suggestion = suggest_token_name(name, vocab)
    assert f"Try {suggestion!r}" in str(err.value)
    validate_token_name(suggestion, vocab)  # the suggestion itself passes


@pytest.mark.parametrize("name", ["sks1", "tbmug", "mycorgi", "my_corgi", "my-corgi2", "TbMug"])
def test_good_names_are_accepted(clip_tokenizer, name: str) -> None:
    validate_token_name(name, clip_tokenizer.get_vocab())


def test_suggestions() -> None:
    vocab = {"dog</w>": 0, "dog1</w>": 1}
    assert suggest_token_name("dog", vocab) == "dog2"
    assert suggest_token_name("<My Dog>", None) == "mydog"
    validate_token_name("dog", None)  # without a vocabulary only the form is checked


def test_placeholder_vector_tokens() -> None:
    assert placeholder_vector_tokens("tbmug", 1) == ["tbmug"]
    assert placeholder_vector_tokens("tbmug", 3) == ["tbmug", "tbmug_1", "tbmug_2"]
    with pytest.raises(ValueError):
        placeholder_vector_tokens("tbmug", 0)


# ---- registration --------------------------------------------------------------------------------
def test_toy_tokenizer_registration_and_initialisation() -> None:
    tok, emb = ToyTokenizer(), base_embedding(9)
    ext = add_placeholder_tokens(tok, emb, ["tbmug", "<zoom-in>"], [tok.vocab["mug</w>"], phrase_token_ids(tok, "zoom in")])
    assert ext.num_old == 9 and ext.num_new == 2 and ext.num_embeddings == 11 == len(tok)
    assert tok("a tbmug <zoom-in>").input_ids == [0, 2, 9, 10, 1]
    assert torch.equal(ext.new_rows[0].detach(), emb.weight[8].detach())
    assert torch.allclose(ext.new_rows[1].detach(), emb.weight[[6, 7]].mean(0).detach())
    assert ext.new_tokens == ["tbmug", "<zoom-in>"]
    assert torch.equal(ext.rows_for(["<zoom-in>"]), ext.new_rows[1:].detach())
    assert not emb.weight.requires_grad


def test_real_clip_tokenizer_keeps_added_tokens_whole(fresh_clip_tokenizer) -> None:
    tok = fresh_clip_tokenizer
    emb = base_embedding(49408, dim=4)
    init = [phrase_token_ids(tok, "mug")[0], phrase_token_ids(tok, "zoom in")]
    assert len(init[1]) == 2
    ext = add_placeholder_tokens(tok, emb, ["tbmug", "<zoom-in>"], init)
    ids = tok("a tbmug <zoom-in>, a tbmug.").input_ids
    assert ids == [49406, 320, 49408, 49409, 267, 320, 49408, 269, 49407]
    out = ext(torch.tensor([ids]))
    plain = nn.functional.embedding(torch.tensor([ids]), ext.weight)
    assert torch.equal(out, plain)


def test_two_tokenizers_and_encoders_like_sdxl(fresh_clip_tokenizer) -> None:
    tok1, tok2 = fresh_clip_tokenizer, copy.deepcopy(fresh_clip_tokenizer)
    vectors = placeholder_vector_tokens("tbmug", 2)
    exts = []
    for tok, dim in ((tok1, 6), (tok2, 10)):
        init = phrase_token_ids(tok, "coffee mug")
        exts.append(add_placeholder_tokens(tok, base_embedding(49408, dim), vectors, init))
    assert [e.new_rows.shape for e in exts] == [(2, 6), (2, 10)]
    assert tok1("tbmug tbmug_1").input_ids == tok2("tbmug tbmug_1").input_ids == [49406, 49408, 49409, 49407]


def test_appending_to_an_extended_embedding_keeps_trained_rows() -> None:
    tok = ToyTokenizer()
    ext = add_placeholder_tokens(tok, base_embedding(9), ["tbmug"], [3])
    with torch.no_grad():
        ext.new_rows.fill_(7.0)
    ext2 = add_placeholder_tokens(tok, ext, ["<crop>"], [[2, 4]])
    assert ext2.base is ext.base and ext2.new_tokens == ["tbmug", "<crop>"]
    assert torch.all(ext2.new_rows[0] == 7.0) and tok.encode("<crop>", add_special_tokens=False) == [10]


def test_registration_errors() -> None:
    tok = ToyTokenizer()
    with pytest.raises(ValueError, match="already exist"):
        add_placeholder_tokens(tok, base_embedding(9), ["dog</w>"], [3])
    with pytest.raises(ValueError, match="must match"):
        add_placeholder_tokens(tok, base_embedding(12), ["tbmug"], [3])
    with pytest.raises(ValueError, match="outside"):
        add_placeholder_tokens(tok, base_embedding(9), ["tbmug"], [9])
    with pytest.raises(ValueError, match="initialisers"):
        add_placeholder_tokens(tok, base_embedding(9), ["tbmug", "tbmug_1"], [3])
    with pytest.raises(ValueError, match="duplicate"):
        add_placeholder_tokens(tok, base_embedding(9), ["tbmug", "tbmug"], [3, 3])
    assert len(tok) == 9  # nothing was registered by the failed calls
    with pytest.raises(ValueError, match="nothing"):
        phrase_token_ids(tok, "   ")


# ---- the embedding module ---------------------------------------------------------------------------
def make_ext(n_old: int = 50, n_new: int = 3, dim: int = 8, dtype: torch.dtype = torch.float32) -> ExtendedTokenEmbedding:
    base = base_embedding(n_old, dim, dtype=dtype)
    return ExtendedTokenEmbedding(base, torch.randn(n_new, dim, generator=torch.Generator().manual_seed(1)))


def test_forward_matches_a_plain_embedding_of_the_concatenated_weights() -> None:
    ext = make_ext()
    ids = torch.randint(0, 53, (4, 77), generator=torch.Generator().manual_seed(2))
    ids[0, :3] = torch.tensor([50, 51, 52])
    plain = nn.Embedding(53, 8)
    with torch.no_grad():
        plain.weight.copy_(torch.cat([ext.base.weight, ext.new_rows]))
    assert torch.equal(ext(ids), plain(ids)) and torch.equal(ext.weight, plain.weight.detach())
    assert ext.weight.shape == (53, 8) and not ext.weight.requires_grad
    with pytest.raises(IndexError):
        ext(torch.tensor([53]))
    merged = ext.merged_embedding()
    assert isinstance(merged, nn.Embedding) and torch.equal(merged(ids), plain(ids))


def test_gradients_reach_only_new_rows_even_after_requires_grad_true() -> None:
    ext = make_ext()
    ext.requires_grad_(True)  # kohya's gradient-checkpointing workaround does this to the embeddings
    ids = torch.tensor([[1, 50, 2, 52, 52]])
    ext(ids).pow(2).sum().backward()
    assert ext.base.weight.grad is None
    grad = ext.new_rows.grad
    assert grad is not None and grad[1].abs().sum() == 0 and grad[0].abs().sum() > 0
    assert torch.allclose(grad[2], 2 * 2 * ext.new_rows[2].detach())  # used twice: 2 * 2h


def test_optimizer_step_leaves_base_rows_bit_identical() -> None:
    ext = make_ext()
    before = ext.base.weight.detach().clone()
    new_before = ext.new_rows.detach().clone()
    params = [p for p in ext.parameters() if p.requires_grad]
    assert params == [ext.new_rows]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)
    for step in range(5):
        ids = torch.randint(0, 53, (2, 10), generator=torch.Generator().manual_seed(step))
        ext(ids).square().mean().backward()
        opt.step()
        opt.zero_grad()
    assert torch.equal(ext.base.weight, before)
    assert not torch.equal(ext.new_rows.detach(), new_before)


def test_full_size_alternative_needs_grad_mask_and_no_weight_decay() -> None:
    def train(weight_decay: float, mask: bool) -> bool:
        emb = base_embedding(53)
        before = emb.weight.detach().clone()
        opt = torch.optim.AdamW(emb.parameters(), lr=1e-2, weight_decay=weight_decay)
        for _ in range(3):
            emb(torch.tensor([[1, 2, 50, 51]])).square().sum().backward()
            if mask:
                masked_zero_old_rows_grad(emb.weight, 50)
            opt.step()
            opt.zero_grad()
        return torch.equal(emb.weight[:50], before[:50]) and not torch.equal(emb.weight[50:], before[50:])

    assert train(0.0, mask=True)
    assert not train(0.0, mask=False)  # rows 1, 2 moved
    assert not train(0.01, mask=True)  # weight decay shrinks every row despite zero grads
    masked_zero_old_rows_grad(nn.Parameter(torch.zeros(3, 2)), 2)  # no grad yet: a no-op


def test_half_precision_base_keeps_fp32_trainable_rows() -> None:
    base = base_embedding(20, 8, dtype=torch.float16)
    ext = add_placeholder_tokens(_toy_of_size(20), base, ["tbmug"], [3])
    assert ext.new_rows.dtype == torch.float32 and ext.weight.dtype == torch.float16
    out = ext(torch.tensor([[3, 20]]))
    assert out.dtype == torch.float16 and torch.equal(out[0, 0], out[0, 1])
    out.float().sum().backward()
    assert ext.new_rows.grad is not None and ext.new_rows.grad.dtype == torch.float32


def _toy_of_size(n: int) -> ToyTokenizer:
    tok = ToyTokenizer()
    while len(tok) < n:
        tok.add_tokens([f"filler{len(tok)}"])
    return tok


def test_norm_clamp() -> None:
    ext = make_ext(n_new=3)
    mean_norm = ext.base.weight.norm(dim=1).mean().item()
    with torch.no_grad():
        ext.new_rows[0] *= 100 / ext.new_rows[0].norm()
        ext.new_rows[1] *= 0.1 * mean_norm / ext.new_rows[1].norm()
    small = ext.new_rows[1].detach().clone()
    direction = ext.new_rows[0].detach() / ext.new_rows[0].detach().norm()
    norms = clamp_new_row_norms_(ext)
    assert norms[0].item() == pytest.approx(mean_norm, rel=1e-5) and torch.equal(ext.new_rows[1].detach(), small)
    assert torch.allclose(ext.new_rows[0].detach() / ext.new_rows[0].detach().norm(), direction)
    assert torch.all(clamp_new_row_norms_(ext, max_norm=0.5) <= 0.5 + 1e-6)
    with pytest.raises(ValueError):
        clamp_new_row_norms_(ext, max_norm=0.0)


# ---- inside a real CLIP text model ----------------------------------------------------------------
def tiny_clip(eos_token_id: int):  # noqa: ANN201
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(hidden_size=16, intermediate_size=20, num_attention_heads=2, num_hidden_layers=1,
                            vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=eos_token_id)
    torch.manual_seed(0)
    return CLIPTextModel(config).eval()


def test_extended_embedding_inside_clip_text_model(fresh_clip_tokenizer) -> None:
    tok, model = fresh_clip_tokenizer, tiny_clip(49407)
    ext = add_placeholder_tokens(tok, model.get_input_embeddings(), ["tbmug"], phrase_token_ids(tok, "mug"))
    model.set_input_embeddings(ext)
    ids = torch.tensor([tok("a photo of a tbmug", padding="max_length", max_length=77).input_ids])
    reference = copy.deepcopy(model)
    reference.set_input_embeddings(ext.merged_embedding())
    out = model(ids)
    assert torch.allclose(out.last_hidden_state, reference(ids).last_hidden_state, atol=1e-6)
    out.last_hidden_state.sum().backward()
    assert ext.new_rows.grad is not None and ext.base.weight.grad is None


def test_fix_legacy_eos_pooling(fresh_clip_tokenizer) -> None:
    tok, model = fresh_clip_tokenizer, tiny_clip(2)  # SD 1.x / SDXL encoder-2 configs say eos_token_id = 2
    model.set_input_embeddings(add_placeholder_tokens(tok, model.get_input_embeddings(), ["tbmug"], [320]))
    ids = torch.tensor([tok("a tbmug", padding="max_length", max_length=77).input_ids])
    eos_position = 3
    with torch.no_grad():
        legacy = model(ids)
        assert not torch.allclose(legacy.pooler_output, legacy.last_hidden_state[:, eos_position])  # pooled at "tbmug"
        assert fix_legacy_eos_pooling(model, tok.eos_token_id)
        fixed = model(ids)
    assert torch.allclose(fixed.pooler_output, fixed.last_hidden_state[:, eos_position])
    assert model.config.eos_token_id == 49407 and not fix_legacy_eos_pooling(model, 49407)
