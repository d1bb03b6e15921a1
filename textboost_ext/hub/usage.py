"""The short "where is it, how do I use it" text printed at the end of training."""

from __future__ import annotations

from pathlib import Path


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
        f"  diffusers: pipe.load_lora_weights('{adapter_dir}', weight_name='{lora_path.name}')"
        + (f"; pipe.load_textual_inversion('{embeddings[0]}', token='{embeddings[0].stem}')" if embeddings else ""),
        f"  check it:  textboost-hub verify {lora_path}",
        f"  publish:   textboost-hub push {name} --repo_id YOUR_USER/{name}",
    ]
    return "\n".join(lines)
