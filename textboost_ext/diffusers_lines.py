"""What a diffusers user runs beyond ``load_lora_weights``: loading the embedding, and for SDXL one line more.

The released SDXL second encoder config says ``eos_token_id = 2``, with which transformers pools at the
HIGHEST token id of the prompt. Once ``load_textual_inversion`` adds the placeholder token (an id above
the 49,407 of end-of-text), the pooled embedding is taken at the placeholder instead of at the end of
the text: not what training computed (its encoder pools at end-of-text), and SDXL conditions on it. No
embedding file can change which position transformers pools at, so the user sets the id:
:data:`SDXL_POOLING_LINE`, which works with transformers 4 (``text_model`` is the CLIP transformer) and
5 (``text_model`` is a ``CLIPTextModel``); both read ``eos_token_id`` from that module at every call.

The README, the model card, the end-of-training text and the ``verify`` oracle all use these lines, so
what users are told is exactly what is verified. Standard library only: the torch-free Hub commands
import it.
"""

from __future__ import annotations

import json
from typing import Any

SDXL_POOLING_LINE = "pipe.text_encoder_2.text_model.eos_token_id = pipe.tokenizer_2.eos_token_id"
SDXL_POOLING_COMMENT = "# SDXL: pool at the end-of-text token, as in training (not at the new token's id)"


def sdxl_embedding_lines(embedding: str, token: str) -> list[str]:
    """Python lines that load an SDXL embedding file (``clip_l`` + ``clip_g``) and fix the pooling.
    ``embedding``: a Python expression for the loaded file (a ``load_file(...)`` dict)."""
    name = json.dumps(token, ensure_ascii=False)
    return [
        f"pipe.load_textual_inversion({embedding}[\"clip_l\"], token={name}, text_encoder=pipe.text_encoder, "
        "tokenizer=pipe.tokenizer)",
        f"pipe.load_textual_inversion({embedding}[\"clip_g\"], token={name}, text_encoder=pipe.text_encoder_2, "
        "tokenizer=pipe.tokenizer_2)",
        f"{SDXL_POOLING_LINE}  {SDXL_POOLING_COMMENT}",
    ]


def apply_sdxl_pooling_line(pipe: Any) -> None:
    """Run :data:`SDXL_POOLING_LINE` itself on ``pipe`` (the oracle verifies the documented text, not a copy)."""
    exec(compile(SDXL_POOLING_LINE, "<documented diffusers line>", "exec"), {"pipe": pipe})  # noqa: S102
