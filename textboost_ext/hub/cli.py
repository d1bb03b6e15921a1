"""``textboost-hub``: list, inspect, document, push and pull adapters (plus ``verify``/``convert`` from export,
``generate``/``eval`` from evaluation).

    textboost-hub [--adapters_dir DIR] list
    textboost-hub inspect NAME|FOLDER|FILE.safetensors [--json]
    textboost-hub card NAME [--repo_id USER/REPO] [--base_model HUB_ID] [--stdout]
    textboost-hub push NAME --repo_id USER/REPO [--private] [--endpoint URL] [--token T] [--revision R] [--dry_run]
    textboost-hub pull REPO_ID [--revision R] [--name N] [--endpoint URL] [--token T] [--overwrite] [--no_verify]
    textboost-hub generate NAME --prompt TEXT [...] [--base MODEL] [--n 4] [--seed 0] ...   (see evaluation/cli.py)
    textboost-hub eval NAME [NAME ...] --reference IMG [...] [--base MODEL] [--metrics ...]  (see evaluation/cli.py)

The store is ``--adapters_dir``, else ``$TEXTBOOST_ADAPTERS_DIR``, else ``./adapters``. Prefer HF_TOKEN or
``hf auth login`` over ``--token`` (a token on the command line lands in your shell history).
Exit codes: 0 done; 1 the operation failed (Hub error, failed verify, broken file, would overwrite);
2 the command line was wrong (bad arguments, unknown adapter, malformed repo id). User errors print one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from textboost_ext.hub.auth import scrub
from textboost_ext.hub.errors import AdapterNotFoundError, AdapterStoreError, HubError
from textboost_ext.hub.store import adapters_root, resolve_adapter, scan_adapters
from textboost_ext.textsafe import clean

PROG = "textboost-hub"
DEFAULT_MAX_FILE_MB_CLI = 2048  # textboost_ext.hub.pull.DEFAULT_MAX_FILE_MB (not imported: keeps `list` fast)
EXPORT_COMMANDS = ("verify", "convert")


def cmd_list(args: argparse.Namespace) -> int:
    root = adapters_root(args.adapters_dir)
    infos, problems = scan_adapters(root)
    if not infos and not problems:
        print(f"no adapters in {root}" + ("" if root.is_dir() else " (the folder does not exist)"))
        return 0
    rows = [("NAME", "FAMILY", "TRIGGER", "RANK", "SIZE", "FINISHED", "HASH")]
    from textboost_ext.hub.describe import human_size

    for i in infos:
        rows.append((clean(i.name), clean(i.family or "?"), clean(i.trigger or "-"), str(i.rank or "?"),
                     human_size(i.size_bytes), clean(i.date or "-")[:16], clean(i.short_hash or "-")))
    for folder, _ in problems:
        rows.append((clean(folder.name), "BROKEN", "-", "-", "-", "-", "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    print(f"{root}:")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for i in infos:
        if i.incomplete:
            print(f"  {clean(i.name)}: INCOMPLETE ({clean(i.incomplete)}); retrain with --overwrite or pull it again")
    for folder, message in problems:
        print(f"{PROG}: broken adapter {clean(folder.name)}: {clean(message)}", file=sys.stderr)
    # a damaged adapter is shown, and the rest of the store still listed; the exit code tells scripts
    return 1 if problems else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    info = resolve_adapter(args.adapter, adapters_root(args.adapters_dir))
    from textboost_ext.input_files import check_safetensors_file

    problems = [f"{info.folder} is incomplete ({clean(info.incomplete)})"] if info.incomplete else []
    try:
        check_safetensors_file(info.lora_file)
    except ValueError as err:
        problems.append(f"BROKEN: {clean(err)}")
    if args.json:
        print(json.dumps({"name": info.name, "lora_file": str(info.lora_file), "family": info.family, "trigger": info.trigger,
                          "rank": info.rank, "metadata": info.metadata}, indent=2, sort_keys=True))
    else:
        from textboost_ext.hub.describe import describe_adapter

        # metadata may come from anyone's file; a damaged one is not hashed (it may be huge or sparse)
        print(clean(describe_adapter(info, hash_file=not problems or bool(info.incomplete) and len(problems) == 1),
                    keep_newlines=True))
    for problem in problems:  # shown after what could be read
        print(f"{PROG}: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_card(args: argparse.Namespace) -> int:
    from textboost_ext.hub.card import render_model_card, write_model_card

    info = resolve_adapter(args.adapter, adapters_root(args.adapters_dir))
    if args.stdout:
        print(render_model_card(info, repo_id=args.repo_id, base_model=args.base_model), end="")
    else:
        print(write_model_card(info.folder, repo_id=args.repo_id, base_model=args.base_model))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from textboost_ext.hub.push import check_repo_id, push_adapter, upload_plan

    info = resolve_adapter(args.adapter, adapters_root(args.adapters_dir))
    check_repo_id(args.repo_id)
    files, skipped = upload_plan(info.folder)
    if args.dry_run:
        print(f"would upload to {args.repo_id}:" + "".join(f"\n  {f}" for f in files))
        print("kept local:" + ("".join(f"\n  {f}" for f in skipped) if skipped else " nothing"))
        if not (info.folder / "README.md").is_file():
            print("README.md is missing: a model card would be generated first")
        return 0
    url = push_adapter(info.folder, args.repo_id, private=args.private, token=args.token, endpoint=args.endpoint,
                       revision=args.revision, regenerate_card=args.regenerate_card, allow_demo=args.allow_demo)
    print(f"pushed {info.name} to {args.repo_id}: {url}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from textboost_ext.hub.pull import pull_adapter

    path = pull_adapter(args.repo_id, adapters_root(args.adapters_dir), revision=args.revision, token=args.token,
                        endpoint=args.endpoint, name=args.name, overwrite=args.overwrite, verify=not args.no_verify,
                        max_file_mb=args.max_file_mb)
    print(f"pulled {args.repo_id} into {path}")
    return 0


def build_parser(mount_export: bool = True) -> argparse.ArgumentParser:
    """The full parser. ``mount_export=False`` registers ``verify``/``convert`` as inert names only, so
    commands that do not need them skip importing textboost_ext.export (which imports torch: seconds)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--adapters_dir", default=argparse.SUPPRESS,
                        help="adapter store (default: $TEXTBOOST_ADAPTERS_DIR, else ./adapters)")
    parser = argparse.ArgumentParser(prog=PROG, description="Manage TextBoost adapters: local store and Hugging Face Hub.",
                                     parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list the adapters in the store")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("inspect", parents=[common], help="show an adapter's metadata (like the WebUI Lora card)")
    p.add_argument("adapter", help="store name, adapter folder, or .safetensors file")
    p.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("card", parents=[common], help="(re)write an adapter's README.md model card")
    p.add_argument("adapter", help="store name or adapter folder")
    p.add_argument("--repo_id", help="Hub repo the card's code snippets should load from")
    p.add_argument("--base_model", help="Hub id of the base model (default: from metadata)")
    p.add_argument("--stdout", action="store_true", help="print the card instead of writing README.md")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("push", parents=[common], help="upload an adapter to a Hub model repo")
    p.add_argument("adapter", help="store name or adapter folder")
    p.add_argument("--repo_id", required=True, help="USER/REPO (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--allow_demo", action="store_true",
                   help="publish a demo adapter (trained on a builtin: tiny random-weight model) anyway")
    p.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN, then `hf auth login`)")
    p.add_argument("--revision", help="branch to commit to (default: main)")
    p.add_argument("--regenerate_card", action="store_true", help="rewrite README.md even if it exists")
    p.add_argument("--dry_run", action="store_true", help="list what would be uploaded and stop")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("pull", parents=[common], help="download an adapter repo into the store and verify it")
    p.add_argument("repo_id", help="USER/REPO")
    p.add_argument("--revision", help="branch, tag or commit")
    p.add_argument("--name", help="folder name in the store (default: the repo name)")
    p.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument("--token", help="Hub token for private repos (default: HF_TOKEN, then `hf auth login`)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing adapter of that name")
    p.add_argument("--no_verify", action="store_true", help="install without running the export checks (file types "
                   "and sizes are still checked; pickles are never installed)")
    p.add_argument("--max_file_mb", type=float, default=DEFAULT_MAX_FILE_MB_CLI,
                   help=f"largest file to download, in MB (default {DEFAULT_MAX_FILE_MB_CLI})")
    p.set_defaults(func=cmd_pull)

    from textboost_ext.evaluation.cli import register_subcommands as register_evaluation

    register_evaluation(sub, common)

    if mount_export:
        _register_export_commands(sub)
    else:
        for name in EXPORT_COMMANDS:
            sub.add_parser(name, help="(from textboost_ext.export)")
    return parser


def _register_export_commands(sub: argparse._SubParsersAction) -> None:
    """``verify``/``convert`` live in textboost_ext.export.cli; say so clearly if that module is absent."""
    try:
        from textboost_ext.export.cli import register_subcommands
    except ModuleNotFoundError as err:
        if err.name != "textboost_ext.export.cli":
            raise  # a real missing dependency inside the export CLI: show it
        for name in EXPORT_COMMANDS:
            p = sub.add_parser(name, help=f"(unavailable: {err.name} is not installed)")
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=lambda _args, name=name: _unavailable(name))
        return
    register_subcommands(sub)


def _unavailable(name: str) -> int:
    print(f"{PROG}: error: '{name}' needs textboost_ext.export.cli, which this install lacks; reinstall textboost-ext",
          file=sys.stderr)
    return 1


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand word in ``argv`` (the first positional, skipping ``--adapters_dir VALUE``)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--adapters_dir":
            skip = True
        elif not token.startswith("-"):
            return token
    return None


DEBUG_ENV = "TEXTBOOST_DEBUG"


def main(argv: Sequence[str] | None = None) -> int:
    """Every failure is one short message and a non-zero exit; ``--debug`` or ``TEXTBOOST_DEBUG=1`` shows the
    traceback instead."""
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    from textboost_ext.console import configure_logging

    configure_logging("info")  # push/pull progress lines; third-party noise filtered
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        return _main(argv, debug)
    except Exception as err:  # noqa: BLE001 - the last line of defence against a traceback
        if debug:
            raise
        return _fail(f"{type(err).__name__}: {err}\n(unexpected: run again with --debug or {DEBUG_ENV}=1 to see the "
                     "traceback, and please report it)", None, 1)


def _main(argv: list[str], debug: bool) -> int:
    command = _command_of(argv)
    parser = build_parser(mount_export=command is None or command in EXPORT_COMMANDS)
    args = parser.parse_args(argv)
    if not hasattr(args, "adapters_dir"):
        args.adapters_dir = None
    token = getattr(args, "token", None)
    if token:
        print(f"{PROG}: warning: a token on the command line can be read by other local users (process list) and "
              "stays in your shell history; prefer HF_TOKEN or `hf auth login`", file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (AdapterNotFoundError, ValueError) as err:
        if debug:
            raise
        code = 1 if isinstance(err, AdapterStoreError) and not isinstance(err, AdapterNotFoundError) else 2
        return _fail(str(err), token, code)
    except (AdapterStoreError, HubError, OSError) as err:
        if debug:
            raise
        return _fail(str(err), token, 1)
    except KeyboardInterrupt:
        return _fail("interrupted", token, 130)


def _fail(message: str, token: str | None, code: int) -> int:
    print(f"{PROG}: error: {clean(scrub(message, token), keep_newlines=True)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
