from __future__ import annotations

import pytest
import torch

from textboost_ext.method.augment import (
    AUGMENT_PHRASES,
    AUGMENT_SET_TAGS,
    AUGMENT_TOKENS,
    SEPARATOR_VALUE,
    Collage,
    Crop,
    Grayscale,
    HFlip,
    Shift,
    Zoom,
    apply_augmentations,
    augment_batch,
    augment_view,
    collage_layout,
    plan_augmentations,
    resize,
)

H, W = 36, 48  # non-square on purpose


def random_image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, H, W, generator=g) * 2 - 1


def ramp_image() -> torch.Tensor:
    # columns carry distinct values, so horizontal moves are measurable
    x = torch.linspace(-1, 1, W).view(1, 1, W).expand(3, H, W).clone()
    x[1] *= 0.5
    return x


def test_hflip_equals_torch_flip() -> None:
    img = random_image()
    view = apply_augmentations(img, [HFlip()])
    assert torch.equal(view.image, torch.flip(img, dims=[-1])) and view.tags == ["hflip"]


def test_grayscale_has_equal_channels_with_bt601_luma() -> None:
    img = random_image()
    view = apply_augmentations(img, [Grayscale()])
    out = view.image
    assert view.tags == ["grayscale"] and out.shape == img.shape
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert torch.allclose(out[0], 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2], atol=1e-6)


@pytest.mark.parametrize("direction", ["left", "right"])
def test_shift_moves_content_and_pads_with_edge_column(direction: str) -> None:
    img = ramp_image()
    view = apply_augmentations(img, [Shift(0.25, direction)])
    out, d = view.image, 12  # 0.25 * 48
    assert view.tags == [direction] and out.shape == img.shape
    if direction == "left":  # content moved left: subject ends up on the left of the frame
        assert torch.equal(out[:, :, : W - d], img[:, :, d:])
        assert torch.equal(out[:, :, W - d :], img[:, :, -1:].expand(3, H, d))
    else:
        assert torch.equal(out[:, :, d:], img[:, :, : W - d])
        assert torch.equal(out[:, :, :d], img[:, :, :1].expand(3, H, d))


def test_zoom_out_shrinks_content_and_replicates_borders() -> None:
    img = random_image()
    view = apply_augmentations(img, [Zoom(0.5)])
    out = view.image
    assert view.tags == ["zoom-out"] and out.shape == img.shape
    sh, sw = 18, 24
    top, left = (H - sh) // 2, (W - sw) // 2
    small = resize(img, sh, sw)
    assert torch.allclose(out[:, top : top + sh, left : left + sw], small)
    # borders replicate the shrunken content's edges
    assert torch.allclose(out[:, :top, left : left + sw], small[:, :1, :].expand(3, top, sw))
    assert torch.allclose(out[:, top : top + sh, :left], small[:, :, :1].expand(3, sh, left))
    assert torch.allclose(out[:, top + sh :, left + sw :], small[:, -1:, -1:].expand(3, H - top - sh, W - left - sw))


def test_zoom_in_is_a_resized_centre_crop() -> None:
    img = random_image()
    view = apply_augmentations(img, [Zoom(1.3)])
    ch, cw = round(H / 1.3), round(W / 1.3)
    top, left = (H - ch) // 2, (W - cw) // 2
    assert view.tags == ["zoom-in"] and view.image.shape == img.shape
    assert torch.allclose(view.image, resize(img[:, top : top + ch, left : left + cw], H, W))


@pytest.mark.parametrize("scale,tag", [(0.34, "zoom-out"), (0.59, "zoom-out"), (0.6, None), (1.0, None), (1.2, None), (1.21, "zoom-in"), (1.4, "zoom-in")])
def test_zoom_tag_thresholds(scale: float, tag: str | None) -> None:
    view = apply_augmentations(random_image(), [Zoom(scale)])
    assert view.tags == ([tag] if tag else []) and view.image.shape == (3, H, W)


def test_crop_keeps_size_and_covers_the_requested_area() -> None:
    img = random_image()
    view = apply_augmentations(img, [Crop(0.25, 1.0, 0.0)])  # bottom-left quarter of the area
    assert view.tags == ["crop"] and view.image.shape == img.shape
    assert torch.allclose(view.image, resize(img[:, H - 18 :, :24], H, W))
    full = apply_augmentations(img, [Crop(1.0, 0.5, 0.5)])
    assert torch.equal(full.image, img)


@pytest.mark.parametrize("k", [2, 3])
def test_collage_tiles_and_dark_separators(k: int) -> None:
    img = random_image().clamp(-0.9, 0.9)  # keep tiles distinguishable from separators
    view = apply_augmentations(img, [Collage(k)])
    out = view.image
    assert view.tags == ["collage"] and out.shape == img.shape
    rows, cols = collage_layout(H, k), collage_layout(W, k)
    assert len(rows) == len(cols) == k
    sep_rows = [y + h for y, h in rows[:-1]]
    sep_cols = [x + w for x, w in cols[:-1]]
    for r in sep_rows:
        assert torch.all(out[:, r, :] == SEPARATOR_VALUE)
    for c in sep_cols:
        assert torch.all(out[:, :, c] == SEPARATOR_VALUE)
    # every pixel is either a separator or belongs to exactly one of the k*k tiles
    covered = sum(h for _, h in rows) * sum(w for _, w in cols)
    assert covered + len(sep_rows) * W + len(sep_cols) * H - len(sep_rows) * len(sep_cols) == H * W
    for y, th in rows:
        for x, tw in cols:
            assert torch.allclose(out[:, y : y + th, x : x + tw], resize(img, th, tw))
            assert out[:, y : y + th, x : x + tw].gt(SEPARATOR_VALUE).all()


def test_collage_layout_positions() -> None:
    assert collage_layout(512, 2) == [(0, 256), (257, 255)]
    assert collage_layout(512, 3) == [(0, 170), (171, 170), (342, 170)]
    with pytest.raises(ValueError):
        collage_layout(2, 3)


def test_ops_compose_in_stage_order_with_tags() -> None:
    img = random_image()
    view = apply_augmentations(img, [Shift(0.2, "right"), Collage(2), Grayscale()])
    expected = Grayscale()(Collage(2)(Shift(0.2, "right")(img)))
    assert view.tags == ["right", "collage", "grayscale"] and torch.equal(view.image, expected)


@pytest.mark.parametrize("augment_set", ["object", "style", "none"])
def test_probability_zero_is_identity(augment_set: str) -> None:
    img = random_image()
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        view = augment_view(img, g, augment_set, p=0.0, color_p=0.0)
        assert view.tags == [] and torch.equal(view.image, img) and view.image is not img


def test_tag_statistics_match_probabilities() -> None:
    g = torch.Generator().manual_seed(123)
    n, p, color_p = 20_000, 0.5, 0.2
    plans = [plan_augmentations(g, "object", p, color_p) for _ in range(n)]
    geometric = [next((op for op in ops if isinstance(op, (Zoom, Crop, Shift, HFlip))), None) for ops in plans]
    frac = lambda cond: sum(map(cond, plans)) / n  # noqa: E731
    tol = 4 * (0.25 / n) ** 0.5
    assert abs(sum(op is not None for op in geometric) / n - p) < tol
    assert abs(frac(lambda ops: any(isinstance(o, Collage) for o in ops)) - p) < tol
    assert abs(frac(lambda ops: any(isinstance(o, Grayscale) for o in ops)) - color_p) < tol
    kinds = [type(op) for op in geometric if op is not None]
    for kind in (Zoom, Crop, Shift, HFlip):  # the four geometric kinds are equally likely
        assert abs(kinds.count(kind) / len(kinds) - 0.25) < 0.02
    shifts = [op.direction for op in geometric if isinstance(op, Shift)]
    assert abs(shifts.count("left") / len(shifts) - 0.5) < 0.04
    zooms = [op.scale for op in geometric if isinstance(op, Zoom)]
    assert 0.34 <= min(zooms) and max(zooms) <= 1.4
    assert abs(sum(s < 0.6 for s in zooms) / len(zooms) - (0.6 - 0.34) / (1.4 - 0.34)) < 0.03
    crops = [op.area_fraction for op in geometric if isinstance(op, Crop)]
    assert 0.08 <= min(crops) and max(crops) <= 1.0
    assert all(0.15 <= op.fraction <= 0.3 for op in geometric if isinstance(op, Shift))
    collage_k = [o.k for ops in plans for o in ops if isinstance(o, Collage)]
    assert set(collage_k) == {2, 3} and abs(collage_k.count(2) / len(collage_k) - 0.5) < 0.03
    # stage order: geometric, collage, grayscale
    order = {Zoom: 0, Crop: 0, Shift: 0, HFlip: 0, Collage: 1, Grayscale: 2}
    assert all([order[type(o)] for o in ops] == sorted(order[type(o)] for o in ops) for ops in plans)


def test_style_set_only_flips_and_grays() -> None:
    g = torch.Generator().manual_seed(7)
    tags = [tag for _ in range(2000) for tag in augment_view(random_image(), g, "style", p=0.5, color_p=0.2).tags]
    assert set(tags) == {"hflip", "grayscale"}
    assert abs(tags.count("hflip") / 2000 - 0.5) < 0.05 and abs(tags.count("grayscale") / 2000 - 0.2) < 0.04


def test_reproducible_and_batch_helper() -> None:
    imgs = torch.stack([random_image(i) for i in range(6)])
    a_img, a_tags = augment_batch(imgs, torch.Generator().manual_seed(9), p=0.9)
    b_img, b_tags = augment_batch(imgs, torch.Generator().manual_seed(9), p=0.9)
    assert torch.equal(a_img, b_img) and a_tags == b_tags and a_img.shape == imgs.shape
    c_img, _ = augment_batch(imgs, torch.Generator().manual_seed(10), p=0.9)
    assert not torch.equal(a_img, c_img)
    # views are independent: applying each plan alone reproduces the batch
    g = torch.Generator().manual_seed(9)
    for i in range(6):
        assert torch.equal(augment_view(imgs[i], g, p=0.9).image, a_img[i])


def test_half_precision_input_keeps_dtype() -> None:
    img = random_image().half()
    for op in (Zoom(0.5), Zoom(1.3), Crop(0.3, 0.2, 0.7), Shift(0.2, "left"), HFlip(), Collage(3), Grayscale()):
        assert op(img).dtype == torch.float16 and op(img).shape == img.shape


def test_vocabulary_covers_every_tag() -> None:
    assert set(AUGMENT_TOKENS) == set(AUGMENT_PHRASES) == set(AUGMENT_SET_TAGS["object"])
    tokens = [tok for tok, _ in AUGMENT_TOKENS.values()]
    assert len(set(tokens)) == len(tokens) and all(t.startswith("<") and t.endswith(">") for t in tokens)
    assert AUGMENT_TOKENS["zoom-in"] == ("<zoom-in>", "zoom in") and AUGMENT_PHRASES["collage"] == "photo collage of"
    assert set(AUGMENT_SET_TAGS["style"]) <= set(AUGMENT_TOKENS)


@pytest.mark.parametrize("bad", [torch.zeros(1, 8, 8), torch.zeros(3, 8), torch.zeros(3, 8, 8, dtype=torch.uint8)])
def test_bad_images_raise(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        apply_augmentations(bad, [HFlip()])


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError):
        plan_augmentations(None, "objects")
    with pytest.raises(ValueError):
        plan_augmentations(None, "object", p=1.5)
