"""``textboost-toyworld``: pretrain / build / ship / quality / references / evaluate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="textboost-toyworld", description="The toy world: a tiny pretrained base for CPU demos and tests.")
    sub = p.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="build the toy base from a seed (oracle, VAE, its decoder, text encoder + UNet); hours on a CPU")
    pre.add_argument("--output_dir", type=Path, required=True)
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    pre.add_argument("--stages", default="oracle,vae,decoder,t2i",
                     help="comma list of oracle, vae, decoder, t2i (each skips when its output exists; decoder on a "
                          "finished run swaps its pipeline's VAE for the fine-tuned one and re-measures)")
    pre.add_argument("--t2i_steps", type=int, default=None)
    pre.add_argument("--vae_steps", type=int, default=None)
    pre.add_argument("--decoder_steps", type=int, default=None, help="VAE decoder fine-tuning steps (default 3000)")
    pre.add_argument("--oracle_steps", type=int, default=None)
    pre.add_argument("--high_noise_share", type=float, default=None,
                     help="experiment: share of timesteps drawn from [600, 1000) (default 0 = uniform timesteps)")
    pre.add_argument("--snr_floor", type=float, default=None,
                     help="floor of the image-error weight clamp(SNR, floor, 5) (default 1; 0 = plain min-SNR-5)")
    pre.add_argument("--multires_noise_iterations", type=int, default=None,
                     help="experiment: coarse noise levels added to the training noise (default 0 = plain Gaussian)")
    pre.add_argument("--multires_noise_discount", type=float, default=None,
                     help="experiment: weight of each coarser level, to the power of its level (default 0.5)")
    pre.add_argument("--prediction_type", choices=("epsilon", "v_prediction"), default=None,
                     help="what the UNet predicts (default v_prediction); saved in the pipeline's scheduler config")
    pre.add_argument("--learning_rate", type=float, default=None, help="text encoder + UNet AdamW rate (default 6e-4)")
    pre.add_argument("--init_from", type=Path, default=None,
                     help="start the text encoder + UNet from this pipeline folder (a finished run's <run>/pipeline) "
                          "instead of a fresh init: e.g. to turn an epsilon base into a v-prediction one")
    pre.add_argument("--device", default=None, help="cpu or cuda[:N] (default: CUDA when present)")
    bu = sub.add_parser("build", help="the shipped base's whole recipe in one command: a first run and its "
                                      "continuations (hours on a CPU; resumes when started again)")
    bu.add_argument("--output_dir", type=Path, required=True, help="runs go to OUTPUT_DIR/run0 .. runN")
    bu.add_argument("--seed", type=int, default=0)
    bu.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    bu.add_argument("--device", default=None, help="cpu or cuda[:N] (default: CUDA when present)")
    bu.add_argument("--first_steps", type=int, default=12_000, help="text encoder + UNet steps of the first run")
    bu.add_argument("--continuations", type=int, default=4)
    bu.add_argument("--continuation_steps", type=int, default=6_000)
    bu.add_argument("--continuation_learning_rate", type=float, default=3e-4)
    sh = sub.add_parser("ship", help="copy a finished pretraining run into the package (fp16 + record with checksums)")
    sh.add_argument("run_dir", type=Path)
    sh.add_argument("--target", type=Path, default=None, help="default: textboost_ext/assets/toyworld")
    qu = sub.add_parser("quality", help="measure the shipped base on all held-out caption combinations (the README table)")
    qu.add_argument("--threads", type=int, default=None)
    rf = sub.add_parser("references", help="rewrite the novel subjects' reference images")
    rf.add_argument("--root", type=Path, default=Path("examples/toyworld"))
    ev = sub.add_parser("evaluate", help="base vs adapter on the adapter's toy-world subject: table, grid.png, toyworld_eval.json")
    ev.add_argument("adapter", help="store name, adapter folder or LoRA file (trained on builtin:toyworld)")
    ev.add_argument("--seeds", type=int, default=3, help="seeds per prompt (default 3)")
    ev.add_argument("--reference", type=Path, default=None, help="the training photo, shown first in the grid")
    ev.add_argument("--output_dir", type=Path, default=None, help="default: the adapter folder's eval/toyworld")
    ev.add_argument("--adapters_dir", type=Path, default=None)
    ev.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    from textboost_ext.console import quiet_third_party

    quiet_third_party(import_now=args.command in ("quality", "evaluate"))
    if args.command == "ship":
        from textboost_ext.toyworld.shipped import ShippedFileError, ship

        missing = [p for p in ("record.json", "oracle.safetensors", "pipeline/model_index.json") if not (args.run_dir / p).is_file()]
        if missing:
            print(f"textboost-toyworld: error: {args.run_dir} is not a finished pretraining run (missing {', '.join(missing)}); "
                  "run `textboost-toyworld pretrain --output_dir DIR` to the end first", file=sys.stderr)
            return 2
        try:
            print(f"shipped to {ship(args.run_dir, args.target)}")
        except ShippedFileError as err:
            print(f"textboost-toyworld: error: {err}", file=sys.stderr)
            return 2
    if args.command == "quality":
        from textboost_ext.models.errors import BaseModelError
        from textboost_ext.toyworld.shipped import ShippedFileError

        _threads(args.threads)
        try:
            return _quality()
        except (ShippedFileError, BaseModelError) as err:
            print(f"textboost-toyworld: error: {err}", file=sys.stderr)
            return 2
    if args.command == "references":
        from textboost_ext.toyworld.references import write_references

        for path in write_references(args.root):
            print(path)
    if args.command == "evaluate":
        _threads(args.threads)
        return _evaluate(args)
    if args.command == "build":
        from textboost_ext.toyworld.build import Chain, build

        _threads(args.threads)
        chain = Chain(args.first_steps, args.continuations, args.continuation_steps, args.continuation_learning_rate)
        last = build(args.output_dir, args.seed, chain, device=args.device)
        print(f"built {last}; ship it with: textboost-toyworld ship {last}")
    if args.command == "pretrain":
        from textboost_ext.toyworld.pretrain import ORACLE_STEPS, STAGES, pretrain

        _threads(args.threads)
        stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            p.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
        recipe = {k: getattr(args, k) for k in ("high_noise_share", "snr_floor", "multires_noise_iterations",
                                                    "multires_noise_discount", "prediction_type", "learning_rate")
                  if getattr(args, k) is not None}
        pretrain(args.output_dir, args.seed, stages, t2i_steps=args.t2i_steps, vae_steps=args.vae_steps,
                 decoder_steps=args.decoder_steps,
                 oracle_steps=args.oracle_steps or ORACLE_STEPS, device=args.device, t2i_recipe=recipe,
                 init_from=args.init_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _quality() -> int:
    from textboost_ext.toyworld.evaluate import load_toy_pipeline
    from textboost_ext.toyworld.generate import GUIDANCE, STEPS
    from textboost_ext.toyworld.quality import QUALITY_BAR, measure_quality
    from textboost_ext.toyworld.shipped import load_shipped_oracle

    by_shape: dict[str, float] = {}
    q = measure_quality(load_toy_pipeline(), load_shipped_oracle(), seed=0, by_shape=by_shape)
    print(f"builtin:toyworld on all {q['n']} held-out caption combinations (DDIM {STEPS} steps, guidance {GUIDANCE:g}), "
          "read by the oracle:")
    for name, bar in QUALITY_BAR.items():
        print(f"  {name:<10} {q[name]:6.1%}  (bar {bar:.0%}) {'ok' if q[name] >= bar else 'BELOW'}")
    print("  shape, per shape asked for: " + ", ".join(f"{shape} {share:.0%}" for shape, share in by_shape.items()))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from textboost_ext.evaluation.adapters import AdapterLoadError, open_adapter
    from textboost_ext.hub.store import EVAL_SUBDIR, adapters_root
    from textboost_ext.toyworld.evaluate import compare, load_toy_pipeline
    from textboost_ext.toyworld.report import format_comparison, save_grid, write_json
    from textboost_ext.models.errors import BaseModelError
    from textboost_ext.toyworld.shipped import ShippedFileError, load_shipped_oracle

    try:
        root = adapters_root(args.adapters_dir)
        adapter = open_adapter(args.adapter, root)
        pipe, oracle = load_toy_pipeline(), load_shipped_oracle()
        comparison = compare(args.adapter, seeds=range(args.seeds), pipe=pipe, oracle=oracle, adapters_dir=root)
    except (AdapterLoadError, ValueError, ShippedFileError, BaseModelError) as err:
        print(f"textboost-toyworld: error: {err}", file=sys.stderr)
        return 2
    out = args.output_dir or adapter.info.folder / EVAL_SUBDIR / "toyworld"
    out.mkdir(parents=True, exist_ok=True)
    print(format_comparison(comparison))
    print(f"grid:   {save_grid(comparison, out / 'grid.png', args.reference)}")
    print(f"scores: {write_json(comparison, out / 'toyworld_eval.json')}")
    return 0
