"""Replace an adapter folder in one step, and clean what killed writers left behind (stdlib only).

A run that replaces an adapter (``overwrite``), a resumed run continuing a finished adapter, and
``pull`` write into a hidden folder beside it (``<store>/.<name>.staging``, or the pull's own
``.pull-<name>-<pid>-*``) and swap it in only when it is complete:

    rename <name> -> .<name>.old-<pid>;  rename staging -> <name>;  delete .<name>.old-<pid>

A process killed between the two renames leaves no ``<name>``; :func:`recover_swap` (run under the
adapter's lock before anything else touches it) finishes the swap when the staged folder has a valid
manifest, else puts the old folder back. So the previous adapter survives every failure of the new one.

Leftovers are removed only by their names, which carry the writer's pid, and only when that process is
gone: atomic-write temp files (``.<file>.<pid>-<hex>.tmp``), state folders being written or replaced
(``state/.step-NNNNNN.tmp-<pid>`` / ``.old-<pid>``) and pull downloads (``.pull-<name>-<pid>-*``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from textboost_ext.faultpoints import pause_point
from textboost_ext.hub.manifest import check_complete

_ATOMIC_TMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")
_STATE_TMP = re.compile(r"^\.step-\d{6,}\.(?:tmp|old)-(\d+)$")
_PULL_TMP = re.compile(r"^\.pull-.+-(\d+)-[A-Za-z0-9_]+$")
_OLD = re.compile(r"^\.(.+)\.old-(\d+)$")


def staging_dir(root: Path, name: str) -> Path:
    return Path(root) / f".{name}.staging"


def staged_alternative(path: Path) -> Path | None:
    """``<store>/<name>/rest`` of a run that did not finish lives in ``<store>/.<name>.staging/rest``."""
    path = Path(path).expanduser().absolute()
    for folder in (path, *path.parents):
        if folder.name and not folder.exists():
            candidate = staging_dir(folder.parent, folder.name) / path.relative_to(folder)
            if candidate.exists():
                return candidate
    return None


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process (or not a pid we can ask about): leave its files alone
    return True


def swap_in(staged: Path, target: Path) -> None:
    """Make ``staged`` the folder at ``target``; the previous ``target`` is removed only after the swap."""
    staged, target = Path(staged), Path(target)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        pause_point("swap")  # a kill here leaves no target: recover_swap finishes or undoes the swap
        try:
            os.replace(staged, target)
        except OSError:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)


def recover_swap(root: Path, name: str) -> str | None:
    """Finish or undo a swap that a killed process left half done; return what was done (None: nothing).

    Call it holding the adapter's lock.
    """
    root = Path(root)
    target = root / name
    olds = sorted(p for p in root.glob(f".{glob_escape(name)}.old-*") if (m := _OLD.match(p.name)) and m.group(1) == name)
    done = None
    if olds and not target.exists():
        staged = staging_dir(root, name)
        if staged.is_dir() and check_complete(staged).complete:
            os.replace(staged, target)
            done = f"finished replacing {target} (the previous run was killed while swapping it in)"
        else:
            os.replace(olds.pop(), target)
            done = f"restored {target} (a replacing run was killed while swapping)"
    for old in olds:
        if old.exists() and not pid_alive(int(_OLD.match(old.name).group(2))):  # type: ignore[union-attr]
            shutil.rmtree(old, ignore_errors=True)
    return done


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove temp files and half-written state folders of dead writers anywhere under ``folder``."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(folder):
        for file in filenames:
            match = _ATOMIC_TMP.match(file)
            if match and not pid_alive(int(match.group(1))):
                path = Path(dirpath) / file
                path.unlink(missing_ok=True)
                removed.append(path)
        for sub in list(dirnames):
            match = _STATE_TMP.match(sub) or _ATOMIC_TMP.match(sub)
            if match and not pid_alive(int(match.group(1))):
                path = Path(dirpath) / sub
                final = path.with_name(sub[1:].split(".")[0])  # .step-000010.old-PID -> step-000010
                if ".old-" in sub and not final.exists():
                    os.replace(path, final)  # killed while re-saving that step: the old copy is the state
                    dirnames.remove(sub)
                    continue
                shutil.rmtree(path, ignore_errors=True)
                dirnames.remove(sub)
                removed.append(path)
    return removed


def clean_pull_leftovers(root: Path) -> list[Path]:
    """Remove ``.pull-*`` download folders of pulls that were killed."""
    removed: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        match = _PULL_TMP.match(path.name)
        if match and path.is_dir() and not pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
