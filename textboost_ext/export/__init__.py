"""Export: the kohya-format text-encoder LoRA, embeddings, metadata, sidecars, verify and convert.

Typical use after training::

    from textboost_ext.export import TrainingInfo, build_metadata, write_lora_file, write_embedding_file
    meta = build_metadata(TrainingInfo(output_name="mydog", family="sd1", network_dim=4, network_alpha=4.0))
    write_lora_file("out/mydog.safetensors", network.kohya_state_dict(), meta)    # fp16 by default
    write_embedding_file("out/mydogtoken.safetensors", {"emb_params": vectors}, "mydogtoken", "sd1")
    assert verify_file("out/mydog.safetensors").ok

diffusers is imported only by the oracle / base loading (``verify_file(..., base=...)``).
"""

from textboost_ext.export.checklist import CheckResult, FamilySpec, spec_from_text_encoders
from textboost_ext.export.embeddings import bundle_embedding_keys, write_bundled_lora, write_embedding_file
from textboost_ext.export.hashes import kohya_hashes, legacy_hash, model_hash
from textboost_ext.export.lora_file import save_precision_dtype, write_lora_file
from textboost_ext.export.metadata import TrainingInfo, build_metadata
from textboost_ext.export.safetensors_io import atomic_save_safetensors, read_header
from textboost_ext.export.sidecars import write_preview, write_user_metadata_json
from textboost_ext.export.verify import VerifyReport, verify_file

__all__ = [
    "CheckResult",
    "FamilySpec",
    "TrainingInfo",
    "VerifyReport",
    "atomic_save_safetensors",
    "build_metadata",
    "bundle_embedding_keys",
    "kohya_hashes",
    "legacy_hash",
    "model_hash",
    "read_header",
    "save_precision_dtype",
    "spec_from_text_encoders",
    "verify_file",
    "write_bundled_lora",
    "write_embedding_file",
    "write_lora_file",
    "write_preview",
    "write_user_metadata_json",
]
