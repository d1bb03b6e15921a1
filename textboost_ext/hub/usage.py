"""The short "where is it, how do I use it" text printed at the end of training."""

from __future__ import annotations

from pathlib import Path

from textboost_ext.diffusers_lines import sdxl_embedding_lines
from textboost_ext.safetensors_header import read_raw_header


def _is_sdxl(lora_path: Path) -> bool:
    try:
        return str(read_raw_header(lora_path)[1].get("ss_base_model_version", "")).startswith("sdxl")
    except (OSError, ValueError):
        return False


def _diffusers_lines(adapter_dir: Path, lora_path: Path, embeddings: list[Path]) -> list[str]:
    first = f"  diffusers: pipe.load_lora_weights('{adapter_dir}', weight_name='{lora_path.name}')"
    if not embeddings:
        return [first]
    if not _is_sdxl(lora_path):
        return [first + f"; pipe.load_textual_inversion('{embeddings[0]}', token='{embeddings[0].stem}')"]
    indent = " " * len("  diffusers: ")  # SDXL: one file holds both encoders' rows, and encoder 2 must pool at EOS
    lines = [f"embedding = safetensors.torch.load_file('{embeddings[0]}')",
             *sdxl_embedding_lines("embedding", embeddings[0].stem)]
    return [first] + [indent + line for line in lines]


def usage_text(adapter_dir: Path, lora_path: Path, trigger: str | None) -> str:
    adapter_dir, lora_path = Path(adapter_dir), Path(lora_path)
    name = lora_path.stem
    embeddings = sorted((adapter_dir / "embeddings").glob("*.safetensors"))
    prompt_word = trigger or ""
    lines = [
        "",
        f"Adapter written: {lora_path}",
        f"  folder: {adapter_dir}",
    ]
    for emb in embeddings:
        lines.append(f"  embedding: {emb}")
    lines += [
        "",
        "Use it:",
        f"  A1111 / Forge: copy {lora_path.name} into models/Lora/"
        + (f" and {embeddings[0].name} into embeddings/" if embeddings else "")
        + f", then prompt: a photo of {prompt_word} <lora:{name}:1>".rstrip(),
        "  ComfyUI: LoraLoader (strength_clip 1.0)"
        + (f" + 'embedding:{embeddings[0].stem}' in the prompt" if embeddings else ""),
        *_diffusers_lines(adapter_dir, lora_path, embeddings),
        f"  check it:  textboost-hub verify {lora_path}",
        # the store is named explicitly (output_dir / adapters_dir): the command works from any folder
        f"  publish:   textboost-hub --adapters_dir {adapter_dir.resolve().parent} push {adapter_dir.name} "
        f"--repo_id YOUR_USER/{adapter_dir.name}",
    ]
    return "\n".join(lines)
