from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from textboost_ext.method import preservation
from textboost_ext.method.preservation import (
    OriginalOutputCache,
    PreservationPromptSampler,
    kp_loss,
    load_prompt_file,
    padding_mask,
    shipped_prompts,
)


def conditioning(seed: int, b: int = 3, length: int = 77) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, length, 8, generator=g), torch.randn(b, length, 12, generator=g), torch.randn(b, 12, generator=g)]


# ---- loss ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cosine", "mse"])
def test_kp_loss_zero_for_identical_and_positive_otherwise(kind: str) -> None:
    h = conditioning(0)
    assert kp_loss(h, [t.clone() for t in h], kind).item() == pytest.approx(0.0, abs=1e-6)
    assert kp_loss(h, conditioning(1), kind).item() > 0.1
    assert kp_loss(h, conditioning(1), kind).dtype == torch.float32


def test_cosine_definition_and_difference_from_mse() -> None:
    h, h0 = conditioning(0), conditioning(1)
    expected = torch.stack([(1 - torch.nn.functional.cosine_similarity(a, b, dim=-1)).mean() for a, b in zip(h, h0)]).mean()
    assert torch.allclose(kp_loss(h, h0, "cosine"), expected)
    # scaling the adapted output changes mse but not cosine
    scaled = [2 * t for t in h0]
    assert kp_loss(scaled, h0, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert kp_loss(scaled, h0, "mse").item() > 0.5
    mse = torch.stack([(a - b).pow(2).mean() for a, b in zip(h, h0)]).mean()
    assert torch.allclose(kp_loss(h, h0, "mse"), mse)


def test_gradient_flows_only_into_adapted() -> None:
    h = [t.requires_grad_(True) for t in conditioning(0)]
    h0 = [t.requires_grad_(True) for t in conditioning(1)]
    kp_loss(h, h0, "cosine").backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in h)
    assert all(t.grad is None for t in h0)


def test_mask_restricts_positions_and_ignores_pooled() -> None:
    h, h0 = conditioning(0, b=2, length=6), conditioning(1, b=2, length=6)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    # changing masked-out positions does not change the masked loss
    changed = [t.clone() for t in h]
    changed[0][:, 4:] += 100
    changed[1][:, 4:] += 100
    assert torch.allclose(kp_loss(h, h0, "cosine", mask), kp_loss(changed, h0, "cosine", mask))
    assert not torch.allclose(kp_loss(h, h0, "cosine"), kp_loss(changed, h0, "cosine"))
    seq = [(1 - torch.nn.functional.cosine_similarity(h[i], h0[i], dim=-1))[mask].mean() for i in range(2)]
    pooled = (1 - torch.nn.functional.cosine_similarity(h[2], h0[2], dim=-1)).mean()
    assert torch.allclose(kp_loss(h, h0, "cosine", mask), torch.stack([*seq, pooled]).mean())
    with pytest.raises(ValueError, match="mask shape"):
        kp_loss(h, h0, "cosine", mask[:, :5])


def test_padding_mask() -> None:
    ids = torch.tensor([[49406, 320, 49407, 49407, 49407], [49406, 320, 1125, 49407, 0]])
    assert padding_mask(ids, 49407).tolist() == [[True, True, True, False, False], [True, True, True, True, False]]
    with pytest.raises(ValueError):
        padding_mask(torch.tensor([[49406, 320]]), 49407)


def test_kp_loss_bad_input() -> None:
    h = conditioning(0)
    for args in ((h, h[:2]), ([], []), (h, conditioning(0, b=2)), ([torch.zeros(3)], [torch.zeros(3)])):
        with pytest.raises(ValueError):
            kp_loss(*args)
    with pytest.raises(ValueError, match="kpl_type"):
        kp_loss(h, h, "l1")  # type: ignore[arg-type]


# ---- prompt files -------------------------------------------------------------------------------------
def test_txt_prompt_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("# my prompts\na cat on a sofa\n\n  a red car  \na cat on a sofa\n#skip\nan old bridge\n", encoding="utf-8")
    assert load_prompt_file(path) == ["a cat on a sofa", "a red car", "an old bridge"]


def test_jsonl_prompt_file_uses_input_and_output(tmp_path: Path) -> None:
    path = tmp_path / "human-written-prompts.jsonl"
    rows = [{"input": "a dog in a park", "edit": "make it snow", "output": "a dog in a snowy park"},
            {"input": "a dog in a park", "output": "a cat in a park"}, {"output": "a lighthouse"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert load_prompt_file(path) == ["a dog in a park", "a dog in a snowy park", "a cat in a park", "a lighthouse"]


def test_jsonl_skips_null_empty_and_none_fields_like_instructpix2pix_files(tmp_path: Path) -> None:
    path = tmp_path / "human-written-prompts.jsonl"
    rows = [{"input": "a red barn", "edit": "remove it", "output": None}, {"input": "a blue boat", "output": "NONE"},
            {"input": "", "output": "  "}, {"input": None, "output": "a green field"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert load_prompt_file(path) == ["a red barn", "a blue boat", "a green field"]
    only_gaps = tmp_path / "gaps.jsonl"
    only_gaps.write_text('{"input": null, "output": "NONE"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="contains no prompts"):
        load_prompt_file(only_gaps)


@pytest.mark.parametrize(
    "name,content,error,match",
    [
        ("missing.txt", None, FileNotFoundError, "missing.txt"),
        ("empty.txt", "# only a comment\n\n", ValueError, "no prompts"),
        ("bad.jsonl", '{"input": "a"}\n{"input": oops}\n', ValueError, "line 2 is not valid JSON"),
        ("list.jsonl", '["a", "b"]\n', ValueError, "line 1 is not a JSON object"),
        ("nofield.jsonl", '{"prompt": "a"}\n', ValueError, "line 1 has neither"),
        ("number.jsonl", '{"input": 3}\n', ValueError, "must be strings"),
        ("prompts.csv", "a,b\n", ValueError, "extension '.csv'"),
        ("latin1.txt", b"caf\xe9\n", ValueError, "not UTF-8"),
    ],
)
def test_prompt_file_errors(tmp_path: Path, name: str, content, error, match: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(error, match=match) as err:
        load_prompt_file(path)
    assert name in str(err.value)


def test_shipped_prompts_missing_or_empty_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    fake_pkg = tmp_path / "pkg"
    (fake_pkg / "data").mkdir(parents=True)
    monkeypatch.setattr(preservation.resources, "files", lambda _package: fake_pkg)
    with pytest.raises(FileNotFoundError, match="missing"):
        shipped_prompts()
    (fake_pkg / "data" / "preservation_prompts.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        shipped_prompts()
    (fake_pkg / "data" / "preservation_prompts.txt").write_text("a cat\na dog\na cat\n", encoding="utf-8")
    assert shipped_prompts() == ["a cat", "a dog"]


def test_shipped_prompt_set_if_present() -> None:
    path = Path(preservation.__file__).parent / preservation.SHIPPED_PROMPTS
    if not path.is_file():
        pytest.skip("the shipped prompt set is not written yet")
    prompts = shipped_prompts()
    assert len(prompts) >= 1000 and all(isinstance(p, str) and p for p in prompts)


# ---- sampler -----------------------------------------------------------------------------------
def test_sampler_proportions() -> None:
    prompts = [f"prompt {i}" for i in range(50)]
    sampler = PreservationPromptSampler(prompts, "dog")
    n = 20_000
    draws = sampler.sample(n, torch.Generator().manual_seed(0))
    empty = sum(d == "" for d in draws) / n
    klass = sum(d in sampler.class_prompts for d in draws) / n
    from_set = sum(d in prompts for d in draws) / n
    tol = 4 * (0.09 / n) ** 0.5
    assert abs(empty - 0.1) < tol and abs(klass - 0.1) < tol and abs(from_set - 0.8) < 4 * (0.16 / n) ** 0.5
    assert empty + klass + from_set == pytest.approx(1.0)
    assert all("dog" in c for c in sampler.class_prompts) and "a photo of a dog" in sampler.class_prompts
    counts = torch.tensor([draws.count(p) for p in prompts], dtype=torch.float64)
    assert counts.min() > 0.5 * counts.mean()  # every set prompt is drawn, roughly uniformly


def test_sampler_without_class_noun_and_articles() -> None:
    prompts = ["a", "b"]
    draws = PreservationPromptSampler(prompts, None).sample(5000, torch.Generator().manual_seed(1))
    assert set(draws) == {"", "a", "b"} and abs(draws.count("") / 5000 - 0.1) < 0.02
    assert "a photo of an apple" in PreservationPromptSampler(prompts, "apple").class_prompts


def test_sampler_reproducible_and_validated() -> None:
    sampler = PreservationPromptSampler(["x", "y", "z"], "cat")
    assert sampler.sample(16, torch.Generator().manual_seed(3)) == sampler.sample(16, torch.Generator().manual_seed(3))
    for kwargs in (dict(empty_p=-0.1), dict(class_p=1.2), dict(empty_p=0.6, class_p=0.6)):
        with pytest.raises(ValueError):
            PreservationPromptSampler(["x"], "cat", **kwargs)
    with pytest.raises(ValueError, match="empty"):
        PreservationPromptSampler([], "cat")


# ---- cache ---------------------------------------------------------------------------------------
class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> list[torch.Tensor]:
        assert not torch.is_grad_enabled()
        self.calls.append(list(prompts))
        seq = torch.stack([torch.full((4, 3), float(len(p))) for p in prompts])
        return [seq, seq[:, 0] * 2]


def test_cache_hits_and_misses() -> None:
    enc = CountingEncoder()
    cache = OriginalOutputCache(enc)
    out = cache.get(["ab", "abc", "ab"])
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2) and enc.calls == [["ab", "abc"]]
    assert [o.shape for o in out] == [(3, 4, 3), (3, 3)] and out[0][:, 0, 0].tolist() == [2.0, 3.0, 2.0]
    out = cache.get(["abc", "", "ab"])
    assert (cache.hits, cache.misses) == (3, 3) and enc.calls[-1] == [""]
    assert out[1][:, 0].tolist() == [6.0, 0.0, 4.0] and not out[0].requires_grad
    assert "abc" in cache and cache["abc"][0].shape == (4, 3) and cache.hit_rate == 0.5
    with pytest.raises(KeyError):
        cache["never"]
    cache.clear()
    assert len(cache) == 0 and cache.hits == cache.misses == 0


def test_cache_detaches_and_can_be_disabled() -> None:
    weight = torch.ones(1, requires_grad=True)
    cache = OriginalOutputCache(lambda ps: [weight * torch.ones(len(ps), 2)], storage_device="cpu")
    assert not cache.get(["a"])[0].requires_grad
    enc = CountingEncoder()
    off = OriginalOutputCache(enc, enabled=False)
    off.get(["a", "b"])
    off.get(["a"])
    assert (off.hits, off.misses, len(off)) == (0, 3, 0) and len(enc.calls) == 2
    with pytest.raises(ValueError, match="rows"):
        OriginalOutputCache(lambda ps: [torch.zeros(1, 2)]).get(["a", "b"])


def test_cache_fits_sequence_outputs_to_the_requested_length() -> None:
    # rows computed on prefixes of different lengths (two miss batches); pooled outputs untouched
    def compute(prompts: list[str]) -> list[torch.Tensor]:
        n = max(len(p) for p in prompts)
        seq = torch.stack([torch.arange(1.0, n + 1).unsqueeze(-1).repeat(1, 2) * len(p) for p in prompts])
        return [seq, torch.full((len(prompts), 3), float(len(prompts)))]

    cache = OriginalOutputCache(compute)
    cache.get(["ab"])
    cache.get(["abcd", "abc"])
    hidden, pooled = cache.get(["ab", "abcd"], length=3)
    assert hidden.shape == (2, 3, 2) and pooled.shape == (2, 3)
    assert hidden[0, :, 0].tolist() == [2.0, 4.0, 0.0]  # stored with 2 positions: zero-padded
    assert hidden[1, :, 0].tolist() == [4.0, 8.0, 12.0]  # stored with 4 positions: cut
    assert cache.get(["abc"])[0].shape == (1, 4, 2)  # without a length: as stored
