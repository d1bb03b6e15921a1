"""Where the Hub token comes from, and keeping it out of every message we produce.

Order: the explicit argument, then ``HF_TOKEN``, then the token stored by ``hf auth login``
(``huggingface_hub.get_token()``). The token is only ever handed to ``HfApi``; anything we re-raise or
print goes through ``scrub`` first.
"""

from __future__ import annotations

import os
import re

REDACTED = "***"
# Hub user access tokens are "hf_" + 34 letters/digits; scrubbing the shape too catches a token we were
# not handed (a server echoing some other header). No "_" in the class, so names like hf_hub_download survive.
HUB_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")


def resolve_token(token: str | None = None) -> str | None:
    """The token to use, or None when the user is not logged in."""
    if token:
        return token.strip()
    if os.environ.get("HF_TOKEN", "").strip():
        return os.environ["HF_TOKEN"].strip()
    from huggingface_hub import get_token

    return get_token()


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with each secret (and anything shaped like a Hub token) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return HUB_TOKEN_PATTERN.sub(REDACTED, text)
