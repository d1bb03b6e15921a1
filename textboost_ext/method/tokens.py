"""Placeholder and augmentation tokens: registration, trainable rows, grad mask, norm clamp.

New tokens live in ``ExtendedTokenEmbedding``: the original vocabulary stays in a frozen
``nn.Embedding`` and only the few new rows are an ``nn.Parameter``. So the optimizer sees ~n×768
numbers instead of the whole 38M-parameter table (the official code ran AdamW over all of it, and its
weight decay shrank every row), and the original vocabulary is bit-identical by construction.

Tokenizers are duck-typed (no transformers import): ``add_tokens``, ``convert_tokens_to_ids``,
``encode(text, add_special_tokens=False)``, ``get_vocab``, ``__len__``. For SDXL call
``add_placeholder_tokens`` once per tokenizer/encoder pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

_LEGACY_CLIP_EOS_ID = 2


def placeholder_vector_tokens(name: str, n_vectors: int) -> list[str]:
    """Tokens of an n-vector placeholder in training captions: ``name``, ``name_1``, ..., ``name_{n-1}``.

    In A1111/Forge/ComfyUI the embedding's name is just ``name`` (the file stem), whose n vectors are
    spliced in where the name appears; the ``_i`` names exist only in our tokenizer during training.
    """
    if n_vectors < 1:
        raise ValueError(f"a placeholder needs at least one vector, got {n_vectors}")
    return [name] + [f"{name}_{i}" for i in range(1, n_vectors)]


def phrase_token_ids(tokenizer: Any, phrase: str) -> list[int]:
    """BPE ids of ``phrase`` without BOS/EOS (one placeholder vector is initialised from each)."""
    ids = list(tokenizer.encode(phrase, add_special_tokens=False))
    if not ids:
        raise ValueError(f"initializer {phrase!r} tokenizes to nothing; give a word such as 'dog'")
    return [int(i) for i in ids]


# ---- the embedding -----------------------------------------------------------------------------
class ExtendedTokenEmbedding(nn.Module):
    """A frozen base ``nn.Embedding`` (ids < ``num_old``) plus trainable ``new_rows`` (ids ≥ ``num_old``).

    ``forward(ids)`` equals a plain embedding over ``weight`` and is differentiable only into
    ``new_rows`` (the base table is read detached, so even ``requires_grad_(True)`` on the module, as
    kohya's gradient-checkpointing workaround does, cannot give it gradients). The output dtype is
    the base table's; ``new_rows`` may be fp32 under a half-precision encoder.
    """

    def __init__(self, base: nn.Embedding, new_rows: torch.Tensor, new_tokens: Sequence[str] | None = None) -> None:
        super().__init__()
        if new_rows.dim() != 2 or new_rows.shape[1] != base.embedding_dim:
            raise ValueError(f"new_rows must be [n, {base.embedding_dim}], got {tuple(new_rows.shape)}")
        if new_tokens is not None and len(new_tokens) != new_rows.shape[0]:
            raise ValueError(f"{len(new_tokens)} token names for {new_rows.shape[0]} new rows")
        base.weight.requires_grad_(False)
        self.base = base
        self.new_rows = nn.Parameter(new_rows.detach().clone().to(base.weight.device))
        self.new_tokens: list[str] = list(new_tokens) if new_tokens is not None else []
        self._base_mean_norm: float | None = None

    @property
    def num_old(self) -> int:
        return self.base.num_embeddings

    @property
    def num_new(self) -> int:
        return self.new_rows.shape[0]

    @property
    def num_embeddings(self) -> int:
        return self.num_old + self.num_new

    @property
    def embedding_dim(self) -> int:
        return self.base.embedding_dim

    @property
    def padding_idx(self) -> int | None:
        return self.base.padding_idx

    @property
    def weight(self) -> torch.Tensor:
        """All rows, ``[num_embeddings, dim]`` in the base dtype: a detached COPY for code that reads
        ``.weight``; writing into it changes nothing (train ``new_rows``)."""
        return torch.cat([self.base.weight.detach(), self.new_rows.detach().to(self.base.weight.dtype)])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.numel():
            lo, hi = torch.stack(torch.aminmax(input_ids)).tolist()  # one device sync
            if lo < 0 or hi >= self.num_embeddings:
                raise IndexError(f"token id out of range [0, {self.num_embeddings}): min {lo}, max {hi}")
        base_weight = self.base.weight.detach()
        is_new = input_ids >= self.num_old
        old = nn.functional.embedding(input_ids.clamp(max=self.num_old - 1), base_weight)
        if self.num_new == 0:
            return old
        new = nn.functional.embedding((input_ids - self.num_old).clamp(min=0), self.new_rows).to(old.dtype)
        return torch.where(is_new.unsqueeze(-1), new, old)

    def base_mean_row_norm(self) -> float:
        """Mean L2 norm of the ORIGINAL rows (frozen, so computed once)."""
        if self._base_mean_norm is None:
            self._base_mean_norm = float(self.base.weight.detach().float().norm(dim=1).mean())
        return self._base_mean_norm

    def rows_for(self, tokens: Sequence[str]) -> torch.Tensor:
        """Detached copy of the new rows of ``tokens`` (in the given order), e.g. for export."""
        missing = [t for t in tokens if t not in self.new_tokens]
        if missing:
            raise KeyError(f"not new tokens of this embedding: {missing}; it has {self.new_tokens}")
        index = torch.tensor([self.new_tokens.index(t) for t in tokens], device=self.new_rows.device)
        return self.new_rows.detach()[index].clone()

    def merged_embedding(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` with all rows (for saving a full model or a stock pipeline)."""
        merged = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx,
                              device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_(self.weight)
        return merged

    def extra_repr(self) -> str:
        return f"num_old={self.num_old}, num_new={self.num_new}, dim={self.embedding_dim}, new_tokens={self.new_tokens}"


def add_placeholder_tokens(
    tokenizer: Any,
    embedding: nn.Embedding | ExtendedTokenEmbedding,
    tokens: Sequence[str],
    init_ids: Sequence[int | Sequence[int]],
    dtype: torch.dtype | None = None,
) -> ExtendedTokenEmbedding:
    """Register ``tokens`` in ``tokenizer`` and return an ``ExtendedTokenEmbedding`` with one new row
    per token, initialised from ``init_ids[i]``: a row id (copy), or several ids (their mean, e.g. an
    augmentation token from its phrase "photo collage"). Passing an ``ExtendedTokenEmbedding`` keeps
    its existing new rows and appends. Put the result into the encoder yourself
    (``text_encoder.set_input_embeddings(ext)``), before building the optimizer.

    ``dtype`` of the trainable rows: default the base dtype, but fp32 when the base is half precision.
    The tokenizer must have exactly as many tokens as the embedding has rows, so new ids line up.
    """
    tokens, init_ids = list(tokens), list(init_ids)
    if not tokens:
        raise ValueError("add_placeholder_tokens: no tokens given")
    if len(init_ids) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(init_ids)} initialisers")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"duplicate tokens: {tokens}")
    if isinstance(embedding, ExtendedTokenEmbedding):
        base, existing, existing_tokens = embedding.base, embedding.new_rows.detach(), embedding.new_tokens
    elif isinstance(embedding, nn.Embedding):
        base, existing, existing_tokens = embedding, embedding.weight.new_zeros(0, embedding.embedding_dim), []
    else:
        raise TypeError(f"expected nn.Embedding or ExtendedTokenEmbedding, got {type(embedding).__name__}")
    first_id = base.num_embeddings + existing.shape[0]
    if len(tokenizer) != first_id:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the text encoder's embedding has {first_id} rows; they must match so new ids line up")
    vocab = tokenizer.get_vocab()
    taken = [t for t in tokens if t in vocab]
    if taken:
        raise ValueError(f"token(s) {taken} already exist in the tokenizer; choose other names")

    if dtype is None:
        dtype = base.weight.dtype if base.weight.dtype in (torch.float32, torch.float64) else torch.float32
    current = torch.cat([base.weight.detach().to(dtype), existing.to(dtype)])
    rows = []
    for token, init in zip(tokens, init_ids):
        ids = [init] if isinstance(init, int) else [int(i) for i in init]
        if not ids or min(ids) < 0 or max(ids) >= first_id:
            raise ValueError(f"initialiser ids {ids} of {token!r} are empty or outside [0, {first_id})")
        rows.append(current[ids].mean(dim=0))

    added = tokenizer.add_tokens(tokens)
    ids = [int(i) for i in tokenizer.convert_tokens_to_ids(tokens)]
    expected = list(range(first_id, first_id + len(tokens)))
    if added != len(tokens) or ids != expected:
        raise RuntimeError(f"tokenizer assigned ids {ids} to {tokens} (added {added}); expected {expected}")
    new_rows = torch.cat([existing.to(dtype), torch.stack(rows)])
    return ExtendedTokenEmbedding(base, new_rows, existing_tokens + tokens)


# ---- training-step helpers -----------------------------------------------------------------------
def masked_zero_old_rows_grad(weight: torch.Tensor, num_old: int) -> None:
    """For a FULL-size trainable embedding (the alternative to ``ExtendedTokenEmbedding``): zero the
    gradient of the original rows ``[0, num_old)`` after backward, so only new rows move. Pair it
    with weight decay 0 for that parameter, or the optimizer still shrinks every row."""
    if weight.grad is None:
        return
    if weight.grad.is_sparse:
        raise ValueError("sparse embedding gradients are not supported")
    weight.grad[:num_old].zero_()


@torch.no_grad()
def clamp_new_row_norms_(ext: ExtendedTokenEmbedding, max_norm: float | None = None) -> torch.Tensor:
    """Rescale every new row whose L2 norm exceeds ``max_norm`` (default: the mean row norm of the
    original vocabulary) down to it; shorter rows are untouched. Returns the new rows' norms after."""
    limit = ext.base_mean_row_norm() if max_norm is None else float(max_norm)
    if limit <= 0:
        raise ValueError(f"max_norm must be > 0, got {limit}")
    norms = ext.new_rows.float().norm(dim=1, keepdim=True)
    scale = (limit / norms.clamp_min(1e-12)).clamp(max=1.0)
    ext.new_rows.mul_(scale.to(ext.new_rows.dtype))
    return ext.new_rows.float().norm(dim=1)


def fix_legacy_eos_pooling(text_encoder: nn.Module, eos_token_id: int) -> bool:
    """Make a transformers CLIP text model pool at the real EOS token once tokens are added.

    Older CLIP configs (SD 1.x ``text_encoder``, SDXL ``text_encoder_2``) carry ``eos_token_id = 2``,
    which makes the model pool at the HIGHEST token id of each prompt, i.e. at an added token. Setting
    the true id (``tokenizer.eos_token_id``, 49407) switches it to the first EOS position. Returns
    True if anything was changed.
    """
    changed = False
    config = getattr(text_encoder, "config", None)
    if config is not None and getattr(config, "eos_token_id", None) == _LEGACY_CLIP_EOS_ID:
        config.eos_token_id = eos_token_id
        changed = True
    for module in text_encoder.modules():
        if getattr(module, "eos_token_id", None) == _LEGACY_CLIP_EOS_ID:
            module.eos_token_id = eos_token_id
            changed = True
    return changed
