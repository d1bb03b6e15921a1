"""Fault injection on real training runs: SIGKILL inside every save window, two runs of one adapter at
once, a file-size limit (the disk filling up) while saving. Nothing finished may be lost, nothing
partial may appear under an adapter's name, and the next run cleans up and resumes bit-exactly.

The runs pause at test-only points (``textboost_ext.faultpoints``) and are killed there; the counts of
kills and lost adapters are printed for the issue's closing note.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from textboost_ext.hub.manifest import check_complete
from textboost_ext.hub.staging import recover_swap

from .train_runs import ForkServer, finish, hidden_paths, snapshot, wait_and_kill, write_config

pytestmark = pytest.mark.slow

# every window in which a run writes: a temp file whole but not renamed, the LoRA without its embedding,
# a state folder not yet renamed, everything written but the manifest, between the two renames of the swap
SAVE_WINDOWS = ["atomic-write", "lora-written", "state-written", "before-manifest", "swap"]


@pytest.fixture
def server(tmp_path: Path):  # noqa: ANN201
    forks = ForkServer(tmp_path / "runs")
    yield forks
    forks.close()


def test_kills_in_save_windows_concurrent_runs_and_a_full_disk(tmp_path: Path, server: ForkServer) -> None:
    start = server.start
    base = tmp_path / "base"
    base.mkdir()
    first = write_config(base)  # adapter "mug", token tbmug
    replacement = write_config(tmp_path, token="tbqix")  # the same adapter name with another token

    # phase 1: the adapter that must survive; meanwhile a fresh 4-step run killed in its last state save,
    # and the same run uninterrupted (the reference for resuming)
    resumable = tmp_path / "resumable"
    four = dict(max_train_steps=4, save_every_n_steps=2)
    cfg_r = write_config(tmp_path, name="r", **four)
    killed_fresh = start(cfg_r, resumable, pause="state-written#2", marker=tmp_path / "r.marker")
    reference = start(cfg_r, tmp_path / "reference")
    code, _, err = finish(start(first, base))
    assert code == 0, err[-3000:]
    adapter = base / "mug"
    before = snapshot(adapter)
    assert check_complete(adapter, hashes=True).complete and (adapter / "embeddings" / "tbmug.safetensors").is_file()
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {rel: (adapter / rel).stat().st_mode & 0o777 for rel in before}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # readable like any file we create (not 0600)

    # phase 2: an overwrite run killed inside each save window (each in its own copy of the store), a second
    # run of a paused adapter, and two overwrite runs that hit a file-size limit
    runs = {}
    for window in SAVE_WINDOWS:
        store = tmp_path / f"kill-{window}"
        shutil.copytree(base, store, symlinks=True)
        runs[window] = start(replacement, store, "--overwrite", pause=window, marker=store / "marker")
    full = {}
    for label, limit, extra in (("lora", 10_000, ("--no_save_state",)), ("state", 30_000, ())):
        store = tmp_path / f"full-{label}"
        shutil.copytree(base, store, symlinks=True)
        full[label] = start(replacement, store, "--overwrite", *extra, file_size_limit=limit)

    wait_and_kill(killed_fresh, tmp_path / "r.marker")
    busy_store = tmp_path / "kill-lora-written"
    deadline = time.monotonic() + 300
    while not (busy_store / "marker").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # until the paused run holds the adapter's lock
    code, _, err = finish(start(replacement, busy_store, "--overwrite"))
    assert code != 0 and "being written by another process (pid" in err and "Traceback" not in err, err[-2000:]

    lost = 0
    for window, proc in runs.items():
        store = tmp_path / f"kill-{window}"
        wait_and_kill(proc, store / "marker")
        recover_swap(store, "mug")  # what the next run or pull does first
        folder = store / "mug"
        if window == "swap":  # killed between the renames: the complete new adapter is put in place
            ok = check_complete(folder, hashes=True).complete and (folder / "embeddings" / "tbqix.safetensors").is_file()
        else:  # the previous adapter, byte for byte
            ok = folder.is_dir() and snapshot(folder) == before
        lost += not ok
        assert not [p for p in hidden_paths(folder)], (window, hidden_paths(folder))  # nothing partial inside
    print(f"\nfault injection: kills tried {len(runs) + 1}, adapters lost {lost}")
    assert lost == 0

    for label, proc in full.items():
        code, _, err = finish(proc)
        store = tmp_path / f"full-{label}"
        assert code == 1 and "Traceback" not in err, (label, err[-3000:])
        last = err.strip().splitlines()[-1]  # one paragraph naming the file, the reason and the fix
        assert last.startswith("error: could not write ") and "File too large" in last and "free space" in last, last
        assert snapshot(store / "mug") == before  # the previous adapter is intact
        leftovers = [p for p in hidden_paths(store) if p.endswith(".tmp") or ".tmp-" in p]
        assert not leftovers, leftovers  # no temp file, no half-written state folder

    # the next run in a store where a run was killed mid-swap: lock taken over, swap finished, then replaced;
    # the old token's embedding never survives an overwrite
    store = tmp_path / "kill-swap"
    code, _, err = finish(start(first, store, "--overwrite"))
    assert code == 0, err[-3000:]
    assert sorted(p.name for p in (store / "mug" / "embeddings").iterdir()) == ["tbmug.safetensors"]
    assert [p for p in hidden_paths(store) if not p.startswith("marker")] == [], hidden_paths(store)

    # the killed fresh run: no adapter under its name; a rerun says what to do; resuming is bit-exact
    assert not (resumable / "r").exists()
    code, _, err = finish(start(cfg_r, resumable))
    assert code == 2 and "did not finish" in err and "--overwrite" in err and "step-000002" in err, err[-2000:]
    code, _, err = finish(start(cfg_r, resumable, "--resume", str(resumable / "r")))
    assert code == 0, err[-3000:]
    code, _, err = finish(reference)
    assert code == 0, err[-3000:]
    got, want = load_file(str(resumable / "r" / "r.safetensors")), load_file(str(tmp_path / "reference" / "r" / "r.safetensors"))
    assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in want)
    assert hidden_paths(resumable) == [] and check_complete(resumable / "r", hashes=True).complete
