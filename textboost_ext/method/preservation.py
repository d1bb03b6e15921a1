"""Knowledge-preservation (KP) loss and its prompts (method.md "Knowledge-preservation loss").

Ordinary prompts are encoded by the adapted encoder (h) and the original one (h⁰, the same model with
the LoRA multiplier at 0); ``kp_loss`` keeps them close on exactly the conditioning the UNet consumes.
The prompt set is fixed, so h⁰ per prompt is computed once (``OriginalOutputCache``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

KpKind = Literal["cosine", "mse"]
KP_KINDS: tuple[str, ...] = ("cosine", "mse")
SHIPPED_PROMPTS = "data/preservation_prompts.txt"  # inside textboost_ext.method
JSONL_NO_CAPTION = "NONE"
CLASS_TEMPLATES: tuple[str, ...] = ("a photo of a {}", "a photo of the {}", "a good photo of a {}", "a close-up photo of a {}")


# ---- loss ------------------------------------------------------------------------------------
def kp_loss(
    adapted: Sequence[torch.Tensor],
    original: Sequence[torch.Tensor],
    kind: KpKind = "cosine",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KP distance between adapted and original conditioning, a float32 scalar.

    ``adapted``/``original``: the encoder's conditioning tensors, ``[B, L, D]`` sequences or ``[B, D]``
    pooled outputs (SDXL: ``[h1, h2, pooled]``). Per tensor, ``cosine`` is the mean over prompts and
    positions of 1 − cos(h, h⁰) over the hidden dim (a pooled tensor is one position per prompt);
    ``mse`` is the mean squared difference. The result is the mean over the tensors. ``original`` is
    detached: gradients reach only ``adapted``.

    ``mask`` ([B, L], True/1 = real token) restricts sequence tensors to those positions, averaging
    over all valid (prompt, position) pairs; pooled tensors ignore it.
    """
    if kind not in KP_KINDS:
        raise ValueError(f"kpl_type: unknown kind {kind!r}; use one of {KP_KINDS}")
    if len(adapted) != len(original) or not adapted:
        raise ValueError(f"kp_loss needs matching non-empty lists, got {len(adapted)} adapted and {len(original)} original tensors")
    terms = []
    for i, (h, h0) in enumerate(zip(adapted, original)):
        if h.shape != h0.shape or h.dim() not in (2, 3):
            raise ValueError(f"kp_loss tensor {i}: shapes {tuple(h.shape)} vs {tuple(h0.shape)}; expected equal [B, L, D] or [B, D]")
        h, h0 = h.float(), h0.detach().to(h.device, torch.float32)
        if kind == "cosine":
            per_position = 1.0 - F.cosine_similarity(h, h0, dim=-1, eps=1e-8)  # [B, L] or [B]
        else:
            per_position = (h - h0).pow(2).mean(dim=-1)
        if mask is not None and h.dim() == 3:
            if mask.shape != h.shape[:2]:
                raise ValueError(f"kp_loss mask shape {tuple(mask.shape)} does not match tensor {i} positions {tuple(h.shape[:2])}")
            weights = mask.to(h.device, torch.float32)
            terms.append((per_position * weights).sum() / weights.sum().clamp_min(1.0))
        else:
            terms.append(per_position.mean())
    return torch.stack(terms).mean()


def padding_mask(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """[B, L] bool: True up to and including each prompt's first EOS, False for the padding after it
    (works whether the pad token is EOS, as in CLIP ViT-L, or "!", as in OpenCLIP)."""
    is_eos = input_ids == eos_token_id
    if not bool(is_eos.any(dim=-1).all()):
        raise ValueError("padding_mask: a prompt has no EOS token; tokenise with padding and truncation")
    first_eos = is_eos.int().argmax(dim=-1, keepdim=True)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device).unsqueeze(0)
    return positions <= first_eos


# ---- prompt files ---------------------------------------------------------------------------------
def load_prompt_file(path: str | Path) -> list[str]:
    """Prompts from ``.txt`` (one per line; blank lines and ``#`` comments skipped) or ``.jsonl``
    (InstructPix2Pix style: both the ``input`` and ``output`` fields of each line; a null, empty or
    ``"NONE"`` field is skipped). Stripped, de-duplicated in first-seen order. Raises
    ``ValueError``/``FileNotFoundError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"preservation_prompts: file {str(path)!r} not found; give a .txt or .jsonl file, or leave it unset for the shipped set")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise ValueError(f"preservation_prompts: {str(path)!r} has extension {path.suffix!r}; use .txt (one prompt per line) or .jsonl (InstructPix2Pix 'input'/'output' fields)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"preservation_prompts: {str(path)!r} is not UTF-8 text ({err})") from None
    prompts = _parse_txt(text) if suffix == ".txt" else _parse_jsonl(text, str(path))
    if not prompts:
        raise ValueError(f"preservation_prompts: {str(path)!r} contains no prompts")
    return prompts


def shipped_prompts() -> list[str]:
    """The prompt set shipped in ``textboost_ext/method/data/preservation_prompts.txt``."""
    resource = resources.files("textboost_ext.method").joinpath(SHIPPED_PROMPTS)
    if not resource.is_file():
        raise FileNotFoundError(f"the shipped preservation prompt set ({SHIPPED_PROMPTS}) is missing from this installation; reinstall textboost-ext or set textboost.preservation_prompts to a .txt/.jsonl file")
    prompts = _parse_txt(resource.read_text(encoding="utf-8"))
    if not prompts:
        raise ValueError(f"the shipped preservation prompt set ({SHIPPED_PROMPTS}) is empty; reinstall textboost-ext or set textboost.preservation_prompts")
    return prompts


def _parse_txt(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return _dedupe(line for line in lines if line and not line.startswith("#"))


def _parse_jsonl(text: str, source: str) -> list[str]:
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"preservation_prompts: {source} line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"preservation_prompts: {source} line {number} is not a JSON object")
        fields = [record.get(key) for key in ("input", "output") if key in record]
        if not fields:
            raise ValueError(f"preservation_prompts: {source} line {number} has neither an 'input' nor an 'output' field")
        for value in fields:
            if value is None:
                continue  # InstructPix2Pix writes "output": null for edits without a caption
            if not isinstance(value, str):
                raise ValueError(f"preservation_prompts: {source} line {number}: 'input'/'output' must be strings, got {type(value).__name__}")
            found.append(value.strip())
    # "NONE" is InstructPix2Pix's other spelling of "no caption" (the official loader skips it too)
    return _dedupe(p for p in found if p and p != JSONL_NO_CAPTION)


def _dedupe(prompts: Iterator[str] | Sequence[str]) -> list[str]:
    return list(dict.fromkeys(prompts))


# ---- prompt sampling -----------------------------------------------------------------------------
class PreservationPromptSampler:
    """Per KP prompt: "" with probability ``empty_p``, a class template ("a photo of a dog") with
    probability ``class_p``, else a uniformly drawn prompt of the set. Without a class noun the
    class share goes to the prompt set (there is no class to name)."""

    def __init__(
        self,
        prompts: Sequence[str],
        class_noun: str | None,
        empty_p: float = 0.1,
        class_p: float = 0.1,
        class_templates: Sequence[str] = CLASS_TEMPLATES,
    ) -> None:
        self.prompts = list(prompts)
        if not self.prompts:
            raise ValueError("PreservationPromptSampler: the prompt set is empty")
        for name, value in (("kpl_empty_p", empty_p), ("kpl_class_p", class_p)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if empty_p + class_p > 1.0:
            raise ValueError(f"kpl_empty_p + kpl_class_p must be <= 1, got {empty_p} + {class_p}")
        noun = class_noun.strip() if class_noun else ""
        self.class_prompts = [_fill_class(t, noun) for t in class_templates] if noun else []
        self.empty_p = empty_p
        self.class_p = class_p if self.class_prompts else 0.0

    def sample(self, n: int, generator: torch.Generator | None = None) -> list[str]:
        device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(n, generator=generator, device=device).tolist()
        picks = torch.randint(len(self.prompts), (n,), generator=generator, device=device).tolist()
        class_picks = torch.randint(max(1, len(self.class_prompts)), (n,), generator=generator, device=device).tolist()
        out = []
        for ui, pi, ci in zip(u, picks, class_picks):
            if ui < self.empty_p:
                out.append("")
            elif ui < self.empty_p + self.class_p:
                out.append(self.class_prompts[ci])
            else:
                out.append(self.prompts[pi])
        return out


def _fill_class(template: str, noun: str) -> str:
    if template.count("{}") != 1:
        raise ValueError(f"class template {template!r} must contain exactly one '{{}}'")
    text = template.replace("{}", noun)
    # "a apple" -> "an apple" (first letter heuristic, enough for class nouns)
    if noun[:1].lower() in "aeiou":
        text = text.replace(f" a {noun}", f" an {noun}")
        if text.startswith(f"a {noun}"):
            text = "an" + text[1:]
    return text


# ---- cache of the original encoder's outputs ----------------------------------------------------------------
class OriginalOutputCache:
    """prompt -> the ORIGINAL encoder's conditioning (list of tensors, one per conditioning output).

    ``get(prompts)`` computes the misses in one call of ``compute(missing_prompts)`` (which must return
    batch-first tensors from the encoder with adapters off; it runs under ``no_grad``), stores each
    prompt's slices detached, and returns the batch stacked in order. Storage is on the device the
    outputs were computed on unless ``storage_device`` is given (e.g. "cpu" to save GPU memory: SDXL
    fp32 is ~0.6 MB per prompt). ``hits``/``misses`` count prompt lookups; a prompt repeated inside
    one batch costs one miss then hits. ``enabled=False`` recomputes every time (all misses).
    """

    def __init__(
        self,
        compute: Callable[[list[str]], Sequence[torch.Tensor]],
        storage_device: torch.device | str | None = None,
        enabled: bool = True,
    ) -> None:
        self.compute = compute
        self.storage_device = torch.device(storage_device) if storage_device is not None else None
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self._store: dict[str, tuple[torch.Tensor, ...]] = {}

    def get(self, prompts: Sequence[str], device: torch.device | str | None = None, length: int | None = None) -> list[torch.Tensor]:
        """The batch's outputs, stacked in order. ``length``: sequence outputs (``[L, D]`` rows) are cut or
        zero-padded to ``length`` positions, for a loss that reads only positions up to each prompt's end
        (the rows may then have been computed on a prefix, each at least as long as its own prompt)."""
        prompts = list(prompts)
        if not prompts:
            raise ValueError("OriginalOutputCache.get: no prompts")
        store = self._store if self.enabled else {}
        missing = [p for p in dict.fromkeys(prompts) if p not in store]
        self.misses += len(missing)
        self.hits += len(prompts) - len(missing)
        if missing:
            with torch.no_grad():
                outputs = list(self.compute(missing))
            for j, out in enumerate(outputs):
                if out.shape[0] != len(missing):
                    raise ValueError(f"compute returned {out.shape[0]} rows in output {j} for {len(missing)} prompts")
            for i, prompt in enumerate(missing):
                rows = tuple(out[i].detach().clone() for out in outputs)
                store[prompt] = tuple(r.to(self.storage_device) for r in rows) if self.storage_device else rows
        batch = [store[p] for p in prompts]
        stacked = []
        for k in range(len(batch[0])):
            rows = [row[k] if length is None or row[k].dim() < 2 else _fit_length(row[k], length) for row in batch]
            stacked.append(torch.stack(rows).to(device) if device is not None else torch.stack(rows))
        return stacked

    def __getitem__(self, prompt: str) -> list[torch.Tensor]:
        """A cached prompt's outputs (no batch dim); ``KeyError`` if not cached (does not compute)."""
        return list(self._store[prompt])

    def __contains__(self, prompt: object) -> bool:
        return prompt in self._store

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def _fit_length(row: torch.Tensor, length: int) -> torch.Tensor:
    """A sequence row ``[L, D]`` cut or zero-padded to ``[length, D]``."""
    if row.shape[0] >= length:
        return row[:length]
    return torch.cat([row, row.new_zeros((length - row.shape[0], *row.shape[1:]))])
