"""``verify_file``: run the whole compatibility checklist (lora-format.md items 1-8) on a file on disk.

Static items (1-7) need only the file. Item 8 (the diffusers oracle) runs when a base is given:
``base=`` a model path/name for ``textboost_ext.models.load.load_base_model``, or ``pipeline=`` an
already-built diffusers pipeline. Standalone embedding files (``emb_params`` / ``clip_l``+``clip_g``)
are recognised and checked as embeddings (item 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from textboost_ext.export.checklist import BUNDLE_KEY_PATTERN, FAMILY_SPECS, CheckResult, FamilySpec, check_lora_tensors, spec_from_text_encoders
from textboost_ext.export.embeddings import BUNDLE_SUFFIX, EMBEDDING_KEYS
from textboost_ext.export.hashes import kohya_hashes, model_hash
from textboost_ext.export.lora_file import check_network_metadata
from textboost_ext.export.oracle import diffusers_oracle, pipeline_text_encoders
from textboost_ext.export.metadata_checks import (
    check_metadata,
    check_version_keys,
    detect_family,
    embedding_name_problem,
    family_from_metadata,
)
from textboost_ext.export.safetensors_io import load_tensors, read_header

FAMILY_CHOICES = ("sd1", "sd2", "sdxl")


@dataclass
class VerifyReport:
    path: Path
    kind: str = "lora"  # "lora" | "embedding" | "unknown"
    family: str | None = None
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.ok and c.warn]

    def format_table(self) -> str:
        width = max([len(c.name) for c in self.checks] + [5])
        lines = [f"{self.path}  ({self.kind}, family: {self.family or 'unknown'})", f"{'':6}{'check':<{width}}  detail"]
        for c in self.checks:
            lines.append(f"{'FAIL' if not c.ok else 'WARN' if c.warn else 'PASS':<6}{c.name:<{width}}  {c.detail}")
        failed, warned = self.failures(), self.warnings()
        warning_note = f" ({len(warned)} warning(s): {', '.join(c.name for c in warned)})" if warned else ""
        lines.append(f"OK: all {len(self.checks)} checks passed{warning_note}" if self.ok else
                     f"FAILED: {len(failed)} of {len(self.checks)} checks: {', '.join(c.name for c in failed)}{warning_note}")
        return "\n".join(lines)


def pipeline_family(pipe: Any) -> str:
    """"sdxl" (two encoders), "sd1"/"sd2" by width, or "sd1/sd2" for one encoder of another width (tiny/custom)."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    return {768: "sd1", 1024: "sd2"}.get(int(pipe.text_encoder.config.hidden_size), "sd1/sd2")


def pipeline_from_loaded(loaded: Any) -> Any:
    """A diffusers pipeline around a ``LoadedModel`` (or the object itself if it already is one)."""
    if hasattr(loaded, "load_lora_weights"):
        return loaded
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if loaded.family == "sdxl":
        return StableDiffusionXLPipeline(vae=loaded.vae, text_encoder=loaded.text_encoders[0], text_encoder_2=loaded.text_encoders[1],
                                         tokenizer=loaded.tokenizers[0], tokenizer_2=loaded.tokenizers[1], unet=loaded.unet,
                                         scheduler=loaded.noise_scheduler)
    return StableDiffusionPipeline(vae=loaded.vae, text_encoder=loaded.text_encoders[0], tokenizer=loaded.tokenizers[0],
                                   unet=loaded.unet, scheduler=loaded.noise_scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def load_base_pipeline(base: str) -> tuple[Any, str | None]:
    """``(pipeline, family)`` for ``--base``: ``load_base_model(base)``, or a local diffusers folder without it."""
    try:
        from textboost_ext.models.load import load_base_model
    except ModuleNotFoundError as exc:
        if exc.name != "textboost_ext.models.load":
            raise
        if not (Path(base) / "model_index.json").is_file():
            raise ValueError(f"--base {base}: textboost_ext.models.load is not available and {base} is not a "
                             f"local diffusers folder (model_index.json)") from exc
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(base, local_files_only=True)
        return pipe, pipeline_family(pipe)
    loaded = load_base_model(base, fix_eos_pooling=False)  # the oracle must see the encoders as diffusers loads them
    return pipeline_from_loaded(loaded), getattr(loaded, "family", None)


def _hash_checks(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> CheckResult:
    stored_model, stored_legacy = metadata.get("sshs_model_hash"), metadata.get("sshs_legacy_hash")
    if stored_model is None and stored_legacy is None:
        return CheckResult("sshs hashes", True, "absent")
    problems = []
    if stored_model is not None and stored_model != model_hash(path):
        problems.append(f"sshs_model_hash {str(stored_model)[:12]}... != sha256 of the file's tensor data {model_hash(path)[:12]}...")
    if stored_legacy is not None:
        expected = kohya_hashes(tensors, {k: v for k, v in metadata.items() if isinstance(v, str)})[1]
        if stored_legacy != expected:
            problems.append(f"sshs_legacy_hash {stored_legacy!r} != {expected!r} (kohya's definition)")
    return CheckResult("sshs hashes", not problems, "; ".join(problems) if problems else "exact")


def check_embedding(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], family: str, stem: str,
                    spec: FamilySpec) -> list[CheckResult]:
    """Item 7 (+ shapes/finite/version) for a standalone ``<name>.safetensors`` embedding."""
    problem = embedding_name_problem(stem)
    results = [CheckResult("embedding name", problem is None, problem or f"{stem!r} (file stem = name)")]
    expected = EMBEDDING_KEYS[family]
    results.append(CheckResult("embedding keys", set(tensors) == set(expected), f"{sorted(tensors)} (expected {list(expected)})"))
    bad = []
    for key, encoder in zip(expected, spec.encoders):
        t = tensors.get(key)
        if t is not None and (t.dim() != 2 or t.shape[1] != encoder.hidden):
            bad.append(f"{key} {tuple(t.shape)} (expected [n, {encoder.hidden}])")
    rows = {t.shape[0] for t in tensors.values() if t.dim() == 2}
    if len(rows) > 1:
        bad.append(f"different vector counts {sorted(rows)}")
    results.append(CheckResult("embedding shapes", not bad, "; ".join(bad) if bad else f"{next(iter(rows), '?')} vector(s)"))
    nonfinite = [k for k, v in tensors.items() if not bool(torch.isfinite(v.float()).all())]
    results.append(CheckResult("finite values", not nonfinite, f"NaN/Inf in {nonfinite}" if nonfinite else "no NaN/Inf"))
    not_str = [k for k, v in metadata.items() if not isinstance(v, str)]
    results.append(CheckResult("metadata strings", not not_str, f"non-string values: {not_str}" if not_str else ""))
    if "modelspec.architecture" in metadata:
        results.append(check_version_keys(metadata, family, adapter="textual-inversion"))
    return results


def _family_check(arch: str | None, file_family: str | None, base_family: str | None) -> tuple[str | None, CheckResult]:
    """One family that --arch, the file and the base all allow (a base claim may be "sd1/sd2")."""
    if arch is not None and arch not in FAMILY_CHOICES:
        return None, CheckResult("family", False, f"--arch {arch!r} is not one of {FAMILY_CHOICES}")
    claims = {k: v for k, v in {"--arch": arch, "file": file_family, "base": base_family}.items() if v is not None}
    allowed = set(FAMILY_CHOICES)
    for claim in claims.values():
        allowed &= set(claim.split("/"))
    said = ", ".join(f"{k} says {v}" for k, v in claims.items())
    if len(allowed) == 1:
        family = allowed.pop()
        return family, CheckResult("family", True, f"{family} ({', '.join(claims)})")
    if not allowed:
        return arch or file_family, CheckResult("family", False, f"disagreement: {said}")
    return None, CheckResult("family", False, f"cannot tell the base family ({said or 'no metadata'}); pass --arch")


def verify_file(
    path: str | os.PathLike[str],
    arch: str | None = None,
    base: str | None = None,
    *,
    pipeline: Any = None,
    spec: FamilySpec | None = None,
    bundled: bool | None = None,
    embedding: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Check ``path`` against the compatibility checklist; never raises for a bad file (see ``report.ok``).

    ``arch`` ("sd1"|"sd2"|"sdxl") must agree with the file; ``base`` / ``pipeline`` enable the diffusers
    oracle and check shapes against that base's exact dims (``spec`` overrides the dims); ``bundled``
    allows ``bundle_emb`` keys (default: only for ``*_a1111_bundle.safetensors``). For a TextBoost
    adapter (``ss_textboost_placeholder_token`` in the metadata) the oracle loads its embedding
    (``embedding``, default: found beside the file) and encodes a prompt with the trigger phrase.
    """
    path = Path(path)
    report = VerifyReport(path)
    try:
        metadata, _ = read_header(path)
        tensors = load_tensors(path)
    except Exception as exc:  # safetensors raises its own error types besides OSError/ValueError
        report.checks.append(CheckResult("loads with safetensors", False, f"{type(exc).__name__}: {exc}"))
        return report
    report.checks.append(CheckResult("loads with safetensors", True, f"{len(tensors)} tensors"))
    base_family = None
    if base is not None and pipeline is None:
        pipeline, base_family = load_base_pipeline(base)
    report.kind = "embedding" if tensors and set(tensors) <= {"emb_params", "clip_l", "clip_g"} else "lora"
    file_family = detect_family(metadata, tensors) if report.kind == "lora" else _embedding_family(metadata, tensors)
    if pipeline is not None and base_family is None:
        base_family = pipeline_family(pipeline)
    family, family_check = _family_check(arch, file_family, base_family)
    report.family = family
    report.checks.append(family_check)
    if family is None:
        return report
    if not family_check.ok:
        pipeline = None  # a base of another family can neither give the dims nor run the oracle
    if spec is None:
        spec = spec_from_text_encoders(family, _encoders(pipeline)) if pipeline is not None else FAMILY_SPECS[family]
    if report.kind == "embedding":
        report.checks += check_embedding(tensors, metadata, family, path.stem, spec)
        return report
    allow_bundle = path.stem.endswith(BUNDLE_SUFFIX) if bundled is None else bundled
    report.checks += check_lora_tensors(tensors, family, spec, allow_bundle=allow_bundle)
    report.checks += check_metadata(metadata, family, path.stem)
    report.checks += check_network_metadata(tensors, {k: v for k, v in metadata.items() if isinstance(v, str)})
    report.checks.append(_hash_checks(path, tensors, metadata))
    bundle_names = sorted({m.group(1) for m in map(BUNDLE_KEY_PATTERN.match, tensors) if m})
    if bundle_names:
        problems = [p for p in map(embedding_name_problem, bundle_names) if p]
        report.checks.append(CheckResult("embedding name", not problems, "; ".join(problems) or ", ".join(bundle_names)))
    if pipeline is not None:
        if any(k.startswith("bundle_emb.") for k in tensors):
            report.checks.append(CheckResult("diffusers oracle", True, "not applicable: diffusers refuses bundle_emb files by design"))
        elif not report.ok:
            report.checks.append(CheckResult("diffusers oracle", False, "not run: fix the failures above first"))
        else:
            report.checks += _oracle_with_embedding(pipeline, path, metadata, embedding)
    return report


def find_embedding(lora_path: Path, metadata: dict[str, Any]) -> tuple[str | None, list[Path]]:
    """``(placeholder token, candidate files)`` for a TextBoost LoRA: ``<stem>_embeddings/<token>.safetensors``
    (a checkpoint's own) then ``embeddings/<token>.safetensors`` beside the file; ``(None, [])`` otherwise."""
    token = metadata.get("ss_textboost_placeholder_token")
    if not isinstance(token, str) or not token:
        return None, []
    name = f"{token}.safetensors"
    return token, [lora_path.parent / f"{lora_path.stem}_embeddings" / name, lora_path.parent / "embeddings" / name]


def _oracle_with_embedding(pipeline: Any, path: Path, metadata: dict[str, Any],
                           embedding: str | os.PathLike[str] | None) -> list[CheckResult]:
    token, candidates = find_embedding(path, metadata)
    trigger = metadata.get("modelspec.trigger_phrase") or token
    if embedding is None and token is not None:
        embedding = next((c for c in candidates if c.is_file()), None)
        if embedding is None:
            return [CheckResult("diffusers: embedding file", False, f"the LoRA was trained with the placeholder "
                                f"{token!r}, but {' and '.join(map(str, candidates))} do not exist; pass --embedding PATH")]
    results = []
    if embedding is not None:
        results.append(CheckResult("diffusers: embedding file", True, f"{embedding}; prompt with {trigger!r}"))
    return results + diffusers_oracle(pipeline, path, embedding=embedding, trigger=trigger if embedding is not None else None)


def _encoders(pipe: Any) -> list[Any]:
    return [encoder for _, encoder, _ in pipeline_text_encoders(pipe)]


def _embedding_family(metadata: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str | None:
    if {"clip_l", "clip_g"} & set(tensors):
        return "sdxl"
    found = family_from_metadata(metadata)
    if found:
        return next(iter(found.values()))
    dim = tensors["emb_params"].shape[-1] if "emb_params" in tensors else None
    return {768: "sd1", 1024: "sd2"}.get(dim)
