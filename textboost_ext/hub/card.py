"""The Hugging Face model card (README.md) of an adapter, built from its metadata and samples.

Front matter (what the Hub indexes): ``base_model``, ``license``, ``tags``, ``instance_prompt`` (the
trigger), ``widget`` (sample prompt + image pairs, shown by ``<Gallery />``). Body: how to use the files
in A1111/Forge, ComfyUI and diffusers, the training settings read from the LoRA metadata, the citation.
Nothing here reads environment variables or configs, so no secret can reach a card.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from textboost_ext.atomic_write import atomic_write_text
from textboost_ext.hub.manifest import update_manifest
from textboost_ext.diffusers_lines import sdxl_embedding_lines
from textboost_ext.hub.errors import AdapterFormatError
from textboost_ext.hub.samples import SampleImage, final_samples, read_samples
from textboost_ext.hub.store import AdapterInfo, embedding_files, read_adapter_folder

DEFAULT_BASE_MODEL = {
    "sd1": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd2": "stabilityai/stable-diffusion-2-1-base",
    "sd2v": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
LICENSE = {"sd1": "creativeml-openrail-m", "sd2": "openrail++", "sd2v": "openrail++", "sdxl": "openrail++"}
FAMILY_LABEL = {"sd1": "Stable Diffusion 1.x", "sd2": "Stable Diffusion 2.x (512)", "sd2v": "Stable Diffusion 2.x (768-v)", "sdxl": "Stable Diffusion XL"}
# runwayml deleted its repo; the same weights live on under this id.
_RENAMED_REPOS = {"runwayml/stable-diffusion-v1-5": "stable-diffusion-v1-5/stable-diffusion-v1-5"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth")

CITATION = """@article{park2024textboost,
  title   = {TextBoost: Towards One-Shot Personalization of Text-to-Image Models via Fine-tuning Text Encoder},
  author  = {Park, NaHyeon and Kim, Kunhee and Shim, Hyunjung},
  journal = {arXiv preprint arXiv:2409.08248},
  year    = {2024}
}"""

# (label, metadata keys tried in order) for the settings table; ss_textboost_* keys are added after these.
_SETTINGS_ROWS = [
    ("steps", ("ss_steps", "ss_max_train_steps")),
    ("learning rate (LoRA)", ("ss_text_encoder_lr", "ss_learning_rate")),
    ("learning rate (embedding)", ("ss_textboost_emb_learning_rate",)),
    ("rank (network_dim)", ("ss_network_dim",)),
    ("alpha (network_alpha)", ("ss_network_alpha",)),
    ("λ (knowledge preservation weight)", ("ss_textboost_kpl_weight",)),
    ("timestep sampling", ("ss_textboost_timestep_sampling",)),
    ("augmentations", ("ss_textboost_augment",)),
    ("seed", ("ss_seed",)),
    ("batch size", ("ss_total_batch_size", "ss_batch_size_per_device")),
    ("resolution", ("ss_resolution",)),
    ("optimizer", ("ss_optimizer",)),
    ("mixed precision", ("ss_mixed_precision",)),
    ("training images", ("ss_num_train_images",)),
    ("base checkpoint", ("ss_sd_model_name",)),
]


def looks_like_hub_id(name: str) -> bool:
    """``owner/repo`` that is not a weights file name and not an existing local path."""
    name = name.strip()
    return bool(_HUB_ID.match(name)) and not name.lower().endswith(_WEIGHT_SUFFIXES) and ".." not in name and not Path(name).exists()


def base_model_for(info: AdapterInfo) -> str:
    """Hub id of the base model: ``ss_sd_model_name`` when it is one, else the family's reference model."""
    name = info.metadata.get("ss_sd_model_name", "").strip()
    if looks_like_hub_id(name):
        return _RENAMED_REPOS.get(name, name)
    if info.family not in DEFAULT_BASE_MODEL:
        raise AdapterFormatError(
            f"{info.lora_file}: cannot tell the base model family (no ss_base_model_version / modelspec.architecture "
            "metadata); re-export the adapter or pass base_model= / --base_model"
        )
    return DEFAULT_BASE_MODEL[info.family]


def is_demo_adapter(info: AdapterInfo) -> bool:
    """Trained on a ``builtin:`` base (a tiny random-weight model, or the toy world's test-instrument base):
    a demo, not an adapter for any real model."""
    return info.metadata.get("ss_sd_model_name", "").startswith("builtin:")


def render_model_card(
    info: AdapterInfo,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    samples: Sequence[SampleImage] | None = None,
    embedding_tokens: Sequence[str] | None = None,
) -> str:
    """README.md text. ``samples``/``embedding_tokens`` default to what is in ``info.folder``."""
    from huggingface_hub import ModelCardData

    base = base_model or base_model_for(info)
    family = info.family or "sd1"  # only reachable with an explicit base_model; SD1 is what A1111 assumes then
    tokens = list(embedding_tokens) if embedding_tokens is not None else [p.stem for p in embedding_files(info.folder)]
    shown = final_samples(list(samples) if samples is not None else read_samples(info.folder))
    trigger = info.trigger or (tokens[0] if tokens else None)
    demo = is_demo_adapter(info)
    tags = ["text-to-image", "lora", "template:sd-lora", "stable-diffusion-xl" if family == "sdxl" else "stable-diffusion",
            "textboost", "diffusers"] + (["textual-inversion"] if tokens else []) + (["demo"] if demo else [])
    data = ModelCardData(
        # a demo adapter (a builtin: base) loads into no real model: the Hub must not list it under one
        base_model=None if demo else base,
        license=LICENSE[family],
        library_name="diffusers",
        pipeline_tag="text-to-image",
        tags=tags,
        instance_prompt=trigger,
        widget=_widget(info, shown, trigger),
    )
    trained_on = info.metadata.get("ss_sd_model_name", "")
    real_family = {'sd1': 'SD 1.x', 'sd2': 'SD 2.x', 'sd2v': 'SD 2.x', 'sdxl': 'SDXL'}.get(family, family)
    if trained_on == "builtin:toyworld":
        demo_warning = (
            "> **Demo adapter.** Trained on `builtin:toyworld`, textboost-ext's tiny pretrained toy base (32x32 "
            "images of one shape on a flat background): a test instrument that makes one-shot personalization "
            f"measurable on a CPU, not a product model. Its tensors do not load into a real {real_family} checkpoint."
        )
    elif trained_on.startswith("builtin:"):
        demo_warning = (
            f"> **Demo adapter.** Trained on the built-in tiny random-weight model `{trained_on}` to show the "
            f"pipeline; its tensors have that model's sizes and do not load into a real {real_family} checkpoint."
        )
    else:
        demo_warning = ""
    body = [
        f"# {info.name}",
        "<Gallery />",
        demo_warning,
        _summary(info, family, base, trigger),
        _files_section(info, tokens),
        _usage_section(info, family, base, repo_id or f"<your-username>/{info.name}", tokens, trigger),
        _settings_section(info.metadata),
        _citation_section(),
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(part.strip() for part in body if part) + "\n"


def write_model_card(adapter_dir: str | Path, *, repo_id: str | None = None, base_model: str | None = None) -> Path:
    """(Re)write ``<adapter_dir>/README.md`` atomically and return its path."""
    info = read_adapter_folder(Path(adapter_dir))
    text = render_model_card(info, repo_id=repo_id, base_model=base_model)
    target = info.folder / "README.md"
    atomic_write_text(target, text)
    update_manifest(info.folder, [target])  # a complete adapter stays complete
    return target


def diffusers_snippet(
    family: str, base_model: str, repo: str, lora_file: str, token: str | None, prompt: str,
    device: str = "cuda", dtype: str = "torch.float16", steps: int = 30,
) -> str:
    """Python that loads the adapter with diffusers (the card shows it; the tests run it on a tiny model)."""
    pipeline = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    q = _py_str
    lines = [
        "import torch",
        f"from diffusers import {pipeline}",
        "",
        f"pipe = {pipeline}.from_pretrained({q(base_model)}, torch_dtype={dtype}).to({q(device)})",
        f"pipe.load_lora_weights({q(repo)}, weight_name={q(lora_file)})",
    ]
    if token and family == "sdxl":  # one file holds both encoders' vectors: load each into its encoder
        lines[1:1] = ["from huggingface_hub import hf_hub_download", "from safetensors.torch import load_file"]
        lines += [
            f"embedding = load_file(hf_hub_download({q(repo)}, {q(f'embeddings/{token}.safetensors')}))",
            *sdxl_embedding_lines("embedding", token),  # incl. the pooling line SDXL needs once a token is added
        ]
    elif token:
        lines.append(f"pipe.load_textual_inversion({q(repo)}, weight_name={q(f'embeddings/{token}.safetensors')}, token={q(token)})")
    lines.append(f"image = pipe({q(prompt)}, num_inference_steps={steps}).images[0]")
    return "\n".join(lines)


# ---- sections --------------------------------------------------------------------------------------
def _widget(info: AdapterInfo, shown: list[SampleImage], trigger: str | None) -> list[dict]:
    if shown:
        return [{"text": s.prompt, "output": {"url": s.repo_path}} for s in shown]
    preview = info.lora_file.with_suffix(".preview.png")
    if preview.is_file():
        return [{"text": trigger or info.name, "output": {"url": preview.name}}]
    return []


def _summary(info: AdapterInfo, family: str, base: str, trigger: str | None) -> str:
    text = (
        f"A [TextBoost](https://arxiv.org/abs/2409.08248) adapter for {FAMILY_LABEL[family]} (base model "
        f"[{base}](https://huggingface.co/{base})): a LoRA on the text encoder plus a learned token embedding, "
        "trained from one reference image with textboost-ext. The UNet is unchanged, "
        "so prompts keep steering style, pose and scene."
    )
    if trigger:
        text += f"\n\n**Trigger:** write `{trigger}` in your prompt, e.g. `a photo of {trigger} on the beach`."
    return text


def _files_section(info: AdapterInfo, tokens: list[str]) -> str:
    rows = [(info.lora_file.name, "text-encoder LoRA, kohya format (A1111, Forge, ComfyUI, diffusers)")]
    rows += [(f"embeddings/{t}.safetensors", f"learned embedding of `{t}` (goes into your WebUI's `embeddings/`)") for t in tokens]
    for path, what in ((info.lora_file.with_suffix(".json"), "A1111 metadata sidecar (activation text, preferred weight)"),
                       (info.lora_file.with_suffix(".preview.png"), "preview image"),
                       (info.folder / "training_config.toml", "resolved training configuration")):
        if path.is_file():
            rows.append((path.name, what))
    if (info.folder / "samples").is_dir():
        rows.append(("samples/", "images sampled during training (prompts in samples/index.json)"))
    return "## Files\n\n| file | what it is |\n|---|---|\n" + "\n".join(f"| `{f}` | {w} |" for f, w in rows)


def _usage_section(info: AdapterInfo, family: str, base: str, repo: str, tokens: list[str], trigger: str | None) -> str:
    alias = info.lora_file.stem
    token = tokens[0] if tokens else None
    subject = trigger or token or "your subject"  # the trigger phrase ("tbmug mug"), as in instance_prompt
    a1111 = [
        "### AUTOMATIC1111 / Forge",
        f"1. Put `{info.lora_file.name}` into `models/Lora/`"
        + (f" and `embeddings/{token}.safetensors` into the WebUI's `embeddings/` folder." if token else "."),
        f"2. Prompt: `a photo of {subject}, <lora:{alias}:1>`",
    ]
    comfy = [
        "### ComfyUI",
        f"1. Put `{info.lora_file.name}` into `models/loras/`"
        + (f" and `embeddings/{token}.safetensors` into `models/embeddings/`." if token else "."),
        "2. Add a **LoraLoader** node between *Load Checkpoint* and *CLIP Text Encode*; this LoRA changes only the "
        "text encoder, so `strength_clip` is what matters (1.0).",
        f"3. Prompt: `a photo of {_comfy_subject(subject, token)}`",
    ]
    code = diffusers_snippet(family, base, repo, info.lora_file.name, token, f"a photo of {subject} on the beach")
    diffusers = ["### diffusers", "```python", code, "```"]
    return "## How to use\n\n" + "\n".join(a1111) + "\n\n" + "\n".join(comfy) + "\n\n" + "\n".join(diffusers)


def _comfy_subject(subject: str, token: str | None) -> str:
    """ComfyUI names an embedding as ``embedding:NAME`` inside the prompt."""
    if not token:
        return subject
    words = [f"embedding:{w}" if w == token else w for w in subject.split()]
    return " ".join(words) if f"embedding:{token}" in words else f"embedding:{token}"


def _settings_section(metadata: dict[str, str]) -> str:
    rows: list[tuple[str, str]] = []
    used: set[str] = set()
    for label, keys in _SETTINGS_ROWS:
        key = next((k for k in keys if metadata.get(k) not in (None, "", "None")), None)
        if key is not None:
            rows.append((label, metadata[key]))
            used.add(key)
    for key in sorted(k for k in metadata if k.startswith("ss_textboost_") and k not in used):
        rows.append((key.removeprefix("ss_textboost_"), metadata[key]))
    if not rows:
        return "## Training settings\n\nThe LoRA file carries no training metadata."
    table = "\n".join(f"| {label} | {_cell(value)} |" for label, value in rows)
    return "## Training settings\n\n| setting | value |\n|---|---|\n" + table


def _citation_section() -> str:
    return (
        "## Method\n\nNaHyeon Park, Kunhee Kim, Hyunjung Shim. *TextBoost: Towards One-Shot Personalization of "
        "Text-to-Image Models via Fine-tuning Text Encoder.* arXiv:2409.08248, 2024.\n\n```bibtex\n" + CITATION + "\n```"
    )


def _py_str(value: str) -> str:
    """A double-quoted Python string literal (JSON string syntax is valid Python)."""
    return json.dumps(value, ensure_ascii=False)


def _cell(value: str, limit: int = 200) -> str:
    value = " ".join(value.split()).replace("|", "\\|").replace("`", "'")
    return value if len(value) <= limit else value[: limit - 1] + "…"
