"""The compatibility checklist of lora-format.md, as pure functions over tensors and metadata.

Used twice: by the writer BEFORE a file is written (a file that would fail is never written) and by
``verify_file`` on a file on disk. Each function returns ``CheckResult``s; nothing here prints.
Items: 2 key names, 3 prefix/layers/shapes, 4 down+up+alpha / one rank / one alpha, 5 all four
attention projections, 6 output name + version keys (hashes live in verify.py: they need the file),
7 embedding names.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from textboost_ext.export.metadata import FORBIDDEN_METADATA_KEYS, architecture_base, base_model_version

KEY_PATTERN = re.compile(
    r"^(lora_te|lora_te1|lora_te2)_text_model_encoder_layers_(\d+)_"
    r"(self_attn_(?:q|k|v|out)_proj|mlp_fc[12])\.(lora_down\.weight|lora_up\.weight|alpha)$"
)
BUNDLE_KEY_PATTERN = re.compile(r"^bundle_emb\.([^.]+)\.(.+)$")
ATTENTION_MODULES = ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj")
PARTS = ("lora_down.weight", "lora_up.weight", "alpha")
SAVE_DTYPES = (torch.float16, torch.float32, torch.bfloat16)
# A1111/Forge embedding names: letters and digits, '_'/'-' allowed inside (method.md, "Placeholder token")
EMBEDDING_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""


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


def _few(items: Iterable[Any], n: int = 3) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _expected_shapes(module: str, rank: int, hidden: int, mlp: int) -> tuple[tuple[int, int], tuple[int, int]]:
    in_dim, out_dim = {"mlp_fc1": (hidden, mlp), "mlp_fc2": (mlp, hidden)}.get(module, (hidden, hidden))
    return (rank, in_dim), (out_dim, rank)


def _infer_dims(groups: Mapping[tuple[str, int, str], dict[str, torch.Tensor]]) -> dict[str, tuple[int, int | None]]:
    """(hidden, mlp) per prefix from the first module that shows them (used when the base is unknown)."""
    dims: dict[str, list[int | None]] = {}
    for (prefix, _, module), parts in sorted(groups.items()):
        down, up = parts.get("lora_down.weight"), parts.get("lora_up.weight")
        entry = dims.setdefault(prefix, [None, None])
        if down is None or up is None or down.dim() != 2 or up.dim() != 2:
            continue
        if module == "mlp_fc1":
            entry[0] = entry[0] or down.shape[1]
            entry[1] = entry[1] or up.shape[0]
        elif module == "mlp_fc2":
            entry[0] = entry[0] or up.shape[0]
            entry[1] = entry[1] or down.shape[1]
        else:
            entry[0] = entry[0] or down.shape[1]
    return {p: (h if h is not None else -1, m) for p, (h, m) in dims.items()}


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
    results: list[CheckResult] = []
    lora_keys = [k for k in tensors if parse_lora_key(k) is not None]
    bundle_keys = [k for k in tensors if BUNDLE_KEY_PATTERN.match(k)]
    bad = [k for k in tensors if k not in lora_keys and k not in bundle_keys]
    results.append(CheckResult("key names", not bad and bool(lora_keys),
                               f"{len(bad)} key(s) match no kohya text-encoder name: {_few(bad)}" if bad
                               else ("no LoRA keys at all" if not lora_keys else f"{len(lora_keys)} LoRA keys")))
    if bundle_keys:
        results.append(CheckResult("bundle keys", allow_bundle,
                                   f"{len(bundle_keys)} bundle_emb keys" + ("" if allow_bundle else
                                   ": only the *_a1111_bundle variant may carry them (diffusers refuses such files)")))
    groups = group_modules(tensors)
    if family is not None and spec is None:
        spec = FAMILY_SPECS[family]
    # item 3: prefixes, layer indices, shapes
    prefixes = sorted({p for p, _, _ in groups})
    if spec is not None:
        allowed = spec.by_prefix()
        wrong = [p for p in prefixes if p not in allowed]
        results.append(CheckResult("prefix fits family", not wrong,
                                   f"{_few(wrong)}_ is not a {spec.family} prefix (expected {_few(p + '_' for p in allowed)})"
                                   if wrong else f"{', '.join(p + '_' for p in prefixes)} for {spec.family}"))
        out_of_range = [module_name(p, i, m) for p, i, m in groups if p in allowed and i >= allowed[p].n_layers]
        results.append(CheckResult("layer indices", not out_of_range,
                                   f"beyond the base's layer count: {_few(out_of_range)}" if out_of_range else "in range"))
    dims = {p: (e.hidden, e.mlp) for p, e in spec.by_prefix().items()} if (spec is not None and check_dims) else {}
    inferred = _infer_dims(groups)
    bad_shapes: list[str] = []
    ranks: set[int] = set()
    for (prefix, layer, module), parts in sorted(groups.items()):
        down, up = parts.get("lora_down.weight"), parts.get("lora_up.weight")
        if down is None or up is None:
            continue
        if down.dim() != 2 or up.dim() != 2:
            bad_shapes.append(f"{module_name(prefix, layer, module)}: down {tuple(down.shape)} / up {tuple(up.shape)} are not 2-D")
            continue
        ranks.add(int(down.shape[0]))
        hidden, mlp = dims.get(prefix, inferred.get(prefix, (-1, None)))
        exp_down, exp_up = _expected_shapes(module, int(down.shape[0]), hidden, mlp if mlp is not None else -1)
        if mlp is None and module.startswith("mlp"):
            exp_down, exp_up = tuple(down.shape), tuple(up.shape)  # no MLP dim known to compare against
        if tuple(down.shape) != exp_down or tuple(up.shape) != exp_up:
            bad_shapes.append(f"{module_name(prefix, layer, module)}: down {tuple(down.shape)} up {tuple(up.shape)}, "
                              f"expected {exp_down} / {exp_up}")
    where = f"{spec.family} dims" if dims else "consistent dims"
    results.append(CheckResult("shapes", not bad_shapes, "; ".join(bad_shapes[:3]) + (
        f" (+{len(bad_shapes) - 3} more)" if len(bad_shapes) > 3 else "") if bad_shapes else where))
    # item 4: complete modules, alpha scalar, one rank, one alpha
    incomplete = [f"{module_name(*k)} lacks {', '.join(p for p in PARTS if p not in parts)}"
                  for k, parts in sorted(groups.items()) if len(parts) != len(PARTS)]
    results.append(CheckResult("down/up/alpha per module", not incomplete, _few(incomplete, 2) if incomplete else f"{len(groups)} modules"))
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
    results.append(CheckResult("alpha scalar", not bad_alpha, _few(bad_alpha, 2) if bad_alpha else "0-dim, finite, > 0"))
    results.append(CheckResult("one rank", len(ranks) <= 1, f"ranks {sorted(ranks)}: diffusers needs one rank per file"
                               if len(ranks) > 1 else f"rank {next(iter(ranks), '?')}"))
    results.append(CheckResult("one alpha", len(alphas) <= 1, f"alphas {sorted(alphas)}: diffusers needs one alpha per file"
                               if len(alphas) > 1 else f"alpha {next(iter(alphas), '?')}"))
    nonfinite = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    results.append(CheckResult("finite values", not nonfinite, f"NaN/Inf in {_few(nonfinite)}" if nonfinite else "no NaN/Inf"))
    bad_dtype = sorted({str(v.dtype) for v in tensors.values() if v.dtype not in SAVE_DTYPES})
    results.append(CheckResult("dtype", not bad_dtype, f"unsupported {bad_dtype}" if bad_dtype else
                               ", ".join(sorted({str(v.dtype).replace("torch.", "") for v in tensors.values()}))))
    results.append(check_attention_complete(groups))
    return results


def check_attention_complete(groups: Mapping[tuple[str, int, str], Any]) -> CheckResult:
    """Item 5: a layer with any of q/k/v/out has all four (A1111 drops the layer's attention otherwise)."""
    present: dict[tuple[str, int], set[str]] = defaultdict(set)
    for prefix, layer, module in groups:
        if module in ATTENTION_MODULES:
            present[(prefix, layer)].add(module)
    partial = [f"{p}_..._layers_{i} lacks {', '.join(m.removeprefix('self_attn_') for m in ATTENTION_MODULES if m not in mods)}"
               for (p, i), mods in sorted(present.items()) if len(mods) != len(ATTENTION_MODULES)]
    return CheckResult("attention q/k/v/out together", not partial,
                       _few(partial, 2) if partial else f"{len(present)} attention layer(s) complete")


def family_from_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """What each version key says: {key: family} for the keys that name one."""
    found: dict[str, str] = {}
    version = metadata.get("ss_base_model_version")
    if isinstance(version, str):
        if version.startswith("sdxl_"):
            found["ss_base_model_version"] = "sdxl"
        elif version.startswith("sd_v2"):
            found["ss_base_model_version"] = "sd2"
        elif version.startswith("sd_v1"):
            found["ss_base_model_version"] = "sd1"
    arch = metadata.get("modelspec.architecture")
    if isinstance(arch, str):
        for family, prefix in (("sdxl", "stable-diffusion-xl-v1-base"), ("sd2", "stable-diffusion-v2-"), ("sd1", "stable-diffusion-v1")):
            if arch.startswith(prefix):
                found["modelspec.architecture"] = family
                break
    return found


def detect_family(metadata: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Family from the version metadata, else from the keys (te1/te2 -> SDXL) and the hidden size."""
    from_meta = family_from_metadata(metadata)
    for key in ("ss_base_model_version", "modelspec.architecture"):
        if key in from_meta:
            return from_meta[key]
    groups = group_modules(tensors)
    prefixes = {p for p, _, _ in groups}
    if prefixes & {"lora_te1", "lora_te2"}:
        return "sdxl"
    hidden = {h for h, _ in _infer_dims(groups).values()}
    if hidden == {768}:
        return "sd1"
    if hidden == {1024}:
        return "sd2"
    return None


def check_metadata(metadata: Mapping[str, Any], family: str, stem: str, adapter: str = "lora") -> list[CheckResult]:
    """Items 1 (strings) and 6 (output name, version keys agree with the family); no forbidden keys."""
    results: list[CheckResult] = []
    not_str = [k for k, v in metadata.items() if not isinstance(v, str)]
    results.append(CheckResult("metadata strings", not not_str, f"non-string values: {_few(not_str)}" if not_str
                               else f"{len(metadata)} keys"))
    forbidden = [k for k in FORBIDDEN_METADATA_KEYS if k in metadata]
    results.append(CheckResult("no diffusers metadata key", not forbidden, f"{forbidden}: diffusers rejects the file" if forbidden else ""))
    if adapter == "lora":
        name = metadata.get("ss_output_name")
        results.append(CheckResult("ss_output_name = stem", name == stem,
                                   f"ss_output_name is {name!r}, file stem is {stem!r} (A1111 uses it as the <lora:NAME:w> alias)"
                                   if name != stem else stem))
    results.append(check_version_keys(metadata, family, adapter))
    return results


def check_version_keys(metadata: Mapping[str, Any], family: str, adapter: str = "lora") -> CheckResult:
    problems: list[str] = []
    arch = metadata.get("modelspec.architecture")
    v_pred = isinstance(arch, str) and arch.startswith("stable-diffusion-v2-768-v")
    if adapter == "lora":
        version = metadata.get("ss_base_model_version")
        v_pred = v_pred or version == "sd_v2_v"
        if version != base_model_version(family, v_pred):
            problems.append(f"ss_base_model_version={version!r} (expected {base_model_version(family, v_pred)!r})")
        if metadata.get("ss_v2") != str(family == "sd2"):
            problems.append(f"ss_v2={metadata.get('ss_v2')!r} (expected {str(family == 'sd2')!r})")
    expected_arch = f"{architecture_base(family, v_pred)}/{adapter}"
    if arch != expected_arch:
        problems.append(f"modelspec.architecture={arch!r} (expected {expected_arch!r})")
    prediction = metadata.get("modelspec.prediction_type")
    if prediction is not None and prediction != ("v" if v_pred else "epsilon"):
        problems.append(f"modelspec.prediction_type={prediction!r} disagrees with the architecture")
    return CheckResult("version keys", not problems, "; ".join(problems) if problems else f"{family}{' v-pred' if v_pred else ''}")


def embedding_name_problem(name: str) -> str | None:
    """Why ``name`` is not a usable A1111/Forge/ComfyUI embedding name, or None if it is."""
    if not EMBEDDING_NAME.match(name):
        return (f"embedding name {name!r}: use letters and digits ('_' or '-' allowed inside); a name with "
                f"punctuation such as <...> stops matching in A1111 prompts")
    from textboost_ext.models.tokenizer import clip_vocab_and_merges

    vocab, _ = clip_vocab_and_merges()
    if f"{name.lower()}</w>" in vocab:
        return (f"embedding name {name!r} is an existing CLIP word: A1111 would replace every use of "
                f"{name.lower()!r} in prompts; pick a made-up word (e.g. {name.lower()}tb)")
    return None
