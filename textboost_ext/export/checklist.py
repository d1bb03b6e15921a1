"""The compatibility checklist of lora-format.md, as pure functions over tensors and metadata.

Used twice: by the writer BEFORE a file is written (a file that would fail is never written) and by
``verify_file`` on a file on disk. Each function returns ``CheckResult``s; nothing here prints.
Items here: 2 key names, 3 prefix/layers/shapes, 4 down+up+alpha / one rank / one alpha, 5 all four
attention projections. Metadata items (1, 6, 7) are in ``metadata_checks.py``; hashes in verify.py.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


KEY_PATTERN = re.compile(
    r"^(lora_te|lora_te1|lora_te2)_text_model_encoder_layers_(\d+)_"
    r"(self_attn_(?:q|k|v|out)_proj|mlp_fc[12])\.(lora_down\.weight|lora_up\.weight|alpha)$"
)
BUNDLE_KEY_PATTERN = re.compile(r"^bundle_emb\.([^.]+)\.(.+)$")
ATTENTION_MODULES = ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj")
PARTS = ("lora_down.weight", "lora_up.weight", "alpha")
SAVE_DTYPES = (torch.float16, torch.float32, torch.bfloat16)


@dataclass
class CheckResult:
    """One checklist item. ``warn``: passed, but something the user should see (shown as WARN)."""

    name: str
    ok: bool
    detail: str = ""
    warn: bool = False


@dataclass(frozen=True)
class EncoderSpec:
    prefix: str
    n_layers: int
    hidden: int
    mlp: int


@dataclass(frozen=True)
class FamilySpec:
    family: str
    encoders: tuple[EncoderSpec, ...]

    def by_prefix(self) -> dict[str, EncoderSpec]:
        return {e.prefix: e for e in self.encoders}


FAMILY_SPECS: dict[str, FamilySpec] = {
    "sd1": FamilySpec("sd1", (EncoderSpec("lora_te", 12, 768, 3072),)),
    "sd2": FamilySpec("sd2", (EncoderSpec("lora_te", 23, 1024, 4096),)),
    "sdxl": FamilySpec("sdxl", (EncoderSpec("lora_te1", 12, 768, 3072), EncoderSpec("lora_te2", 32, 1280, 5120))),
}


def spec_from_text_encoders(family: str, text_encoders: Sequence[Any]) -> FamilySpec:
    """The exact dims of a concrete base (e.g. a tiny test model or a custom checkpoint)."""
    prefixes = [e.prefix for e in FAMILY_SPECS[family].encoders]
    if len(prefixes) != len(text_encoders):
        raise ValueError(f"family {family!r} has {len(prefixes)} text encoder(s), the base has {len(text_encoders)}")
    encoders = []
    for prefix, te in zip(prefixes, text_encoders):
        cfg = te.config
        encoders.append(EncoderSpec(prefix, int(cfg.num_hidden_layers), int(cfg.hidden_size), int(cfg.intermediate_size)))
    return FamilySpec(family, tuple(encoders))


def parse_lora_key(key: str) -> tuple[str, int, str, str] | None:
    """``(prefix, layer, module, part)`` for a valid kohya text-encoder key, else None."""
    m = KEY_PATTERN.match(key)
    return None if m is None else (m.group(1), int(m.group(2)), m.group(3), m.group(4))


def module_name(prefix: str, layer: int, module: str) -> str:
    return f"{prefix}_text_model_encoder_layers_{layer}_{module}"


def group_modules(tensors: Mapping[str, torch.Tensor]) -> dict[tuple[str, int, str], dict[str, torch.Tensor]]:
    groups: dict[tuple[str, int, str], dict[str, torch.Tensor]] = defaultdict(dict)
    for key, value in tensors.items():
        parsed = parse_lora_key(key)
        if parsed is not None:
            groups[parsed[:3]][parsed[3]] = value
    return dict(groups)


def few(items: Iterable[Any], n: int = 3) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _expected_shapes(module: str, rank: int, hidden: int | None, mlp: int | None) -> tuple[tuple, tuple]:
    """(down, up) shapes; an unknown dim (None) matches anything."""
    in_dim, out_dim = {"mlp_fc1": (hidden, mlp), "mlp_fc2": (mlp, hidden)}.get(module, (hidden, hidden))
    return (rank, in_dim), (out_dim, rank)


def _shape_matches(shape: torch.Size, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))


def infer_dims(groups: Mapping[tuple[str, int, str], dict[str, torch.Tensor]]) -> dict[str, tuple[int | None, int | None]]:
    """(hidden, mlp) per prefix as the first 2-D module shows them (used when the base's dims are not checked)."""
    dims: dict[str, tuple[int | None, int | None]] = {}
    for (prefix, _, module), parts in sorted(groups.items()):
        down, up = parts.get("lora_down.weight"), parts.get("lora_up.weight")
        hidden, mlp = dims.get(prefix, (None, None))
        if down is not None and up is not None and down.dim() == 2 and up.dim() == 2:
            if module == "mlp_fc1":
                hidden, mlp = hidden or down.shape[1], mlp or up.shape[0]
            elif module == "mlp_fc2":
                hidden, mlp = hidden or up.shape[0], mlp or down.shape[1]
            else:
                hidden = hidden or down.shape[1]
        dims[prefix] = (hidden, mlp)
    return dims


def _check_shapes(groups: Mapping[tuple[str, int, str], dict[str, torch.Tensor]],
                  dims: Mapping[str, tuple[int | None, int | None]], where: str) -> CheckResult:
    bad: list[str] = []
    for (prefix, layer, module), parts in sorted(groups.items()):
        down, up = parts.get("lora_down.weight"), parts.get("lora_up.weight")
        if down is None or up is None:
            continue  # reported by the down/up/alpha check
        hidden, mlp = dims.get(prefix, (None, None))
        exp_down, exp_up = _expected_shapes(module, int(down.shape[0]) if down.dim() == 2 else -1, hidden, mlp)
        if not (_shape_matches(down.shape, exp_down) and _shape_matches(up.shape, exp_up)):
            bad.append(f"{module_name(prefix, layer, module)}: down {tuple(down.shape)} up {tuple(up.shape)}, "
                       f"expected {exp_down} / {exp_up}".replace("None", "?"))
    detail = "; ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "") if bad else where
    return CheckResult("shapes", not bad, detail)


def _check_keys(tensors: Mapping[str, torch.Tensor], allow_bundle: bool) -> list[CheckResult]:
    """Item 2: every key is a kohya text-encoder key (or a bundle_emb key, in the bundled variant only)."""
    lora_keys = [k for k in tensors if parse_lora_key(k) is not None]
    bundle_keys = [k for k in tensors if BUNDLE_KEY_PATTERN.match(k)]
    bad = [k for k in tensors if parse_lora_key(k) is None and not BUNDLE_KEY_PATTERN.match(k)]
    detail = (f"{len(bad)} key(s) match no kohya text-encoder name: {few(bad)}" if bad
              else ("no LoRA keys at all" if not lora_keys else f"{len(lora_keys)} LoRA keys"))
    results = [CheckResult("key names", not bad and bool(lora_keys), detail)]
    if bundle_keys:
        results.append(CheckResult("bundle keys", allow_bundle, f"{len(bundle_keys)} bundle_emb keys" + (
            "" if allow_bundle else ": only the *_a1111_bundle variant may carry them (diffusers refuses such files)")))
    return results


def _check_layout(groups: Mapping[tuple[str, int, str], Any], spec: FamilySpec) -> list[CheckResult]:
    """Item 3 (first half): the prefixes fit the family, layer indices exist in the base."""
    allowed = spec.by_prefix()
    prefixes = sorted({p for p, _, _ in groups})
    wrong = [p for p in prefixes if p not in allowed]
    out_of_range = [module_name(p, i, m) for p, i, m in groups if p in allowed and i >= allowed[p].n_layers]
    return [
        CheckResult("prefix fits family", not wrong,
                    f"{few(wrong)}_ is not a {spec.family} prefix (expected {few(p + '_' for p in allowed)})" if wrong
                    else f"{', '.join(p + '_' for p in prefixes)} for {spec.family}"),
        CheckResult("layer indices", not out_of_range,
                    f"beyond the base's layer count: {few(out_of_range)}" if out_of_range else "in range"),
    ]


def _check_parts(groups: Mapping[tuple[str, int, str], dict[str, torch.Tensor]]) -> list[CheckResult]:
    """Item 4: down, up and a finite 0-dim alpha per module; one rank and one alpha per file."""
    incomplete = [f"{module_name(*k)} lacks {', '.join(p for p in PARTS if p not in parts)}"
                  for k, parts in sorted(groups.items()) if len(parts) != len(PARTS)]
    ranks = {int(p["lora_down.weight"].shape[0]) for p in groups.values()
             if "lora_down.weight" in p and p["lora_down.weight"].dim() == 2}
    alphas: set[float] = set()
    bad_alpha: list[str] = []
    for key, parts in sorted(groups.items()):
        alpha = parts.get("alpha")
        if alpha is None:
            continue
        if alpha.dim() != 0:
            bad_alpha.append(f"{module_name(*key)}.alpha has shape {tuple(alpha.shape)} (must be a 0-dim scalar)")
            continue
        value = float(alpha.float())
        if not math.isfinite(value) or value <= 0:
            bad_alpha.append(f"{module_name(*key)}.alpha = {value}")
        alphas.add(value)
    return [
        CheckResult("down/up/alpha per module", not incomplete, few(incomplete, 2) if incomplete else f"{len(groups)} modules"),
        CheckResult("alpha scalar", not bad_alpha, few(bad_alpha, 2) if bad_alpha else "0-dim, finite, > 0"),
        CheckResult("one rank", len(ranks) <= 1, f"ranks {sorted(ranks)}: diffusers needs one rank per file"
                    if len(ranks) > 1 else f"rank {next(iter(ranks), '?')}"),
        CheckResult("one alpha", len(alphas) <= 1, f"alphas {sorted(alphas)}: diffusers needs one alpha per file"
                    if len(alphas) > 1 else f"alpha {next(iter(alphas), '?')}"),
    ]


def _check_values(tensors: Mapping[str, torch.Tensor]) -> list[CheckResult]:
    nonfinite = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    bad_dtype = sorted({str(v.dtype) for v in tensors.values() if v.dtype not in SAVE_DTYPES})
    dtypes = ", ".join(sorted({str(v.dtype).replace("torch.", "") for v in tensors.values()}))
    return [
        CheckResult("finite values", not nonfinite, f"NaN/Inf in {few(nonfinite)}" if nonfinite else "no NaN/Inf"),
        CheckResult("dtype", not bad_dtype, f"unsupported {bad_dtype}" if bad_dtype else dtypes),
    ]


def check_lora_tensors(
    tensors: Mapping[str, torch.Tensor],
    family: str | None,
    spec: FamilySpec | None = None,
    *,
    allow_bundle: bool = False,
    check_dims: bool = True,
) -> list[CheckResult]:
    """Checklist items 2-5 on a kohya text-encoder state dict.

    ``spec`` defaults to the family's real dims (lora-format.md table); pass ``spec_from_text_encoders``
    for another base, or ``check_dims=False`` to check only that shapes are consistent with each other.
    """
    groups = group_modules(tensors)
    if spec is None and family is not None:
        spec = FAMILY_SPECS[family]
    results = _check_keys(tensors, allow_bundle)
    if spec is not None:
        results += _check_layout(groups, spec)
    if spec is not None and check_dims:
        results.append(_check_shapes(groups, {p: (e.hidden, e.mlp) for p, e in spec.by_prefix().items()}, f"{spec.family} dims"))
    else:
        results.append(_check_shapes(groups, infer_dims(groups), "consistent dims"))
    results += _check_parts(groups)
    results += _check_values(tensors)
    results.append(check_attention_complete(groups))
    results.append(check_zero_modules(groups))
    return results


def check_zero_modules(groups: Mapping[tuple[str, int, str], dict[str, torch.Tensor]]) -> CheckResult:
    """A warning, not a failure: modules whose ``lora_up`` or ``lora_down`` is all zero add nothing.

    Clients still load and count them (e.g. "258/264 modules applied" looks like a broken file), and for
    a trained adapter they point at a layer the training never reached (one past the conditioning read).
    """
    zero = [module_name(*key) for key, parts in sorted(groups.items())
            if any(part in parts and parts[part].dim() == 2 and not bool(parts[part].float().abs().sum())
                   for part in ("lora_up.weight", "lora_down.weight"))]
    if not zero:
        return CheckResult("no all-zero modules", True, "every module changes its layer")
    return CheckResult("no all-zero modules", True, f"{len(zero)} module(s) are all zero (no effect; untrained or "
                       f"never reached by the conditioning): {few(zero, 6)}", warn=True)


def check_attention_complete(groups: Mapping[tuple[str, int, str], Any]) -> CheckResult:
    """Item 5: a layer with any of q/k/v/out has all four (A1111 drops the layer's attention otherwise)."""
    present: dict[tuple[str, int], set[str]] = defaultdict(set)
    for prefix, layer, module in groups:
        if module in ATTENTION_MODULES:
            present[(prefix, layer)].add(module)
    partial = [f"{p}_..._layers_{i} lacks {', '.join(m.removeprefix('self_attn_') for m in ATTENTION_MODULES if m not in mods)}"
               for (p, i), mods in sorted(present.items()) if len(mods) != len(ATTENTION_MODULES)]
    return CheckResult("attention q/k/v/out together", not partial,
                       few(partial, 2) if partial else f"{len(present)} attention layer(s) complete")
