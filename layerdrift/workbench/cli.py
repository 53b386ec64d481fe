"""The ``layerdrift`` command line: every failure is one sentence and a non-zero exit (``--debug`` for tracebacks)."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from layerdrift.errors import LayerdriftError, LayerdriftWarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings as one line on stderr; anything else as Python prints it."""
    if issubclass(category, LayerdriftWarning):
        print(f"layerdrift: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def _quiet_libraries() -> None:
    """Silence third-party chatter (deprecation notes, GGUF progress bars) on the terminal."""
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", category=LayerdriftWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("transformers", "transformer_lens", "bitsandbytes", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)


def _load_config(args: argparse.Namespace):
    """The config file's (or the default) config, with the command line's execution settings on top."""
    from layerdrift.workbench.config import default_config, load_config

    config = load_config(args.config) if args.config else default_config()
    given = {k: v for k in ("engine", "address") if (v := getattr(args, k, None)) is not None}
    if not given:
        return config
    return config.model_copy(update={"execution": config.execution.model_copy(update=given)})


def cmd_extract(args: argparse.Namespace) -> None:
    from layerdrift.training.series import expand_series
    from layerdrift.workbench.store.extract import extract

    config = expand_series(_load_config(args), quiet=args.quiet)
    store = extract(config, out=args.out, quiet=args.quiet)
    if not args.quiet:
        print(f"captures written to {store.root}")
        for key, entry in store.manifest["captures"].items():
            multi = entry["n_multi_token_terms"]
            print(
                f"  {key}: {entry['n_prompts']} prompts x {len(entry['hooks'])} hook points; "
                f"{multi} terms span several tokens"
            )


def cmd_run(args: argparse.Namespace) -> None:
    from layerdrift.workbench.api import print_headline, run

    result = run(_load_config(args), out=args.out, quiet=args.quiet)
    if not args.quiet:
        print_headline(result)


def cmd_report(args: argparse.Namespace) -> None:
    from layerdrift.core.objectstore import run_location
    from layerdrift.dashboards.report import write_report
    from layerdrift.workbench.api import open_run, print_headline

    run = open_run(args.run)
    if args.out is None:
        print_headline(run)
        return
    formats = [f for f in args.formats.split(",") if f and not (args.no_png and f == "png")]
    run.notes += write_report(run, formats, folder=args.out, style=args.style)
    print_headline(run, report=run_location(args.out) / "index.html")


def cmd_compare(args: argparse.Namespace) -> None:
    from layerdrift.workbench.compare import compare_runs, write_comparison

    names = args.names.split(",") if args.names else None
    comparison = compare_runs(args.runs, names)
    for note in write_comparison(comparison, args.out, png=not args.no_png):
        print(f"note: {note}")
    print(f"comparison of {', '.join(comparison.names)}: {args.out}/index.html")


def cmd_dashboard(args: argparse.Namespace) -> None:
    from layerdrift.dashboards.app import serve
    from layerdrift.workbench.api import open_run

    run = open_run(args.run)  # fail before the server starts: missing run, no analyses, old format
    serve(run, port=args.port, address=args.address, show=args.show)


def cmd_finetune(args: argparse.Namespace) -> None:
    from layerdrift.training.finetune import finetune, read_finetune_manifest
    from layerdrift.workbench.config import load_finetune_specs

    specs = load_finetune_specs(args.config)
    if args.out and len(specs) > 1:
        raise LayerdriftError(
            f"--out names one folder, but {args.config!r} holds {len(specs)} fine-tunes; drop "
            "--out and set each one's `out`."
        )
    for spec in specs:
        folder = finetune(spec, out=args.out, quiet=args.quiet)
        if not args.quiet:
            manifest = read_finetune_manifest(folder) or {}
            print(f"{spec.run_name}: {len(manifest.get('checkpoints', []))} checkpoints in {folder}")
            for c in manifest.get("checkpoints", []):
                train = "     -" if c["train_loss"] is None else f"{c['train_loss']:6.3f}"
                print(f"  step {c['step']:>6}  train loss {train}  eval loss {c['eval_loss']:6.3f}  ({c['folder']})")


def cmd_models(args: argparse.Namespace) -> None:
    from layerdrift.core.jit import cache_root
    from layerdrift.workbench.models.embedded import describe_embedded

    print(f"embedded models (conversion cache: {cache_root()})")
    for row in describe_embedded():
        print(f"  {row['alias']:<24} {row['model']}")
        print(f"  {'':<24} package:   {row['package']}")
        print(f"  {'':<24} converted: {row['converted']}")


def cmd_warm_up(args: argparse.Namespace) -> None:
    from layerdrift.workbench.experiments.drift import warm_up_maps

    print(f"UMAP's compiled functions are cached in {warm_up_maps()}")


def cmd_hooks(args: argparse.Namespace) -> None:
    from layerdrift.workbench.config import VariantSpec
    from layerdrift.workbench.models.loading import free, load_variant

    loaded = load_variant(VariantSpec(name="probe", source=args.source))
    try:
        names = sorted(loaded.bridge.hook_dict)
        pattern = args.filter or ""
        for name in names:
            if pattern in name:
                print(name)
    finally:
        free(loaded)


COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "finetune": cmd_finetune,
    "run": cmd_run,
    "report": cmd_report,
    "compare": cmd_compare,
    "dashboard": cmd_dashboard,
    "extract": cmd_extract,
    "models": cmd_models,
    "warm-up": cmd_warm_up,
    "hooks": cmd_hooks,
}


def _execution_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], help="where the work runs (default: the config's execution)")
    p.add_argument(
        "--address", help="ray: 'auto', 'ray://host:10001' or host:port of a running cluster (default: start one)"
    )


OUT_HELP = "run folder: a path or an fsspec URL such as s3://bucket/runs/name (default: the config's `out`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerdrift",
        description="Where inside a language model do post-training and quantization move concept representations?",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="extract (reusing the cache) + every analysis + the report folder")
    p.add_argument("--config", help="experiment TOML/YAML (default: the embedded SmolLM2 quantization run)")
    p.add_argument("--out", help=OUT_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress output or tables")
    _execution_arguments(p)
    p = sub.add_parser("report", help="print the headline tables of a finished run; --out writes its report folder")
    p.add_argument("run", help="run folder: a path or an fsspec URL such as s3://bucket/runs/name")
    p.add_argument("--out", help="write the report folder here (for example a local copy of a remote run's report)")
    p.add_argument("--no-png", action="store_true", help="HTML figures only (no Chromium needed)")
    p.add_argument(
        "--formats", default="png", help="figure files besides HTML, comma-separated: png, svg, pdf (default png)"
    )
    p.add_argument("--style", choices=("one-column", "two-column"), help="size figures for a paper's column")
    p = sub.add_parser("compare", help="several finished runs side by side in one report folder")
    p.add_argument("runs", nargs="+", help="run folders or fsspec URLs")
    p.add_argument("--out", required=True, help="the comparison's report folder")
    p.add_argument("--names", help="comma-separated names of the runs (default: their config names)")
    p.add_argument("--no-png", action="store_true", help="HTML figures only (no Chromium needed)")
    p = sub.add_parser("dashboard", help="serve the Panel dashboard of a finished run")
    p.add_argument("run", help="run folder: a path or an fsspec URL such as s3://bucket/runs/name")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1", help="bind address (default localhost only)")
    p.add_argument("--show", action="store_true", help="open a browser")
    p = sub.add_parser("extract", help="capture activations of every variant into the run store")
    p.add_argument("--config", help="experiment TOML/YAML (default: the embedded SmolLM2 quantization run)")
    p.add_argument("--out", help=OUT_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars or summaries")
    _execution_arguments(p)
    p = sub.add_parser("finetune", help="fine-tune a model on an instruction set, saving checkpoints on a schedule")
    p.add_argument(
        "--config",
        help="fine-tune TOML/YAML, or a run config whose series fine-tune (default: LoRA on "
        "the embedded Gemma 3 270M, objective helpful)",
    )
    p.add_argument("--out", help="checkpoint folder (default: the config's `out`; only with a single fine-tune)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    sub.add_parser("models", help="list the embedded model aliases and their conversion cache")
    sub.add_parser("warm-up", help="compile UMAP's numba functions into layerdrift's cache (make setup runs it)")
    p = sub.add_parser("hooks", help="list the hook points of a model source")
    p.add_argument("source", help="embedded alias, folder, .gguf file or hub id")
    p.add_argument("--filter", help="only names containing this text")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    if not args.debug:
        _quiet_libraries()
    try:
        COMMANDS[args.command](args)
    except LayerdriftError as err:
        if args.debug:
            raise
        print(f"layerdrift: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layerdrift: interrupted; finished batches are kept and the next run resumes from them.", file=sys.stderr)
        return 130
    return 0


def entry() -> None:
    """The ``layerdrift`` command: ``main``, then the process ends without tearing down the interpreter's modules.
    Every file is written and closed by then; the teardown of torch's and transformers' thousands of modules took 2 s
    of a one-minute run. Output is flushed and ``atexit`` handlers run first, as at a normal exit."""
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
