"""Model card: front matter parsed back with huggingface_hub.ModelCard, body sections, diffusers code that runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from textboost_ext.diffusers_lines import SDXL_POOLING_LINE
from textboost_ext.hub.card import base_model_for, diffusers_snippet, render_model_card, write_model_card
from textboost_ext.hub.errors import AdapterFormatError
from textboost_ext.hub.store import resolve_adapter

factory = sys.modules["tests_hub_adapter_factory"]  # loaded by conftest.py (importlib import mode)


def test_front_matter(adapter: Path, store: Path) -> None:
    card = ModelCard(render_model_card(resolve_adapter("corgi", store), repo_id="alice/corgi"))
    data = card.data.to_dict()
    assert {"text-to-image", "lora", "template:sd-lora", "stable-diffusion", "textboost", "diffusers",
            "textual-inversion"} <= set(data["tags"])
    assert "stable-diffusion-xl" not in data["tags"]
    assert data["license"] == "creativeml-openrail-m"
    assert data["base_model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"  # runwayml id moved
    assert data["instance_prompt"] == "mycorgi"
    # only the final step's samples, each pairing its prompt with its image (YAML-hostile prompt intact)
    assert data["widget"] == [
        {"text": "a photo of mycorgi on the beach", "output": {"url": "samples/step000250_00.png"}},
        {"text": 'mycorgi: a "watercolor" painting, #1', "output": {"url": "samples/step000250_01.png"}},
    ]
    for entry in data["widget"]:
        assert (adapter / entry["output"]["url"]).is_file()


def test_body_sections(adapter: Path, store: Path) -> None:
    text = ModelCard(render_model_card(resolve_adapter("corgi", store), repo_id="alice/corgi")).text
    assert "<Gallery />" in text
    assert "<lora:corgi:1>" in text and "models/Lora/" in text and "`embeddings/mycorgi.safetensors`" in text
    assert "LoraLoader" in text and "embedding:mycorgi" in text
    assert 'pipe.load_lora_weights("alice/corgi", weight_name="corgi.safetensors")' in text
    assert ('pipe.load_textual_inversion("alice/corgi", weight_name="embeddings/mycorgi.safetensors", '
            'token="mycorgi")') in text
    for row in ("| steps | 250 |", "| rank (network_dim) | 4 |", "| alpha (network_alpha) | 4.0 |",
                "| λ (knowledge preservation weight) | 0.1 |", "| timestep sampling | snr |",
                "| augmentations | object |", "| seed | 42 |", "| learning rate (LoRA) | 5e-05 |"):
        assert row in text
    assert "@article{park2024textboost" in text and "arXiv:2409.08248" in text
    assert "Park, NaHyeon and Kim, Kunhee and Shim, Hyunjung" in text


def test_sdxl_and_sd2v_cards(store: Path, lora_states) -> None:  # noqa: ANN001
    factory.make_adapter(store, lora_states("sdxl"), name="xl", family="sdxl", token="myxl")
    factory.make_adapter(store, lora_states("sd2v"), name="v2", family="sd2v", token="myv")
    xl = ModelCard(render_model_card(resolve_adapter("xl", store), repo_id="bob/xl"))
    assert xl.data.base_model == "stabilityai/stable-diffusion-xl-base-1.0"  # ss_sd_model_name is a file name
    assert xl.data.license == "openrail++"
    assert "stable-diffusion-xl" in xl.data.tags and "stable-diffusion" not in xl.data.tags
    assert "StableDiffusionXLPipeline" in xl.text
    assert 'embedding["clip_l"], token="myxl", text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer' in xl.text
    assert 'embedding["clip_g"], token="myxl", text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2' in xl.text
    v2 = ModelCard(render_model_card(resolve_adapter("v2", store)))
    assert v2.data.base_model == "stabilityai/stable-diffusion-2-1"  # a local path is not a Hub id
    assert v2.data.license == "openrail++"
    assert '"<your-username>/v2"' in v2.text  # no repo yet: an obvious placeholder


def test_base_model_rules(store: Path, lora_states) -> None:  # noqa: ANN001
    meta = factory.lora_metadata("sd1", "x", "tok", ss_sd_model_name="someone/my-finetune-v2")
    factory.make_adapter(store, lora_states("sd1"), name="x", token="tok", metadata=meta)
    assert base_model_for(resolve_adapter("x", store)) == "someone/my-finetune-v2"
    unknown = {k: v for k, v in factory.lora_metadata("sd1", "u", "tok").items()
               if k not in ("ss_base_model_version", "modelspec.architecture", "ss_v2", "ss_sd_model_name")}
    factory.make_adapter(store, lora_states("sd1"), name="u", token="tok", metadata=unknown)
    info = resolve_adapter("u", store)
    with pytest.raises(AdapterFormatError, match="base_model"):
        render_model_card(info)
    assert ModelCard(render_model_card(info, base_model="a/b")).data.base_model == "a/b"


def test_preview_is_the_widget_without_samples(adapter: Path, store: Path) -> None:
    for p in (adapter / "samples").iterdir():
        p.unlink()
    data = ModelCard(render_model_card(resolve_adapter("corgi", store))).data
    assert data.widget == [{"text": "mycorgi", "output": {"url": "corgi.preview.png"}}]


def test_write_model_card(adapter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", factory.SECRET)
    path = write_model_card(adapter, repo_id="alice/corgi")
    assert path == adapter / "README.md"
    text = path.read_text(encoding="utf-8")
    assert ModelCard(text).data.instance_prompt == "mycorgi"
    assert factory.SECRET not in text
    assert not [p for p in adapter.iterdir() if p.name.startswith(".README")]  # temp file replaced


def test_diffusers_snippet_runs_sd1(adapter: Path, tiny_model_dir) -> None:  # noqa: ANN001
    """The card's diffusers code, pointed at a tiny local base and the adapter folder, really loads both files."""
    code = diffusers_snippet("sd1", str(tiny_model_dir("sd1")), str(adapter), "corgi.safetensors", "mycorgi",
                             "a photo of mycorgi", device="cpu", dtype="torch.float32", steps=2)
    namespace: dict = {}
    exec(compile(code, "<card snippet>", "exec"), namespace)  # noqa: S102 - our own generated code
    pipe = namespace["pipe"]
    assert "mycorgi" in pipe.tokenizer.get_vocab()
    assert pipe.get_list_adapters() == {"text_encoder": ["default_0"]}
    assert namespace["image"].size == (64, 64)


def test_diffusers_snippet_runs_sdxl(store: Path, lora_states, tiny_model_dir, monkeypatch) -> None:  # noqa: ANN001
    import huggingface_hub

    folder = factory.make_adapter(store, lora_states("sdxl"), name="xl", family="sdxl", token="myxl")
    # the snippet downloads the embedding file with hf_hub_download: serve it from the local folder
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, filename: str(Path(repo) / filename))
    code = diffusers_snippet("sdxl", str(tiny_model_dir("sdxl")), str(folder), "xl.safetensors", "myxl",
                             "a photo of myxl", device="cpu", dtype="torch.float32", steps=2)
    namespace: dict = {}
    exec(compile(code, "<card snippet>", "exec"), namespace)  # noqa: S102
    pipe = namespace["pipe"]
    assert "myxl" in pipe.tokenizer.get_vocab() and "myxl" in pipe.tokenizer_2.get_vocab()
    assert set(pipe.get_list_adapters()) == {"text_encoder", "text_encoder_2"}
    assert SDXL_POOLING_LINE in code and pipe.text_encoder_2.text_model.eos_token_id == 49407  # pools at end-of-text


def test_every_place_that_tells_diffusers_users_about_sdxl_gives_the_pooling_line(store: Path, lora_states) -> None:  # noqa: ANN001
    from textboost_ext.hub.usage import usage_text

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert SDXL_POOLING_LINE in readme
    folder = factory.make_adapter(store, lora_states("sdxl"), name="xl", family="sdxl", token="myxl")
    text = usage_text(folder, folder / "xl.safetensors", "myxl")
    assert SDXL_POOLING_LINE in text and 'embedding["clip_g"], token="myxl"' in text
    sd1 = factory.make_adapter(store, lora_states("sd1"), name="one", family="sd1", token="myone")
    text = usage_text(sd1, sd1 / "one.safetensors", "myone")
    assert SDXL_POOLING_LINE not in text and "load_textual_inversion(" in text


@pytest.mark.parametrize(("trained_on", "says"), [("builtin:toyworld", "toy base"), ("builtin:tiny-sd1", "random-weight")])
def test_cards_of_adapters_trained_on_builtin_bases_say_so(store: Path, lora_states, trained_on: str, says: str) -> None:  # noqa: ANN001
    meta = factory.lora_metadata("sd1", "d", "tok", ss_sd_model_name=trained_on)
    factory.make_adapter(store, lora_states("sd1"), name="d", token="tok", metadata=meta)
    card = render_model_card(resolve_adapter("d", store), base_model="a/b")
    assert "**Demo adapter.**" in card and says in card
