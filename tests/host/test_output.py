"""The adapter folder: refusing to clobber, writability, checkpoint retention."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from textboost_ext.host import output


def _cfg(tmp_path: Path, **kw) -> SimpleNamespace:  # noqa: ANN003
    return SimpleNamespace(**{"output_dir": str(tmp_path / "out"), "adapters_dir": None, "output_name": "mycorgi", **kw})


def test_paths_and_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = output.adapter_paths(_cfg(tmp_path))
    assert paths.adapter_dir == (tmp_path / "out" / "mycorgi").absolute()
    assert paths.lora_file.name == "mycorgi.safetensors"
    assert paths.checkpoint_file(12).relative_to(paths.adapter_dir).as_posix() == "checkpoints/mycorgi-step000012.safetensors"
    monkeypatch.setenv("TEXTBOOST_ADAPTERS_DIR", str(tmp_path / "env"))
    assert output.output_root(_cfg(tmp_path, output_dir=None)) == (tmp_path / "env").absolute()
    assert output.output_root(_cfg(tmp_path, output_dir=None, adapters_dir=str(tmp_path / "a"))) == (tmp_path / "a").absolute()


def test_existing_adapter_refused_unless_overwrite_or_resume(tmp_path: Path) -> None:
    from textboost_ext.hub.manifest import write_manifest

    paths = output.adapter_paths(_cfg(tmp_path))
    plan = output.prepare_adapter_dir(paths, overwrite=False, resuming=False)  # new: fine
    assert plan.staged and not paths.adapter_dir.exists()  # every run writes beside; the folder appears when complete
    output.prepare_adapter_dir(paths, overwrite=False, resuming=False)  # still empty: fine
    plan.paths.lora_file.write_bytes(b"x")
    with pytest.raises(output.OutputError, match=r"earlier run of 'mycorgi' did not finish.*--overwrite\) to start over$"):
        output.prepare_adapter_dir(paths, overwrite=False, resuming=False)
    paths.adapter_dir.mkdir(parents=True)  # a folder written in place (an older version, or files copied in)
    paths.lora_file.write_bytes(b"x")
    (paths.adapter_dir / "samples").mkdir()
    (paths.adapter_dir / "samples" / "old.png").write_bytes(b"x")
    # no manifest: a run that did not finish; no state saved, so resuming is not suggested
    with pytest.raises(output.OutputError, match=r"incomplete adapter \(manifest.json missing.*--overwrite\) to replace it$"):
        output.prepare_adapter_dir(paths, overwrite=False, resuming=False)
    (paths.state_dir / "step-000004").mkdir(parents=True)
    with pytest.raises(output.OutputError, match=r"incomplete.*resume = .*state/step-000004"):
        output.prepare_adapter_dir(paths, overwrite=False, resuming=False)
    write_manifest(paths.adapter_dir)
    with pytest.raises(output.OutputError, match=r"already exists.*overwrite = true.*--overwrite"):
        output.prepare_adapter_dir(paths, overwrite=False, resuming=False)
    plan = output.prepare_adapter_dir(paths, overwrite=True, resuming=False)
    # an overwrite writes beside the adapter; the old one is untouched until the new run is complete
    assert plan.staged and plan.paths.adapter_dir.name == ".mycorgi.staging" and not any(plan.paths.adapter_dir.iterdir())
    assert (paths.adapter_dir / "samples" / "old.png").exists() and paths.lora_file.read_bytes() == b"x"
    plan.paths.lora_file.write_bytes(b"new")
    output.finish_output(plan)
    assert paths.lora_file.read_bytes() == b"new" and not (paths.adapter_dir / "samples").exists()  # nothing old survives
    assert not plan.paths.adapter_dir.exists() and (paths.adapter_dir / "manifest.json").is_file()
    # resuming a finished adapter: staged too, starting from (hard links to) its files
    plan = output.prepare_adapter_dir(paths, overwrite=False, resuming=True)
    assert plan.staged and plan.paths.lora_file.read_bytes() == b"new" and not (plan.paths.adapter_dir / "manifest.json").exists()


def test_output_dir_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    paths = output.adapter_paths(_cfg(tmp_path, output_dir=str(tmp_path / "file.txt" / "sub")))
    with pytest.raises(output.OutputError, match=r"cannot write to the output folder .*file\.txt/sub/\.?mycorgi.*writable output_dir"):
        output.prepare_adapter_dir(paths, overwrite=False, resuming=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unwritable_output_dir_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        paths = output.adapter_paths(_cfg(tmp_path, output_dir=str(locked)))
        with pytest.raises(output.OutputError, match=rf"cannot write to the output folder {locked}.*writable output_dir"):
            output.prepare_adapter_dir(paths, overwrite=False, resuming=False)
    finally:
        locked.chmod(0o700)


def test_checkpoint_retention_kohya_semantics(tmp_path: Path) -> None:
    paths = output.adapter_paths(_cfg(tmp_path))
    paths.checkpoints_dir.mkdir(parents=True)
    for step in range(2, 12, 2):  # every 2 steps, keep the last 4
        paths.checkpoint_file(step).write_bytes(b"x")
        output.prune_checkpoints(paths, step, save_last_n_steps=4)
    assert [s for s, _ in output.list_checkpoints(paths)] == [6, 8, 10]
    assert output.prune_checkpoints(paths, 12, None) == []
    assert output.should_save(4, 2, 10) and not output.should_save(10, 2, 10) and not output.should_save(3, 2, 10)
    assert not output.should_save(4, None, 10)
