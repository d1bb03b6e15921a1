"""Independent restatement (from lora-format.md's prose) of how A1111 and ComfyUI/Forge map LoRA keys.

These oracles are written from the spec text, not from the clients' code. They assert that every key
of our files lands on a real model module in each client, and that A1111's four-of-four attention rule
holds (and would silently drop a q/k/v-only layer).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from textboost_ext.export.convert import convert_file

MODULES = ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj", "mlp_fc1", "mlp_fc2")
TINY_LAYERS = {"sd1": {"lora_te": 2}, "sd2": {"lora_te": 3}, "sdxl": {"lora_te1": 2, "lora_te2": 2}}


# ---------------------------------------------------------------- A1111 (restated) ---------------------------
def _a1111_sd1_style(layer: str, rest: str) -> str:
    return f"transformer_text_model_encoder_layers_{layer}_{rest}"


def _a1111_sd2_style(layer: str, rest: str) -> str:
    if rest.startswith("self_attn_"):
        return f"model_transformer_resblocks_{layer}_attn"  # q/k/v/out fold into one MultiheadAttention
    return f"model_transformer_resblocks_{layer}_" + {"mlp_fc1": "mlp_c_fc", "mlp_fc2": "mlp_c_proj"}[rest]


def a1111_target(key: str, family: str) -> str | None:
    """The A1111 network-module name a key's module part maps to, or None (silently dropped)."""
    module = key.split(".", 1)[0]
    m = re.match(r"^(lora_te|lora_te1|lora_te2)_text_model_encoder_layers_(\d+)_(.+)$", module)
    if m is None:
        return None
    prefix, layer, rest = m.groups()
    if family == "sd1" and prefix == "lora_te":
        return _a1111_sd1_style(layer, rest)
    if family == "sd2" and prefix == "lora_te":
        return _a1111_sd2_style(layer, rest)
    if family == "sdxl" and prefix == "lora_te1":
        return "0_" + _a1111_sd1_style(layer, rest)
    if family == "sdxl" and prefix == "lora_te2":
        return "1_" + _a1111_sd2_style(layer, rest)
    return None


def a1111_model_modules(family: str) -> set[str]:
    out: set[str] = set()
    for prefix, n in TINY_LAYERS[family].items():
        for i in range(n):
            sd1 = {_a1111_sd1_style(str(i), m) for m in MODULES}
            sd2 = {_a1111_sd2_style(str(i), m) for m in MODULES}
            out |= {"sd1": sd1, "sd2": sd2}.get(family, set())
            if family == "sdxl":
                out |= {"0_" + s for s in sd1} if prefix == "lora_te1" else {"1_" + s for s in sd2}
    return out


def a1111_apply(keys: list[str], family: str) -> tuple[set[str], set[str]]:
    """(applied keys, dropped keys). MultiheadAttention targets need q, k, v AND out, else all are dropped."""
    modules = a1111_model_modules(family)
    applied, dropped = set(), set()
    mha: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        target = a1111_target(key, family)
        if target is None or target not in modules:
            dropped.add(key)
        elif target.endswith("_attn"):
            mha[target].add(key)
        else:
            applied.add(key)
    for target, group in mha.items():
        kinds = {re.search(r"self_attn_(q|k|v|out)_proj", k).group(1) for k in group}  # type: ignore[union-attr]
        (applied if kinds == {"q", "k", "v", "out"} else dropped).update(group)
    return applied, dropped


# ---------------------------------------------------------------- ComfyUI / Forge (restated) -----------------
CLIPS = {"sd1": ("clip_l",), "sd2": ("clip_h",), "sdxl": ("clip_l", "clip_g")}


def comfy_key_map(family: str) -> dict[str, str]:
    """LoRA module name -> model weight key, for every name spelling ComfyUI accepts."""
    mapping: dict[str, str] = {}
    n_layers = list(TINY_LAYERS[family].values())
    for clip, layers in zip(CLIPS[family], n_layers):
        for i in range(layers):
            for mod in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"):
                model_key = f"{clip}.transformer.text_model.encoder.layers.{i}.{mod}.weight"
                kohya = f"text_model_encoder_layers_{i}_{mod.replace('.', '_')}"
                if clip in ("clip_l", "clip_h"):
                    mapping[f"lora_te_{kohya}"] = model_key
                    mapping[f"lora_te1_{kohya}"] = model_key
                    mapping[f"text_encoder.text_model.encoder.layers.{i}.{mod}"] = model_key
                else:
                    mapping[f"lora_te2_{kohya}"] = model_key
                    mapping[f"text_encoder_2.text_model.encoder.layers.{i}.{mod}"] = model_key
    return mapping


def comfy_deltas(tensors: dict[str, torch.Tensor], family: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Weight deltas ComfyUI would add ({model key: delta}) and the keys it could not place."""
    mapping = comfy_key_map(family)
    deltas: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, model_key in mapping.items():
        for up_suffix, down_suffix in ((".lora_up.weight", ".lora_down.weight"), (".lora_B.weight", ".lora_A.weight")):
            up, down = tensors.get(name + up_suffix), tensors.get(name + down_suffix)
            if up is None or down is None:
                continue
            alpha = tensors.get(name + ".alpha")
            scale = float(alpha) / down.shape[0] if alpha is not None else 1.0
            deltas[model_key] = scale * (up.float() @ down.float())
            used |= {name + up_suffix, name + down_suffix} | ({name + ".alpha"} if alpha is not None else set())
    return deltas, sorted(set(tensors) - used)


# ---------------------------------------------------------------- tests ---------------------------------------
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_every_key_maps_in_a1111(family: str, export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora(family)
    keys = list(load_file(str(path)))
    applied, dropped = a1111_apply(keys, family)
    assert dropped == set() and applied == set(keys)


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_every_key_maps_in_comfyui(family: str, export_lora: Callable[..., Any]) -> None:
    path, network, _ = export_lora(family)
    tensors = load_file(str(path))
    deltas, unplaced = comfy_deltas(tensors, family)
    assert unplaced == []
    assert len(deltas) == len(network.module_names())


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_diffusers_format_maps_in_comfyui_with_the_same_deltas(family: str, tmp_path: Path, export_lora: Callable[..., Any]) -> None:
    """Our diffusers-format conversion (no alpha; up rescaled) gives ComfyUI the same weight deltas."""
    path, _, _ = export_lora(family, alpha=3.0)  # alpha/r = 0.75: not a power of two on purpose
    out = tmp_path / "diffusers.safetensors"
    convert_file(path, out, to="diffusers")
    kohya_deltas, _ = comfy_deltas(load_file(str(path)), family)
    diff_deltas, unplaced = comfy_deltas(load_file(str(out)), family)
    assert unplaced == [] and set(diff_deltas) == set(kohya_deltas)
    for key, delta in kohya_deltas.items():
        assert torch.allclose(diff_deltas[key], delta, atol=1e-6, rtol=1e-5), key


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_a1111_four_of_four_rule(family: str, export_lora: Callable[..., Any]) -> None:
    """Without out_proj, A1111 silently drops every attention key on SD 2.x / SDXL encoder 2."""
    path, _, _ = export_lora(family)
    keys = [k for k in load_file(str(path)) if "_self_attn_out_proj." not in k]
    applied, dropped = a1111_apply(keys, family)
    second = "lora_te" if family == "sd2" else "lora_te2"
    assert dropped and all(k.startswith(second + "_") and "self_attn" in k for k in dropped)
    assert not any(k.startswith(second + "_") and "self_attn" in k for k in applied)


@pytest.mark.parametrize("family, wrong, right", [("sdxl", "lora_te_", "lora_te1_"), ("sd2", "lora_te1_", "lora_te_")])
def test_wrong_prefix_matches_nothing_in_a1111(family: str, wrong: str, right: str, export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora(family)
    keys = [k.replace(right, wrong) for k in load_file(str(path)) if k.startswith(right)]
    applied, dropped = a1111_apply(keys, family)
    assert applied == set() and dropped == set(keys)


def test_transformers5_names_match_nowhere(export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sd1")
    keys = [k.replace("lora_te_text_model_", "lora_te_") for k in load_file(str(path))]
    assert a1111_apply(keys, "sd1")[0] == set()
    assert len(comfy_deltas({k: torch.zeros(1) for k in keys}, "sd1")[1]) == len(keys)
