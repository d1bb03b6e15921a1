"""CLIP-T, CLIP-I and DINO on constructed cases, with tiny random models standing in for the real ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from textboost_ext.evaluation.scorers import ClipScorer, DinoScorer, ScorerModelError, load_pretrained


def _images(n: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1)


def _features(out: object) -> torch.Tensor:
    return out if torch.is_tensor(out) else out.pooler_output  # transformers 4 / 5


def test_identical_images_score_one_and_different_ones_less(tiny_clip_dir: Path, tiny_dino_dir: Path) -> None:
    references = _images(1, seed=0)
    others = _images(3, seed=1)
    clip = ClipScorer(str(tiny_clip_dir), references)
    dino = DinoScorer(str(tiny_dino_dir), references)
    same = clip.score(references, ["a mug"], [None])[0]["clip_i"], dino.score(references, ["a mug"], [None])[0]["dino"]
    assert same == pytest.approx((1.0, 1.0), abs=1e-5)
    assert all(row["clip_i"] < 0.9999 for row in clip.score(others, ["a mug"] * 3, [None] * 3))
    assert all(row["dino"] < 0.9999 for row in dino.score(others, ["a mug"] * 3, [None] * 3))


def test_clip_t_pairs_each_image_with_its_own_prompt(tiny_clip_dir: Path) -> None:
    """CLIP-T is the cosine of projected image and text embeddings of the SAME pair: shuffling the texts
    permutes the scores exactly as the full similarity matrix says."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    images = _images(4, seed=2)
    texts = ["a photo of a mug", "a red car in the snow", "a watercolor of a dog", "an empty beach at sunset"]
    scorer = ClipScorer(str(tiny_clip_dir), images[:1])
    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny_clip_dir)(images=images, return_tensors="pt")["pixel_values"]
    tokens = AutoTokenizer.from_pretrained(tiny_clip_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        matrix = _cos(_features(model.get_image_features(pixel_values=pixels)),
                      _features(model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])))
    matched = [row["clip_t"] for row in scorer.score(images, texts, [None] * 4)]
    order = [2, 0, 3, 1]
    shuffled = [row["clip_t"] for row in scorer.score(images, [texts[j] for j in order], [None] * 4)]
    assert matched == pytest.approx(matrix.diagonal().tolist(), abs=1e-5)
    assert shuffled == pytest.approx([matrix[i, j].item() for i, j in enumerate(order)], abs=1e-5)
    assert matched != pytest.approx(shuffled, abs=1e-4)


def test_clip_i_and_dino_average_over_the_reference_images(tiny_clip_dir: Path, tiny_dino_dir: Path) -> None:
    from transformers import AutoImageProcessor, AutoModel

    references = _images(2, seed=4)
    image = _images(1, seed=5)
    clip_pair = [ClipScorer(str(tiny_clip_dir), [r]).score(image, ["x"], [None])[0]["clip_i"] for r in references]
    clip_both = ClipScorer(str(tiny_clip_dir), references).score(image, ["x"], [None])[0]["clip_i"]
    assert clip_both == pytest.approx(sum(clip_pair) / 2, abs=1e-6)

    model = AutoModel.from_pretrained(tiny_dino_dir).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny_dino_dir)(images=image + references, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        cls = model(pixel_values=pixels).pooler_output  # the layer-normed CLS token
    expected = _cos(cls[:1], cls[1:]).mean().item()
    assert DinoScorer(str(tiny_dino_dir), references).score(image, ["x"], [None])[0]["dino"] == pytest.approx(expected, abs=1e-5)


def test_unavailable_models_fail_with_the_option_and_the_fix(tmp_path: Path) -> None:
    from transformers import CLIPModel

    (tmp_path / "empty").mkdir()
    with pytest.raises(ScorerModelError, match=r"--clip_model .*empty: not a saved transformers model folder"):
        load_pretrained("--clip_model", str(tmp_path / "empty"), CLIPModel)
    with pytest.raises(ScorerModelError, match=r"--dino_model .*nowhere: no such folder, and not a Hugging Face Hub id"):
        load_pretrained("--dino_model", str(tmp_path / "nowhere"), CLIPModel)
    # The suite runs with HF_HUB_OFFLINE=1 (tests/conftest.py): a Hub id that is not cached cannot load.
    with pytest.raises(ScorerModelError, match=r"--clip_model someone/no-such-clip: not available offline .*hf download someone/no-such-clip"):
        load_pretrained("--clip_model", "someone/no-such-clip", CLIPModel)
