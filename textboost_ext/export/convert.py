"""kohya <-> diffusers/peft text-encoder LoRA conversion.

diffusers/peft keys: ``text_encoder[_2].[text_model.]encoder.layers.<i>.<self_attn.q_proj|...|mlp.fc2>.lora_A.weight``
(``lora_B`` for up; old diffusers ``lora_linear_layer.down/up``; peft ``base_model.model.`` prefix and
``.default`` adapter segment accepted; the ``text_model.`` level is optional because transformers 5
dropped it from ``CLIPTextModel``). We always WRITE ``text_model.``: diffusers accepts it for both
layouts and ComfyUI/Forge only map that spelling.

Alpha. A diffusers-format file has no alpha: diffusers (and ComfyUI, without an ``.alpha`` key) use
scale 1. So kohya -> diffusers multiplies ``lora_up`` by alpha/r (output unchanged; exact when alpha/r
is a power of two, e.g. alpha = r) and records the original alpha in the metadata
(``textboost.kohya_alpha``, ``textboost.lora_up_scale``); diffusers -> kohya undoes that when the
record is present, else writes alpha = rank (scale 1, exactly what diffusers computed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from textboost_ext.export.checklist import ATTENTION_MODULES, group_modules, module_name
from textboost_ext.export.metadata_checks import detect_family
from textboost_ext.export.lora_file import ALPHA_DTYPE, alpha_matches_metadata, write_lora_file
from textboost_ext.export.metadata import TrainingInfo, build_metadata
from textboost_ext.export.safetensors_io import atomic_save_safetensors, load_tensors, read_header

PEFT_KEY = re.compile(
    r"^(?:(?P<te>text_encoder(?:_2)?)\.)?(?:base_model\.model\.)?(?:text_model\.)?encoder\.layers\.(?P<layer>\d+)\."
    r"(?P<mod>self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])\."
    r"(?:(?P<part>lora_A|lora_B|lora_linear_layer\.down|lora_linear_layer\.up)(?:\.default)?\.weight|(?P<alpha>alpha))$"
)
_PART = {"lora_A": "lora_down.weight", "lora_linear_layer.down": "lora_down.weight",
         "lora_B": "lora_up.weight", "lora_linear_layer.up": "lora_up.weight"}
ALPHA_KEY, SCALE_KEY = "textboost.kohya_alpha", "textboost.lora_up_scale"
_DIFFUSERS_ONLY_META = ("format", ALPHA_KEY, SCALE_KEY)
TE_OF_PREFIX = {"lora_te": "text_encoder", "lora_te1": "text_encoder", "lora_te2": "text_encoder_2"}


@dataclass
class ConvertResult:
    paths: list[Path]
    notes: list[str] = field(default_factory=list)


def kohya_module_kind(peft_module: str) -> str:
    return peft_module.replace(".", "_")  # self_attn.q_proj -> self_attn_q_proj, mlp.fc1 -> mlp_fc1


def peft_module_path(kohya_module: str) -> str:
    return kohya_module.replace("self_attn_", "self_attn.").replace("mlp_", "mlp.")


def parse_peft_state_dict(tensors: Mapping[str, torch.Tensor], source: str) -> dict[tuple[str | None, int, str], dict[str, torch.Tensor]]:
    """Group diffusers/peft keys as {(encoder name or None, layer, kohya module): {down/up/alpha}}."""
    groups: dict[tuple[str | None, int, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in tensors.items():
        m = PEFT_KEY.match(key)
        if m is None:
            unknown.append(key)
            continue
        part = "alpha" if m.group("alpha") else _PART[m.group("part")]
        groups.setdefault((m.group("te"), int(m.group("layer")), kohya_module_kind(m.group("mod"))), {})[part] = value
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} key(s) are not text-encoder LoRA weights, e.g. {unknown[:3]} "
                         f"(UNet LoRA, DoRA, biases and embedding LoRA cannot be exported to a text-encoder LoRA)")
    return groups


def fill_missing_attention(sd: dict[str, torch.Tensor]) -> list[str]:
    """Add zero LoRA (down = up = 0: an exact no-op) for missing q/k/v/out so every layer has all four.

    Returns the kohya module names added. A1111 skips a layer's attention LoRA on SD 2.x / SDXL encoder 2
    unless all four exist, and diffusers cannot detect q/k/v-only files, so the real q/k/v deltas would
    otherwise be lost there.
    """
    groups = group_modules(sd)
    layers: dict[tuple[str, int], set[str]] = {}
    for prefix, layer, module in groups:
        if module in ATTENTION_MODULES:
            layers.setdefault((prefix, layer), set()).add(module)
    added = []
    for (prefix, layer), present in sorted(layers.items()):
        template = groups[(prefix, layer, sorted(present)[0])]
        rank, hidden = template["lora_down.weight"].shape
        dtype = template["lora_down.weight"].dtype
        for module in ATTENTION_MODULES:
            if module in present:
                continue
            name = module_name(prefix, layer, module)
            sd[f"{name}.lora_down.weight"] = torch.zeros(rank, hidden, dtype=dtype)
            sd[f"{name}.lora_up.weight"] = torch.zeros(hidden, rank, dtype=dtype)
            sd[f"{name}.alpha"] = template["alpha"].clone()
            added.append(name)
    return added


def kohya_to_diffusers(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    groups = group_modules(tensors)
    if len(groups) * 3 != len(tensors):
        raise ValueError("the kohya file has keys outside complete text-encoder LoRA modules; run verify on it first")
    alphas = {float(p["alpha"].float()) for p in groups.values()}
    ranks = {int(p["lora_down.weight"].shape[0]) for p in groups.values()}
    if len(alphas) != 1 or len(ranks) != 1:
        raise ValueError(f"kohya file has several ranks/alphas ({sorted(ranks)}/{sorted(alphas)}); diffusers cannot represent that")
    alpha, rank = alphas.pop(), ranks.pop()
    scale = alpha / rank
    out: dict[str, torch.Tensor] = {}
    for (prefix, layer, module), parts in groups.items():
        base = f"{TE_OF_PREFIX[prefix]}.text_model.encoder.layers.{layer}.{peft_module_path(module)}"
        up = parts["lora_up.weight"]
        out[f"{base}.lora_A.weight"] = parts["lora_down.weight"]
        out[f"{base}.lora_B.weight"] = up if scale == 1.0 else (up.float() * scale).to(up.dtype)
    meta = {k: v for k, v in metadata.items() if not k.startswith("sshs_")}
    meta.update({"format": "pt", ALPHA_KEY: repr(alpha), SCALE_KEY: repr(scale)})
    return out, meta


def diffusers_to_kohya(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], output_name: str, family: str | None = None,
    source: str = "<diffusers state dict>",
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """kohya state dict + full metadata + notes; missing attention projections are zero-filled."""
    groups = parse_peft_state_dict(tensors, source)
    encoders = {te for te, _, _ in groups}
    meta_family = detect_family(metadata, {})
    if family is not None and meta_family is not None and family != meta_family:
        raise ValueError(f"{source}: --arch {family} but its metadata says {meta_family}")
    family = family or meta_family or ("sdxl" if "text_encoder_2" in encoders else None)
    if family is None:
        hidden = {p["lora_down.weight"].shape[1] for (_, _, m), p in groups.items() if not m.startswith("mlp") and "lora_down.weight" in p}
        family = {768: "sd1", 1024: "sd2"}.get(next(iter(hidden))) if len(hidden) == 1 else None
    if family is None:
        raise ValueError(f"{source}: cannot tell SD 1.x from SD 2.x; pass --arch sd1|sd2|sdxl")
    notes: list[str] = []
    recorded_alpha, recorded_scale = metadata.get(ALPHA_KEY), metadata.get(SCALE_KEY)
    sd: dict[str, torch.Tensor] = {}
    for (te, layer, module), parts in groups.items():
        if "lora_down.weight" not in parts or "lora_up.weight" not in parts:
            raise ValueError(f"{source}: {te or ''} layer {layer} {module} lacks lora_A or lora_B")
        prefix = "lora_te2" if te == "text_encoder_2" else ("lora_te1" if family == "sdxl" else "lora_te")
        down, up = parts["lora_down.weight"], parts["lora_up.weight"]
        rank = down.shape[0]
        # alpha in float32 whatever the weights' dtype (write_lora_file keeps it so): equal to ss_network_alpha
        if "alpha" in parts:
            alpha = parts["alpha"].to(ALPHA_DTYPE).reshape(())
        elif recorded_alpha is not None and recorded_scale is not None:
            scale = float(recorded_scale)
            up = up if scale == 1.0 else (up.float() / scale).to(up.dtype)
            alpha = torch.tensor(float(recorded_alpha), dtype=ALPHA_DTYPE)
        else:
            alpha = torch.tensor(float(rank), dtype=ALPHA_DTYPE)
        name = module_name(prefix, layer, module)
        sd.update({f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": alpha})
    if recorded_alpha is None and not any("alpha" in p for p in groups.values()):
        notes.append("diffusers-format file has no alpha: wrote alpha = rank (scale 1, what diffusers computed)")
    added = fill_missing_attention(sd)
    if added:
        notes.append(f"zero-filled {len(added)} missing attention projection(s) (exact no-op), e.g. {added[0]}")
    meta = {k: v for k, v in metadata.items() if k not in _DIFFUSERS_ONLY_META and not k.startswith("sshs_")}
    modules = group_modules(sd)
    first = modules[min(modules)]  # one rank and one alpha per file: any module tells them
    defaults = build_metadata(TrainingInfo(
        output_name=output_name, family=family, v_prediction=meta.get("ss_base_model_version") == "sd_v2_v",
        network_dim=int(first["lora_down.weight"].shape[0]), network_alpha=float(first["alpha"].float())))
    for key, value in defaults.items():
        meta.setdefault(key, value)
    meta["ss_output_name"] = output_name
    meta["ss_network_dim"] = defaults["ss_network_dim"]
    if not _states_alpha(meta.get("ss_network_alpha"), first["alpha"]):  # keep a carried "0.3" that is exact
        meta["ss_network_alpha"] = defaults["ss_network_alpha"]
    return sd, meta, notes


def _states_alpha(text: str | None, alpha: torch.Tensor) -> bool:
    try:
        return text is not None and alpha_matches_metadata(alpha, text)
    except ValueError:
        return False


def detect_format(tensors: Mapping[str, torch.Tensor]) -> str:
    if tensors and all(k.split(".", 1)[0].startswith(("lora_te_", "lora_te1_", "lora_te2_")) for k in tensors):
        return "kohya"
    if tensors and all(PEFT_KEY.match(k) for k in tensors):
        return "diffusers"
    return "unknown"


def check_destination(dst: Path, overwrite: bool) -> None:
    """A new file in an existing folder; an existing file only with ``overwrite`` (never a folder)."""
    if dst.suffix != ".safetensors":
        raise ValueError(f"convert: DST {dst} must be a .safetensors file name")
    if not dst.parent.is_dir():
        raise ValueError(f"convert: the folder {dst.parent} does not exist; create it first (nothing is created for you)")
    if dst.is_dir() or (dst.exists() and not dst.is_file()):
        raise ValueError(f"convert: DST {dst} exists and is not a regular file")
    if dst.exists() and not overwrite:
        raise ValueError(f"convert: {dst} already exists; pass --overwrite to replace it, or choose another name")


def convert_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], to: str | None = None,
                 family: str | None = None, save_dtype: torch.dtype | None = None, overwrite: bool = False) -> ConvertResult:
    """Convert a LoRA file between kohya and diffusers formats (``to`` defaults to the other one)."""
    from textboost_ext.input_files import check_safetensors_file

    src, dst = Path(src), Path(dst)
    check_safetensors_file(src)
    if src.resolve() == dst.resolve():
        raise ValueError(f"convert: SRC and DST are the same file ({src})")
    check_destination(dst, overwrite)
    tensors, (metadata, _) = load_tensors(src), read_header(src)
    metadata = {k: v for k, v in metadata.items() if isinstance(v, str)}
    source_format = detect_format(tensors)
    if source_format == "unknown":
        raise ValueError(f"{src}: neither a kohya (lora_te*_) nor a diffusers (text_encoder.*lora_A/B) text-encoder LoRA")
    to = to or ("diffusers" if source_format == "kohya" else "kohya")
    if to not in ("kohya", "diffusers"):
        raise ValueError(f"--to {to!r}: choose 'kohya' or 'diffusers'")
    if to == source_format:
        raise ValueError(f"{src} is already in {to} format")
    if to == "diffusers":
        if family is not None:
            found = detect_family(metadata, tensors)
            if found is not None and found != family:
                raise ValueError(f"{src}: --arch {family} but the file is a {found} LoRA (its keys and metadata say so)")
        out, meta = kohya_to_diffusers(tensors, metadata)
        if save_dtype is not None:
            out = {k: v.to(save_dtype) for k, v in out.items()}
        atomic_save_safetensors(dst, out, meta)
        return ConvertResult([dst], [f"lora_up scaled by alpha/r = {meta[SCALE_KEY]} (diffusers has no alpha)"])
    sd, meta, notes = diffusers_to_kohya(tensors, metadata, dst.stem, family, source=str(src))
    dtype = save_dtype or next(iter(sd.values())).dtype
    write_lora_file(dst, sd, meta, save_dtype=dtype)
    return ConvertResult([dst], notes)
