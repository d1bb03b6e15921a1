"""Convert the official TextBoost output (github.com/nahyeonkaty/textboost) into our kohya LoRA + embeddings.

The official trainer writes an output folder with:
- ``text_encoder/``: a PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors`` or
  ``adapter_model.bin``), keys ``[base_model.model.][text_model.]encoder.layers.<i>.<mod>.lora_A/B.weight``,
  scale ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with rsLoRA) from the config;
- ``<token>.bin`` per learned token (``torch.save({"<token>": tensor})``, tensor [dim] or [n, dim]; the
  file stem is the token without ``<>``).
SRC may be that output folder or the adapter folder itself (then embeddings are looked for next to it).

Its later versions train q/k/v only. Such a file would be skipped by A1111 on SD 2.x (attention LoRA
needs q, k, v AND out) and is not detected by diffusers, so we add the missing projections as zero
LoRA (down = up = 0, an exact no-op) and report it (``ConvertResult.notes`` and the metadata key
``ss_textboost_zero_filled_modules``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from textboost_ext.export.convert import ConvertResult, fill_missing_attention, parse_peft_state_dict
from textboost_ext.export.checklist import module_name
from textboost_ext.export.metadata_checks import embedding_name_problem
from textboost_ext.export.embeddings import write_embedding_file
from textboost_ext.export.lora_file import DEFAULT_SAVE_DTYPE, write_lora_file
from textboost_ext.export.metadata import TrainingInfo, build_metadata

# accelerate / trainer state files that can sit next to the token files
NOT_EMBEDDINGS = {"optimizer.bin", "scheduler.bin", "pytorch_model.bin", "scaler.pt", "random_states_0.pkl"}
# peft saves the whole (resized) token-embedding matrix when the trainer added tokens; the learned rows are
# also in the <token>.bin files, which say which token they belong to, so the matrix is not needed.
TOKEN_EMBEDDING_MATRIX = re.compile(r"^(?:base_model\.model\.)?(?:text_model\.)?embeddings\.token_embedding\.weight$")


def _adapter_dirs(src: Path) -> list[Path]:
    if (src / "adapter_config.json").is_file():
        return [src]
    dirs = [src / name for name in ("text_encoder", "text_encoder_2") if (src / name / "adapter_config.json").is_file()]
    if not dirs:
        raise FileNotFoundError(f"{src}: no adapter_config.json here or in {src / 'text_encoder'}; is this a TextBoost output folder?")
    return dirs


def _load_weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    st, pt = adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_model.bin"
    if st.is_file():
        from safetensors.torch import load_file

        return load_file(str(st), device="cpu")
    if pt.is_file():
        data = torch.load(pt, map_location="cpu", weights_only=True)
        if not isinstance(data, dict):
            raise ValueError(f"{pt}: expected a state dict, got {type(data).__name__}")
        return data
    raise FileNotFoundError(f"{adapter_dir}: neither adapter_model.safetensors nor adapter_model.bin")


def _kohya_alpha(config: Mapping[str, Any], source: Path) -> tuple[int, float]:
    """(rank, kohya alpha) such that kohya's alpha / rank equals peft's scaling."""
    if config.get("use_dora"):
        raise ValueError(f"{source}: DoRA adapters have no kohya LoRA equivalent")
    for pattern in ("rank_pattern", "alpha_pattern"):
        if config.get(pattern):
            raise ValueError(f"{source}: per-module {pattern} is not supported (one rank and one alpha per file)")
    rank, lora_alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
    scaling = lora_alpha / math.sqrt(rank) if config.get("use_rslora") else lora_alpha / rank
    return rank, scaling * rank


def _adapter_to_kohya(adapter_dir: Path, prefix: str, notes: list[str]) -> tuple[dict[str, torch.Tensor], int, float]:
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    rank, alpha = _kohya_alpha(config, adapter_dir)
    weights = _load_weights(adapter_dir)
    matrix = [k for k in weights if TOKEN_EMBEDDING_MATRIX.match(k)]
    if matrix:
        notes.append(f"ignored {matrix[0]} in {adapter_dir.name}/ (the learned vectors are taken from the <token>.bin files)")
    groups = parse_peft_state_dict({k: v for k, v in weights.items() if k not in matrix}, str(adapter_dir))
    sd: dict[str, torch.Tensor] = {}
    for (_, layer, module), parts in groups.items():
        if set(parts) - {"alpha"} != {"lora_down.weight", "lora_up.weight"}:
            raise ValueError(f"{adapter_dir}: layer {layer} {module} lacks lora_A or lora_B")
        if parts["lora_down.weight"].shape[0] != rank:
            raise ValueError(f"{adapter_dir}: layer {layer} {module} has rank {parts['lora_down.weight'].shape[0]}, config r={rank}")
        name = module_name(prefix, layer, module)
        sd[f"{name}.lora_down.weight"] = parts["lora_down.weight"].float()
        sd[f"{name}.lora_up.weight"] = parts["lora_up.weight"].float()
        sd[f"{name}.alpha"] = torch.tensor(alpha, dtype=torch.float32)
    return sd, rank, alpha


def _read_token_files(folder: Path, rename: Mapping[str, str], skip: set[str]) -> dict[str, torch.Tensor]:
    """{embedding name: [n, dim]} from the ``<token>.bin`` files; names are validated before anything is written."""
    found: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.bin")):
        if file.name in NOT_EMBEDDINGS or file.name.startswith("adapter_model"):
            continue
        data = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
            raise ValueError(f"{file}: expected a {{token: tensor}} dict (official TextBoost token file)")
        for token, tensor in data.items():
            bare = token.strip("<>")
            if token in skip or bare in skip or file.stem in skip:
                continue
            name = rename.get(token, rename.get(bare, rename.get(file.stem, bare if len(data) > 1 else file.stem)))
            problem = embedding_name_problem(name)
            if problem is not None:
                raise ValueError(f"{file}: {problem}. Rename it (--rename {bare}=NEWNAME) or skip it (--skip-token {bare})")
            if name in found:
                raise ValueError(f"{file}: embedding name {name!r} appears twice")
            found[name] = tensor.detach().float().reshape(-1, tensor.shape[-1])
    return found


def convert_official_textboost(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    family: str | None = None,
    *,
    v_prediction: bool = False,
    save_dtype: torch.dtype = DEFAULT_SAVE_DTYPE,
    rename: Mapping[str, str] | None = None,
    skip_tokens: set[str] | None = None,
) -> ConvertResult:
    """Write ``dst`` (kohya LoRA) and ``<name>.safetensors`` embeddings next to it from an official output."""
    src, dst = Path(src), Path(dst)
    adapter_dirs = _adapter_dirs(src)
    prefixes = ["lora_te1", "lora_te2"] if len(adapter_dirs) == 2 else ["lora_te"]
    sd: dict[str, torch.Tensor] = {}
    ranks, alphas = set(), set()
    adapter_notes: list[str] = []
    for adapter_dir, prefix in zip(adapter_dirs, prefixes):
        part, rank, alpha = _adapter_to_kohya(adapter_dir, prefix, adapter_notes)
        sd.update(part)
        ranks.add(rank)
        alphas.add(alpha)
    if len(ranks) != 1 or len(alphas) != 1:
        raise ValueError(f"{src}: the two encoders' adapters differ in rank/alpha ({ranks}/{alphas}); one of each per file")
    hidden = next(v.shape[1] for k, v in sorted(sd.items()) if k.endswith(".lora_down.weight") and "mlp_fc2" not in k)
    family = family or ("sdxl" if len(adapter_dirs) == 2 else {768: "sd1", 1024: "sd2"}.get(int(hidden)))
    if family is None:
        raise ValueError(f"{src}: cannot tell the base family from hidden size {hidden}; pass --arch sd1|sd2|sdxl")
    if (family == "sdxl") != (len(adapter_dirs) == 2):
        raise ValueError(f"{src}: {len(adapter_dirs)} text-encoder adapter(s) found, which does not fit family {family!r}")
    token_root = src if adapter_dirs[0] != src else src.parent
    tokens = _read_token_files(token_root, rename or {}, skip_tokens or set())
    wrong = [f"{n} ({v.shape[1]})" for n, v in tokens.items() if v.shape[1] != hidden]
    if wrong:
        raise ValueError(f"{src}: token vectors {wrong} do not match the text encoder width {hidden}")
    if tokens and family == "sdxl":
        raise ValueError(f"{src}: official token files hold one vector set; SDXL embeddings need clip_l AND clip_g")
    notes = [f"converted from the official TextBoost output {src} (rank {ranks.pop()}, alpha {alphas.pop()})", *adapter_notes]
    added = fill_missing_attention(sd)
    if added:
        kinds = sorted({n.split("self_attn_")[1] for n in added})
        notes.append(f"zero-filled {len(added)} missing attention projection(s) ({', '.join(kinds)}) with down = up = 0 "
                     f"(exact no-op) so A1111/diffusers load the q/k/v deltas")
    first = sd[next(k for k in sorted(sd) if k.endswith(".lora_down.weight"))]
    info = TrainingInfo(output_name=dst.stem, family=family, v_prediction=v_prediction, network_dim=int(first.shape[0]),
                        network_alpha=float(next(v for k, v in sorted(sd.items()) if k.endswith(".alpha"))),
                        trigger_phrase=" ".join(tokens) or None,
                        textboost={"converted_from": "official-textboost",
                                   "zero_filled_modules": list(added)})
    written = [dst]
    write_lora_file(dst, sd, build_metadata(info), save_dtype=save_dtype)
    for name, vectors in tokens.items():
        written.append(write_embedding_file(dst.with_name(f"{name}.safetensors"), {"emb_params": vectors}, name, family,
                                            v_prediction=v_prediction))
        notes.append(f"embedding {name!r}: {vectors.shape[0]} vector(s) of {vectors.shape[1]}")
    return ConvertResult(written, notes)
