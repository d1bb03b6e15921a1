"""Human-readable summary of an adapter's metadata (what ``textboost-hub inspect`` prints).

Mirrors what the A1111 Lora card shows (name, base, trigger, network, training run, dataset, tag
frequency, hashes) and adds the TextBoost settings, the embeddings and the sidecar.
"""

from __future__ import annotations

import json
from collections import Counter

from textboost_ext.hub.card import FAMILY_LABEL
from textboost_ext.hub.errors import AdapterStoreError
from textboost_ext.hub.header import read_header
from textboost_ext.hub.store import AdapterInfo, read_sidecar
from textboost_ext.safetensors_header import legacy_hash, model_hash


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def describe_adapter(info: AdapterInfo, top_tags: int = 10, hash_file: bool = True) -> str:
    """``hash_file=False``: do not read the tensor data (a damaged or huge file)."""
    m = info.metadata
    rows: list[tuple[str, str]] = [
        ("name", info.name),
        ("file", f"{info.lora_file} ({human_size(info.size_bytes)})"),
        ("base", _base(info)),
        ("trigger", info.trigger or "-"),
        ("network", _network(info)),
        ("training", _join(("steps", m.get("ss_steps")), ("lr", m.get("ss_text_encoder_lr") or m.get("ss_learning_rate")),
                           ("seed", m.get("ss_seed")), ("resolution", m.get("ss_resolution")),
                           ("batch", m.get("ss_total_batch_size")), ("optimizer", m.get("ss_optimizer")),
                           ("precision", m.get("ss_mixed_precision")))),
        ("finished", info.date or "-"),
        ("dataset", _dataset(m)),
        ("tags", _tags(m, top_tags)),
        ("textboost", _join(*((k.removeprefix("ss_textboost_"), v) for k, v in sorted(m.items()) if k.startswith("ss_textboost_")))),
        ("comment", m.get("ss_training_comment") or "-"),
        ("hashes", _hashes(info) if hash_file else "not computed (the file is damaged)"),
        ("embeddings", _embeddings(info)),
        ("sidecar", _sidecar(info)),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _join(*pairs: tuple[str, str | None]) -> str:
    shown = [f"{k} {v}" for k, v in pairs if v not in (None, "", "None")]
    return ", ".join(shown) if shown else "-"


def _base(info: AdapterInfo) -> str:
    m = info.metadata
    family = FAMILY_LABEL.get(info.family or "", "unknown family (no version metadata)")
    details = _join(("version", m.get("ss_base_model_version")), ("architecture", m.get("modelspec.architecture")),
                    ("checkpoint", m.get("ss_sd_model_name")))
    return family if details == "-" else f"{family} ({details})"


def _network(info: AdapterInfo) -> str:
    header = read_header(info.lora_file)
    modules = {name.split(".", 1)[0] for name in header.tensors}
    prefixes = sorted({name.split("_text_model_", 1)[0] for name in modules})
    dtypes = sorted({t.dtype for t in header.tensors.values()})
    return _join(("rank", str(info.rank) if info.rank else None), ("alpha", info.metadata.get("ss_network_alpha")),
                 ("module", info.metadata.get("ss_network_module")), ("modules", str(len(modules))),
                 ("prefixes", "/".join(prefixes)), ("dtype", "/".join(dtypes)))


def _dataset(m: dict[str, str]) -> str:
    dirs = _json_dict(m.get("ss_dataset_dirs"))
    images = m.get("ss_num_train_images")
    parts = [f"{images} image(s)"] if images else []
    parts += [f"{d}: {v.get('img_count', '?')} img x {v.get('n_repeats', 1)}" for d, v in dirs.items() if isinstance(v, dict)]
    return "; ".join(parts) if parts else "-"


def _tags(m: dict[str, str], top: int) -> str:
    counts: Counter[str] = Counter()
    for tags in _json_dict(m.get("ss_tag_frequency")).values():
        if isinstance(tags, dict):
            counts.update({str(t): int(c) for t, c in tags.items() if isinstance(c, (int, float))})
    return ", ".join(f"{t} ({c})" for t, c in counts.most_common(top)) if counts else "-"


def _hashes(info: AdapterInfo) -> str:
    stored = info.metadata.get("sshs_model_hash")
    actual = model_hash(info.lora_file)
    if stored is None:
        state = f"sha256 {actual[:12]} (not stored in the file)"
    elif stored == actual:
        state = f"sshs_model_hash {stored[:12]} (matches the file)"
    else:
        state = f"sshs_model_hash {stored[:12]} MISMATCH: the file hashes to {actual[:12]}; A1111 will show a wrong hash"
    legacy = info.metadata.get("sshs_legacy_hash")
    return state + (f", legacy {legacy}" if legacy else f", legacy {legacy_hash(info.lora_file)} (computed)")


def _embeddings(info: AdapterInfo) -> str:
    parts = []
    for path in info.embedding_files:
        try:
            tensors = read_header(path).tensors
        except AdapterStoreError as err:
            parts.append(f"{path.name}: unreadable ({err})")
            continue
        shapes = ", ".join(f"{k} {'x'.join(map(str, t.shape))}" for k, t in sorted(tensors.items()))
        parts.append(f"{path.stem} [{shapes}]")
    return "; ".join(parts) if parts else "-"


def _sidecar(info: AdapterInfo) -> str:
    data = read_sidecar(info.lora_file)
    shown = [(k, data.get(k)) for k in ("activation text", "preferred weight", "sd version", "negative text")]
    return _join(*((k, str(v)) for k, v in shown if v not in (None, "")))


def _json_dict(value: str | None) -> dict:
    try:
        data = json.loads(value) if value else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
