"""An adapter as a diffusers user loads it: ``load_lora_weights`` + ``load_textual_inversion``.

Loading goes through diffusers' public API only, so generating with an adapter is also an end-to-end
check of the exported files (a file diffusers cannot read fails here, not just in ``verify``). After
the embeddings are added, the text encoders get the EOS pooling fix: released CLIP configs pool at the
HIGHEST token id, which is now an added token; SDXL conditions on that pooled output, so without the
fix an SDXL image would depend on where the placeholder sits instead of on the whole prompt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textboost_ext.hub.store import AdapterInfo, resolve_adapter

ADAPTER_NAME = "textboost"
BUILTIN_PREFIX = "builtin:"


class AdapterLoadError(ValueError):
    """An adapter that diffusers cannot load into the chosen base; the message names the file."""


@dataclass(frozen=True)
class Adapter:
    """An adapter to generate with: its files and what its metadata says about the subject."""

    info: AdapterInfo
    placeholder: str | None  # the embedding's token, e.g. "tbmug"
    class_noun: str | None  # e.g. "mug"

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def embedding_files(self) -> list[Path]:
        return self.info.embedding_files

    @property
    def subject_words(self) -> str:
        """What stands for the subject in a prompt: the trigger "tbmug mug" (the placeholder alone without a class noun)."""
        return " ".join(w for w in (self.placeholder, self.class_noun) if w)

    @property
    def trained_base(self) -> str | None:
        """The base named in the file (``ss_sd_model_name``), as the trainer was given it."""
        return self.info.metadata.get("ss_sd_model_name") or None

    @property
    def short_hash(self) -> str:
        """The LoRA's hash as A1111 shows it (first 12 hex of ``sshs_model_hash``, else of the file's SHA-256)."""
        return self.info.short_hash or file_sha256(self.info.lora_file)[:12]


def open_adapter(name_or_file: str, adapters_dir: Path | None = None) -> Adapter:
    info = resolve_adapter(name_or_file, adapters_dir)
    meta = info.metadata
    embeddings = info.embedding_files
    placeholder = meta.get("ss_textboost_placeholder_token") or (embeddings[0].stem if len(embeddings) == 1 else None)
    class_noun = meta.get("ss_textboost_class_noun") or None
    trigger = info.trigger or ""
    if class_noun is None and placeholder and trigger.startswith(placeholder + " "):
        class_noun = trigger[len(placeholder) + 1:].strip() or None  # "tbmug mug" -> "mug"
    return Adapter(info, placeholder, class_noun)


def builtin_base_of(adapters: list[Adapter]) -> str | None:
    """The ``builtin:`` base every adapter was trained on (None if any was trained on something else)."""
    bases = {a.trained_base for a in adapters}
    if len(bases) == 1:
        base = next(iter(bases))
        if base and base.startswith(BUILTIN_PREFIX):
            return base
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _encoders(pipe: Any) -> list[tuple[str, Any, Any]]:
    """``[(embedding key, text encoder, tokenizer)]`` of ``pipe`` (SDXL: clip_l then clip_g)."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        return [("clip_l", pipe.text_encoder, pipe.tokenizer), ("clip_g", pipe.text_encoder_2, pipe.tokenizer_2)]
    return [("emb_params", pipe.text_encoder, pipe.tokenizer)]


def vector_tokens(token: str, count: int) -> list[str]:
    """The tokens diffusers registers for a ``count``-vector embedding: token, token_1, ..., token_{count-1}."""
    return [token] + [f"{token}_{i}" for i in range(1, count)]


def load_adapter(pipe: Any, adapter: Adapter, weight: float = 1.0) -> list[str]:
    """Load ``adapter`` into ``pipe`` at LoRA multiplier ``weight``; returns the tokens added (for unloading)."""
    from safetensors.torch import load_file

    from textboost_ext.method.tokens import fix_legacy_eos_pooling

    lora = adapter.info.lora_file
    try:
        pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name=ADAPTER_NAME)
        pipe.set_adapters([ADAPTER_NAME], [float(weight)])
    except Exception as exc:  # diffusers raises many types; its message is the diagnosis
        _unload_lora(pipe)
        raise AdapterLoadError(f"{lora}: diffusers could not load this LoRA into the base ({type(exc).__name__}: {exc}); "
                               f"run `textboost-hub verify {adapter.name}` and check --base") from exc
    added: list[str] = []
    try:
        for path in adapter.embedding_files:
            tensors = load_file(str(path))
            for key, encoder, tokenizer in _encoders(pipe):
                if key not in tensors:
                    raise AdapterLoadError(f"{path}: no {key!r} tensor (has {sorted(tensors)}); it does not fit this base's family")
                vectors = tensors[key].to(encoder.dtype)
                pipe.load_textual_inversion(vectors, token=path.stem, text_encoder=encoder, tokenizer=tokenizer)
            added += vector_tokens(path.stem, int(tensors[_encoders(pipe)[0][0]].shape[0]))
    except Exception as exc:
        unload_adapter(pipe, added)
        if isinstance(exc, AdapterLoadError):
            raise
        raise AdapterLoadError(f"{adapter.info.folder}: diffusers could not load the embedding(s) "
                               f"({type(exc).__name__}: {exc})") from exc
    for _, encoder, tokenizer in _encoders(pipe):
        fix_legacy_eos_pooling(encoder, tokenizer.eos_token_id)
    return added


def unload_adapter(pipe: Any, tokens: list[str]) -> None:
    """Undo ``load_adapter``: the base's own weights and vocabulary come back."""
    _unload_lora(pipe)
    if tokens:
        for _, encoder, tokenizer in _encoders(pipe):
            present = [t for t in tokens if t in tokenizer.get_vocab()]
            if present:
                pipe.unload_textual_inversion(present, tokenizer=tokenizer, text_encoder=encoder)


def _unload_lora(pipe: Any) -> None:
    if any(ADAPTER_NAME in getattr(m, "lora_A", {}) for _, enc, _ in _encoders(pipe) for m in enc.modules()):
        pipe.unload_lora_weights()
