"""The sd-webui-additional-networks hashes that kohya stores as ``sshs_model_hash`` / ``sshs_legacy_hash``.

Behaviour learned from kohya-ss/sd-scripts (``library/train_util.py``: ``precalculate_safetensors_hashes``,
``addnet_hash_safetensors``, ``addnet_hash_legacy``; called from ``LoRANetwork.save_weights`` after the
state dict is cast to the save dtype):

- the state dict (already cast) is serialised IN MEMORY with ``safetensors.torch.save(tensors, m)``
  where ``m`` keeps only the metadata keys starting with ``ss_`` (so later edits of other metadata do
  not change the hash); ``m`` is always a dict, possibly empty (an empty dict still writes
  ``"__metadata__":{}``, which changes the header length);
- model hash = sha256 hex of the bytes after the header (8-byte little-endian length n, bytes n+8..end);
- legacy hash = first 8 hex chars of sha256 over the 0x10000 bytes at offset 0x100000 of that same
  in-memory serialisation (fewer, possibly none, when it is shorter: sha256(b"") -> "e3b0c442").

Consequences we rely on and test: the bytes after the header depend only on the tensors (names,
dtypes, shapes, values; safetensors orders them by dtype alignment then name and stores offsets
relative to the data section), NOT on metadata, so the model hash recomputed from the final file is
exactly the stored value. The legacy hash covers a window that starts inside or near the header, so it
is an identifier of the (tensors, ``ss_*`` metadata) pair: for files over ~1 MiB it generally differs
from the same window of the final file (whose header also holds ``modelspec.*`` and ``sshs_*``).
This is kohya's behaviour; recompute it with ``kohya_hashes`` from the file's tensors and ``ss_*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

# The file hashes themselves are shared with the torch-free adapter store.
from textboost_ext.safetensors_header import legacy_hash, model_hash

if TYPE_CHECKING:
    import torch

__all__ = ["hash_metadata", "kohya_hashes", "legacy_hash", "model_hash"]


def hash_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The part of the metadata kohya feeds to the hash: only ``ss_*`` keys (``sshs_*`` is not ``ss_*``)."""
    return {k: v for k, v in metadata.items() if k.startswith("ss_")}


def kohya_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """``(sshs_model_hash, sshs_legacy_hash)`` exactly as kohya computes them for these tensors + metadata.

    ``tensors`` must already be in the dtype they will be saved in.
    """
    import safetensors.torch

    data = safetensors.torch.save(dict(tensors), metadata=hash_metadata(metadata))
    return model_hash(data), legacy_hash(data)
