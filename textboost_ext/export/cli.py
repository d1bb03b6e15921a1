"""``verify`` and ``convert`` subcommands (mounted into ``textboost-hub``; also ``python -m textboost_ext.export.cli``).

    verify FILE [--arch sd1|sd2|sdxl] [--base MODEL] [--embedding EMB]   exit 0 if every check passes, else 1
    convert SRC DST [--to kohya|diffusers] [--arch ...] [--from official-textboost] [--save_precision ...] [--overwrite]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

FAMILIES = ("sd1", "sd2", "sdxl")


def _parse_renames(pairs: Sequence[str]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ValueError(f"--rename {pair!r}: expected OLD=NEW")
        renames[old] = new
    return renames


def _resolve_verify_target(target: str, store: str | None = None) -> tuple[str, str | None]:
    """A file path, or an adapter name/folder in the store (as ``inspect`` accepts); plus the base to use
    when the file was trained on a built-in tiny model (real-family shapes would not fit it)."""
    from pathlib import Path

    from textboost_ext.safetensors_header import read_raw_header

    path = Path(target)
    if not path.is_file():
        from textboost_ext.hub.errors import AdapterStoreError
        from textboost_ext.hub.store import adapters_root, resolve_adapter

        try:
            path = resolve_adapter(target, adapters_root(store)).lora_file
        except AdapterStoreError:
            return target, None  # verify_file reports the unreadable file
    try:
        metadata = read_raw_header(path)[1]
    except Exception:  # verify_file reports it
        return str(path), None
    base = metadata.get("ss_sd_model_name", "")
    return str(path), base if base.startswith("builtin:") else None


def _folder_completeness(target: str, store: str | None = None) -> list[str]:
    """For a store name or adapter folder: what makes it incomplete (manifest, sizes, weight hashes)."""
    from pathlib import Path

    from textboost_ext.hub.manifest import check_complete
    from textboost_ext.hub.store import adapters_root

    folder = Path(target) if Path(target).is_dir() else adapters_root(store) / target
    if Path(target).is_file() or not folder.is_dir() or "/" in target and not Path(target).is_dir():
        return []
    status = check_complete(folder, hashes=True)
    for note in status.changed:
        print(f"verify: note: {note} (edited after training?)")
    return status.problems


def run_verify(args: argparse.Namespace) -> int:
    from textboost_ext.export.verify import verify_file

    from textboost_ext.textsafe import clean

    store = getattr(args, "adapters_dir", None)
    problems = _folder_completeness(args.file, store)
    file, builtin_base = _resolve_verify_target(args.file, store)
    from pathlib import Path

    from textboost_ext.input_files import check_safetensors_file

    if Path(file).exists():
        try:  # header, sizes and offsets first: a hostile or huge file is refused before anything loads
            check_safetensors_file(file)
        except ValueError as exc:
            print(f"verify: FAIL: {clean(exc)}")
            return 1
    base = args.base
    if base is None and builtin_base is not None:
        print(f"verify: {file} was trained on {builtin_base}; checking against it (pass --base to override)")
        base = builtin_base
    try:
        report = verify_file(file, arch=args.arch, base=base, embedding=args.embedding)
    except (ValueError, OSError) as exc:  # the base could not be loaded: not a verdict on FILE
        print(f"verify: error: {exc}", file=sys.stderr)
        return 1
    print(clean(report.format_table(), keep_newlines=True))
    if problems:
        print(f"verify: FAIL: {clean(args.file)} is an incomplete adapter: {clean('; '.join(problems))}")
        return 1
    return 0 if report.ok else 1


def _store_file(text: str, store: str | None = None) -> str:
    """SRC as the other commands take it: a path, or an adapter name in the store (its LoRA file)."""
    from pathlib import Path

    if Path(text).exists() or "/" in text or text.endswith(".safetensors"):
        return text
    from textboost_ext.hub.errors import AdapterStoreError
    from textboost_ext.hub.store import adapters_root, resolve_adapter

    try:
        return str(resolve_adapter(text, adapters_root(store)).lora_file)
    except AdapterStoreError:
        return text  # reported as a missing file below


def run_convert(args: argparse.Namespace) -> int:
    from textboost_ext.export.lora_file import save_precision_dtype

    dtype = save_precision_dtype(args.save_precision) if args.save_precision else None
    args.src = _store_file(args.src, getattr(args, "adapters_dir", None))
    try:
        if args.source_format == "official-textboost":
            from textboost_ext.export.official_textboost import convert_official_textboost

            if args.to not in (None, "kohya"):
                raise ValueError("--from official-textboost converts to kohya only")
            from pathlib import Path

            from textboost_ext.export.convert import check_destination

            check_destination(Path(args.dst), args.overwrite)
            result = convert_official_textboost(
                args.src, args.dst, args.arch, v_prediction=args.v_prediction,
                save_dtype=dtype or save_precision_dtype(None), rename=_parse_renames(args.rename),
                skip_tokens=set(args.skip_token),
            )
        else:
            from textboost_ext.export.convert import convert_file

            result = convert_file(args.src, args.dst, to=args.to, family=args.arch, save_dtype=dtype,
                                  overwrite=args.overwrite)
    except (ValueError, OSError) as exc:
        from textboost_ext.textsafe import clean

        print(f"convert: error: {clean(exc)}", file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}")
    for path in result.paths:
        print(f"wrote {path}")
    return 0


def register_subcommands(subparsers: Any) -> None:
    """Add ``verify`` and ``convert`` to an argparse subparsers object; each sets ``func(args) -> int``."""
    verify = subparsers.add_parser("verify", help="check a LoRA/embedding file against the compatibility checklist",
                                   description="Run the A1111/Forge/ComfyUI/diffusers compatibility checklist on FILE.")
    verify.add_argument("file", help="a .safetensors LoRA (kohya format) or embedding file")
    verify.add_argument("--arch", choices=FAMILIES, default=None, help="expected base family (a mismatch is a failure)")
    verify.add_argument("--base", default=None, help="base model to check shapes against and run the diffusers oracle on")
    verify.add_argument("--embedding", default=None, help="the placeholder's embedding file for the oracle (default: "
                        "<stem>_embeddings/ or embeddings/<token>.safetensors beside FILE)")
    verify.set_defaults(func=run_verify)

    convert = subparsers.add_parser("convert", help="convert between kohya, diffusers and official-TextBoost formats",
                                    description="Convert a text-encoder LoRA between formats.")
    convert.add_argument("src", help="source: a kohya or diffusers .safetensors file, an adapter name in the store, or "
                         "an official TextBoost output folder")
    convert.add_argument("dst", help="destination .safetensors file in an existing folder (embeddings are written next to it)")
    convert.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    convert.add_argument("--to", choices=("kohya", "diffusers"), default=None, help="target format (default: the other one)")
    convert.add_argument("--from", dest="source_format", choices=("auto", "official-textboost"), default="auto",
                         help="source format; kohya/diffusers files are detected automatically")
    convert.add_argument("--arch", choices=FAMILIES, default=None, help="base family when it cannot be detected")
    convert.add_argument("--v_prediction", "--v-prediction", dest="v_prediction", action="store_true", help="official-textboost: the base is SD 2.x 768-v")
    convert.add_argument("--save_precision", "--save-precision", dest="save_precision", choices=("fp16", "float", "fp32", "bf16"), default=None,
                         help="dtype of the written weights (default: fp16 for official-textboost, else the source dtype)")
    convert.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="official-textboost: rename an embedding")
    convert.add_argument("--skip_token", "--skip-token", dest="skip_token", action="append", default=[], metavar="NAME", help="official-textboost: do not export this token")
    convert.set_defaults(func=run_convert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textboost_ext.export.cli", description=__doc__.splitlines()[0])
    register_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
