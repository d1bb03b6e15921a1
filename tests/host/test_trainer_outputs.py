"""What a run leaves on disk: checkpoints and retention, resume, refusing to clobber, samples, logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from textboost_ext.config import TrainConfig
from textboost_ext.hooks import HostContext, StepBatch, TrainerExtension
from textboost_ext.host import train
from textboost_ext.host.dataset import DatasetError
from textboost_ext.host.output import OutputError
from textboost_ext.host.trainer import HostTrainer


class Interrupted(Exception):
    pass


class FlipAndCount(TrainerExtension):
    """Uses the host's generator (random flips, like an augmentation) and keeps state across resume."""

    name = "flip-and-count"

    def __init__(self, stop_before_step: int | None = None) -> None:
        self.stop_before_step, self.steps_seen = stop_before_step, 0

    def on_step_start(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> None:
        if step == self.stop_before_step:
            raise Interrupted(step)
        flip = torch.rand(len(batch.images), generator=generator) < 0.5
        batch.images = torch.where(flip[:, None, None, None], batch.images.flip(-1), batch.images)

    def on_step_end(self, ctx: HostContext, step: int) -> None:
        self.steps_seen += 1

    def state_dict(self) -> dict[str, int]:
        return {"steps_seen": self.steps_seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps_seen = state["steps_seen"]


def test_resume_reproduces_an_uninterrupted_run(make_config: Callable[..., TrainConfig], tmp_path: Path, one_image_dataset: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64), (20, 200, 90)).save(one_image_dataset / "1_sks dog" / "second.png")  # data order matters
    common = dict(max_train_steps=6, save_every_n_steps=3, save_state=True, lr_scheduler="linear", lr_warmup_steps=2,
                  optimizer_type="AdamW8bit", optimizer_args=["min_8bit_size=0"], train_batch_size=3)
    straight = HostTrainer(make_config(output_name="straight", **common), FlipAndCount())
    straight.train()

    interrupted_cfg = make_config(output_name="resumed", **common)
    with pytest.raises(Interrupted):
        train(interrupted_cfg, FlipAndCount(stop_before_step=3))
    adapter_dir, staging = tmp_path / "out" / "resumed", tmp_path / "out" / ".resumed.staging"
    assert not adapter_dir.exists()  # an unfinished run is not an adapter; its files wait beside
    assert (staging / "state" / "step-000003" / "trainer_state.json").is_file()
    first_checkpoint = (staging / "checkpoints" / "resumed-step000003.safetensors").read_bytes()

    extension = FlipAndCount()
    resumed = HostTrainer(make_config(output_name="resumed", resume=str(adapter_dir), **common), extension)
    result = resumed.train()
    assert resumed.start_step == 3 and result.steps == 6 and len(result.logs) == 3
    assert extension.steps_seen == 6  # extension state came back
    assert (adapter_dir / "checkpoints" / "resumed-step000003.safetensors").read_bytes() == first_checkpoint
    assert not staging.exists() and (adapter_dir / "manifest.json").is_file()
    expected, got = straight.network.kohya_state_dict(), resumed.network.kohya_state_dict()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    assert [round(h["loss/total"], 6) for h in straight.history[3:]] == [round(h["loss/total"], 6) for h in result.logs]


def test_save_every_n_steps_keeps_the_last_n_steps(make_config: Callable[..., TrainConfig]) -> None:
    result = train(make_config(max_train_steps=6, save_every_n_steps=1, save_last_n_steps=2, train_batch_size=1))
    # kohya semantics: at step 5 keep steps >= 5 - 2; step 6 is the final file, not a checkpoint
    assert [p.name for p in result.checkpoint_files] == [f"adapter-step00000{s}.safetensors" for s in (3, 4, 5)]
    from safetensors import safe_open

    with safe_open(str(result.checkpoint_files[0]), "pt") as f:
        assert f.metadata()["ss_steps"] == "3" and f.metadata()["ss_output_name"] == "adapter-step000003"


def test_existing_adapter_is_refused_and_overwrite_replaces_it(make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    first = train(make_config(max_train_steps=1))
    import textboost_ext.models.load as load

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output folder was checked")

    with monkeypatch.context() as patch:
        patch.setattr(load, "load_base_model", must_not_load)
        with pytest.raises(OutputError, match=r"already exists.*overwrite = true.*--overwrite"):
            train(make_config(max_train_steps=1))
    second = train(make_config(max_train_steps=2, overwrite=True))
    assert second.lora_path == first.lora_path and second.steps == 2


def test_unwritable_output_folder_is_named(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write to the output folder .*a_file"):
        train(make_config(output_dir=str(tmp_path / "a_file" / "adapters")))


def test_bad_images_fail_before_any_model_loads(make_config: Callable[..., TrainConfig], one_image_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (one_image_dataset / "1_sks dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    import textboost_ext.models.load as load

    monkeypatch.setattr(load, "load_base_model", lambda *a, **k: pytest.fail("model loaded before the images were checked"))
    with pytest.raises(DatasetError, match=r"broken\.jpg: cannot read this image"):
        train(make_config())


def test_samples_index_preview_and_tensorboard(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\na sks dog --s 2 --d 7\na cat on a sofa --n blurry --s 2 --w 72 --h 64\n", encoding="utf-8")
    result = train(make_config(max_train_steps=2, sample_prompts=str(prompts), sample_at_first=True, sample_every_n_steps=2, log_with="tensorboard"))
    samples = result.adapter_dir / "samples"
    index = json.loads((samples / "index.json").read_text())
    assert [(e["file"], e["step"]) for e in index] == [
        ("adapter_000000_00.png", 0), ("adapter_000000_01.png", 0), ("adapter_000002_00.png", 2), ("adapter_000002_01.png", 2)]
    assert index[1] == {"file": "adapter_000000_01.png", "prompt": "a cat on a sofa", "negative_prompt": "blurry",
                        "step": 0, "seed": 1235, "width": 72, "height": 64, "steps": 2, "scale": 7.5, "sampler": "ddim"}
    assert index[0]["seed"] == 7
    from PIL import Image

    with Image.open(samples / "adapter_000000_01.png") as img:
        assert img.size == (72, 64)
    assert (result.adapter_dir / "adapter.preview.png").is_file()
    from textboost_ext.hub.samples import read_samples

    assert len(read_samples(result.adapter_dir)) == 4  # the hub's model card can read our index

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(result.adapter_dir / "logs" / "textboost"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    scalars = set(tags["scalars"]) | set(tags.get("tensors", []))
    assert {"loss/total", "loss/diffusion", "lr/lora", "timestep/mean"} <= scalars
    assert {"samples/00", "samples/01"} <= set(tags["images"])


class PromptRewriter(TrainerExtension):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def prepare_sample_prompt(self, ctx: HostContext, prompt: str) -> str:
        self.seen.append(prompt)
        return prompt.replace("sks", "sks sks_1")


def test_sampling_restores_train_mode_and_does_not_touch_training_rng(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a sks dog --n ugly --s 2\n", encoding="utf-8")
    rewriter = PromptRewriter()
    with_samples = HostTrainer(make_config(max_train_steps=2, sample_prompts=str(prompts), sample_every_n_steps=1, output_name="s"), rewriter)
    with_samples.train()
    assert rewriter.seen == ["a sks dog", "ugly"] * 2  # the extension rewrites prompt and negative before encoding
    index = json.loads((tmp_path / "out" / "s" / "samples" / "index.json").read_text())
    assert [e["prompt"] for e in index] == ["a sks dog"] * 2  # the index keeps what the user wrote
    assert all(te.training for te in with_samples.model.text_encoders) and not with_samples.model.unet.training
    without = HostTrainer(make_config(max_train_steps=2, output_name="n"))
    without.train()
    for key, value in without.network.kohya_state_dict().items():
        assert torch.equal(with_samples.network.kohya_state_dict()[key], value), key
