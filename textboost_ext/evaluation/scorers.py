"""CLIP-T, CLIP-I and DINO: the paper's scores of generated images, from transformers models.

- **CLIP-T**: cosine between CLIP's projected image embedding and its projected text embedding of the
  prompt, with the subject written as the class noun ("a mug on a beach"): does the prompt still steer?
- **CLIP-I**: cosine between the generated image's and a reference image's CLIP image embeddings,
  averaged over the reference images: does it look like the subject?
- **DINO**: the same with a self-supervised DINOv2 ``AutoModel``'s CLS feature (``pooler_output``:
  the final layer-normed CLS token), which tells apart instances of one class better than CLIP.

Raw cosines (not x100, not clipped at 0), as the TextBoost and DreamBooth tables report them. Models
come from ``--clip_model`` / ``--dino_model``: a local folder saved with ``save_pretrained``, or a Hub id
that is in the local Hugging Face cache (downloaded only where the Hub is reachable).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_DINO_MODEL = "facebook/dinov2-small"


class ScorerModelError(ValueError):
    """A scoring model that cannot be loaded; the message names the option, the model and the fix."""


def load_pretrained(option: str, name: str, loader: Any, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name)`` offline-first, with errors that say what to do."""
    from textboost_ext.models.load import looks_like_hub_id

    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "preprocessor_config.json").is_file():
            raise ScorerModelError(f"{option} {name}: not a saved transformers model folder (no config.json); "
                                   "save one with save_pretrained() or pass a Hub id")
        try:
            return loader.from_pretrained(str(path), local_files_only=True, **kwargs)
        except (OSError, ValueError) as exc:
            raise ScorerModelError(f"{option} {name}: cannot load it with {loader.__name__} ({_first_line(exc)})") from exc
    if not looks_like_hub_id(name):
        raise ScorerModelError(f"{option} {name}: no such folder, and not a Hugging Face Hub id 'owner/name'")
    try:
        return loader.from_pretrained(name, local_files_only=True, **kwargs)  # the local HF cache first
    except OSError as cached_error:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise ScorerModelError(_unavailable(option, name, "HF_HUB_OFFLINE is set and it is not in the local cache")) from cached_error
    try:
        return loader.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise ScorerModelError(_unavailable(option, name, _first_line(exc))) from exc


def _unavailable(option: str, name: str, reason: str) -> str:
    return (f"{option} {name}: not available offline ({reason}). Download it once where the Hub is reachable "
            f"(`hf download {name}`) or pass a local folder saved with save_pretrained()")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _features(output: Any) -> Any:
    """transformers 4 returns the projected features as a tensor, 5 as ``pooler_output`` of an output object."""
    import torch

    return output if torch.is_tensor(output) else output.pooler_output


def _normalized(features: Any) -> Any:
    return features.float() / features.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _rgb(images: Sequence[Any]) -> list[Any]:
    return [image.convert("RGB") for image in images]


class Scorer:
    """Scores of one image each; ``summarize`` pools them (means by default)."""

    name = ""
    metrics: tuple[str, ...] = ()

    def score(self, images: Sequence[Any], texts: Sequence[str], prompts: Sequence[Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def summarize(self, per_image: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for metric in self.metrics:
            values = [s[metric] for s in per_image if s.get(metric) is not None]
            out[metric] = mean(values) if values else None
        return out


class _Embedder:
    """Batches images (and texts) through a model on a device, returning unit vectors on the CPU."""

    def __init__(self, device: str, batch_size: int) -> None:
        self.device, self.batch_size = device, max(1, batch_size)

    def _batched(self, items: Sequence[Any], embed: Any) -> Any:
        import torch

        with torch.no_grad():
            return torch.cat([_normalized(embed(items[i:i + self.batch_size])).cpu()
                              for i in range(0, len(items), self.batch_size)])


class ClipScorer(Scorer, _Embedder):
    name = "clip"
    metrics = ("clip_t", "clip_i")

    def __init__(self, model: str, references: Sequence[Any], device: str = "cpu", batch_size: int = 16) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        _Embedder.__init__(self, device, batch_size)
        self.model = load_pretrained("--clip_model", model, CLIPModel).to(device).eval()
        self.processor = load_pretrained("--clip_model", model, AutoImageProcessor)
        self.tokenizer = load_pretrained("--clip_model", model, AutoTokenizer)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.references = self.image_features(_rgb(references))

    def image_features(self, images: Sequence[Any]) -> Any:
        def embed(chunk: Sequence[Any]) -> Any:
            pixels = self.processor(images=list(chunk), return_tensors="pt")["pixel_values"]
            return _features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype)))

        return self._batched(images, embed)

    def text_features(self, texts: Sequence[str]) -> Any:
        def embed(chunk: Sequence[str]) -> Any:
            tokens = self.tokenizer(list(chunk), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            return _features(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                          attention_mask=tokens["attention_mask"].to(self.device)))

        return self._batched(texts, embed)

    def score(self, images: Sequence[Any], texts: Sequence[str], prompts: Sequence[Any]) -> list[dict[str, Any]]:
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        image = self.image_features(_rgb(images))
        text = self.text_features(texts)
        clip_t = (image * text).sum(-1)  # each image with its own prompt
        clip_i = (image @ self.references.T).mean(-1)
        return [{"clip_t": float(t), "clip_i": float(i)} for t, i in zip(clip_t, clip_i)]


class DinoScorer(Scorer, _Embedder):
    name = "dino"
    metrics = ("dino",)

    def __init__(self, model: str, references: Sequence[Any], device: str = "cpu", batch_size: int = 16) -> None:
        from transformers import AutoImageProcessor, AutoModel

        _Embedder.__init__(self, device, batch_size)
        self.model = load_pretrained("--dino_model", model, AutoModel).to(device).eval()
        self.processor = load_pretrained("--dino_model", model, AutoImageProcessor)
        self.references = self.image_features(_rgb(references))

    def image_features(self, images: Sequence[Any]) -> Any:
        def embed(chunk: Sequence[Any]) -> Any:
            pixels = self.processor(images=list(chunk), return_tensors="pt")["pixel_values"]
            out = self.model(pixel_values=pixels.to(self.device, self.model.dtype))
            pooled = getattr(out, "pooler_output", None)
            return pooled if pooled is not None else out.last_hidden_state[:, 0]

        return self._batched(images, embed)

    def score(self, images: Sequence[Any], texts: Sequence[str], prompts: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"dino": float(d)} for d in (self.image_features(_rgb(images)) @ self.references.T).mean(-1)]
