"""The prompts ``textboost-hub eval`` runs: the shipped set, or a user's kohya prompts file.

A prompt is a *template*: ``{}`` stands for the subject, which each model fills in its own way:
"tbmug mug" (placeholder + class noun) for an adapter, "mug" (the class noun) for the base and for
CLIP-T's text. So one prompt list serves the adapters, the base reference point and the scorer.

- Shipped (``data/eval_prompts.txt``): 27 prompts in four categories (recontextualization,
  accessorization, property, style), one ``[category]`` header per group.
- ``--prompts FILE``: the kohya prompts format training uses (``--n --w --h --s --l --d`` per line,
  parsed by the host's own parser). A line names the subject with ``{}`` or with an adapter's
  trigger phrase / placeholder token, which becomes ``{}``; a line without the subject is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

SUBJECT = "{}"
SHIPPED_FILE = "eval_prompts.txt"
_VOWEL_ARTICLE = re.compile(r"\b([Aa]) \{\}")


class PromptSetError(ValueError):
    """A prompt file or line that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt template plus the per-line sampling options a prompts file may set."""

    template: str
    category: str = "custom"
    negative: str = ""
    steps: int | None = None
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    case: Any = field(default=None, compare=False)  # a scorer's own description of the prompt (toy world)

    def text(self, subject_words: str) -> str:
        """The prompt with ``subject_words`` in the subject slot ("a {}" -> "an {}" before a vowel)."""
        def article(match: re.Match[str]) -> str:
            vowel = subject_words[:1].lower() in tuple("aeiou")
            return f"{match.group(1)}{'n' if vowel else ''} {SUBJECT}"

        return _VOWEL_ARTICLE.sub(article, self.template).replace(SUBJECT, subject_words)


def shipped_prompts() -> list[EvalPrompt]:
    """The project's evaluation set (``textboost_ext/evaluation/data/eval_prompts.txt``)."""
    text = resources.files("textboost_ext.evaluation").joinpath("data").joinpath(SHIPPED_FILE).read_text(encoding="utf-8")
    return parse_sectioned_prompts(text, SHIPPED_FILE)


def parse_sectioned_prompts(text: str, where: str) -> list[EvalPrompt]:
    prompts: list[EvalPrompt] = []
    category = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            category = line[1:-1].strip()
            continue
        if category is None or SUBJECT not in line:
            raise PromptSetError(f"{where}:{number}: expected a [category] header first and {SUBJECT} in every prompt")
        prompts.append(EvalPrompt(template=line, category=category))
    return prompts


def template_of(prompt: str, subject_phrases: Sequence[str], where: str) -> str:
    """``prompt`` with its subject turned into ``{}``: kept if it has ``{}``, else the longest of
    ``subject_phrases`` (triggers before bare tokens) found as whole words, every occurrence."""
    if SUBJECT in prompt:
        return prompt
    for phrase in sorted({p for p in subject_phrases if p}, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w<-]){re.escape(phrase)}(?![\w>-])")
        if pattern.search(prompt):
            return pattern.sub(lambda _m: SUBJECT, prompt)
    names = " or ".join(repr(p) for p in sorted({p for p in subject_phrases if p})) or "the placeholder token"
    raise PromptSetError(f"{where}: the prompt does not mention the subject; write {SUBJECT} or {names} where it goes")


def prompts_from_file(path: str | Path, subject_phrases: Sequence[str]) -> list[EvalPrompt]:
    """A kohya prompts file as eval templates (the host's parser reads it: same syntax as training)."""
    from textboost_ext.host.sampling import parse_prompts_file

    path = Path(path)
    out = []
    samples = parse_prompts_file(path)
    lines = [n for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if raw.strip() and not raw.strip().startswith("#")]
    for number, sample in zip(lines, samples):
        given = set(sample.given)
        out.append(EvalPrompt(
            template=template_of(sample.prompt, subject_phrases, f"{path}:{number}"),
            category="custom",
            negative=sample.negative_prompt,
            steps=sample.steps if "steps" in given else None,
            scale=sample.scale if "scale" in given else None,
            width=sample.width,
            height=sample.height,
            seed=sample.seed,
        ))
    return out
