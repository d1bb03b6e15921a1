from textboost_ext.models.tokenizer import build_clip_tokenizer


def test_real_clip_vocabulary(clip_tokenizer) -> None:
    assert len(clip_tokenizer) == 49408
    assert clip_tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_openclip_pad_token(tmp_path) -> None:
    tok = build_clip_tokenizer(tmp_path, pad_token="!")
    ids = tok("a photo", padding="max_length", max_length=77).input_ids
    assert ids[:4] == [49406, 320, 1125, 49407] and ids[4:] == [0] * 73
