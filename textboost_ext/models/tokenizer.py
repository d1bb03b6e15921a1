"""The real CLIP BPE tokenizer (49,408 tokens) built offline from the vocabulary shipped in this package.

The vocabulary file ``assets/bpe_simple_vocab_16e6.txt.gz`` comes from open_clip (MIT licence). From it:
merges = lines 1..48,894 after the header; vocab = 256 byte symbols, the same with ``</w>``, the joined
merges, then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

N_MERGES = 49152 - 256 - 2  # 48,894


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: printable bytes map to themselves, the rest to 256+n.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    raw = resources.files("textboost_ext.assets").joinpath("bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges  # type: ignore[return-value]


def write_clip_tokenizer_files(directory: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` (the HF CLIPTokenizer file layout) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges()
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    return directory


def build_clip_tokenizer(directory: str | Path, pad_token: str = "<|endoftext|>") -> Any:
    """A ``transformers.CLIPTokenizer`` (max length 77) saved in ``directory`` and loaded from it.

    ``pad_token`` is ``<|endoftext|>`` for CLIP ViT-L (SD 1.x, SDXL encoder 1) and ``!`` for the
    OpenCLIP encoders (SD 2.x, SDXL encoder 2), as in the released checkpoints.
    """
    from transformers import CLIPTokenizer

    # from_pretrained on vocab.json + merges.txt works with transformers 4.x and 5.x alike (their
    # constructors differ: vocab_file/merges_file vs vocab/merges).
    directory = write_clip_tokenizer_files(directory)
    tok = CLIPTokenizer.from_pretrained(str(directory), model_max_length=77, pad_token=pad_token)
    tok.save_pretrained(str(directory))
    return tok
