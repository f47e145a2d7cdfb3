"""The ``jaxcompress`` command: parse, validate, call. No logic of its own.

Every user mistake ends as one ``error: ...`` line on stderr and exit code 2;
an interrupted run (SIGTERM/SIGINT) saves its checkpoint and exits with
128 + the signal number, as shells expect.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any, Callable, Sequence

from jaxcompress import __version__
from jaxcompress.errors import UserError


def _add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("multi-host (see BUILD_NOTES.md)")
    group.add_argument("--distributed", default="auto", choices=("auto", "on", "off"),
                       help="auto: join other processes when flags or the environment say so (default)")
    group.add_argument("--coordinator-address", help="HOST:PORT of process 0 "
                       "(or $JAXCOMPRESS_COORDINATOR_ADDRESS / $JAX_COORDINATOR_ADDRESS)")
    group.add_argument("--num-processes", type=int, help="number of processes (or $JAXCOMPRESS_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int, help="this process's index (or $JAXCOMPRESS_PROCESS_ID)")


def _start_distributed(args: argparse.Namespace) -> None:
    from jaxcompress.train import distributed

    distributed.initialize(distributed.resolve(args.distributed, args.coordinator_address,
                                               args.num_processes, args.process_id))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcompress",
        description="Self-supervised pretraining and model compression in JAX/Flax.")
    parser.add_argument("--version", action="version", version=f"jaxcompress {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the main job on the embedded default data")
    demo.add_argument("--out", default="jaxcompress-demo", help="output directory (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a smaller run for a first look")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="change the workflow's settings (see 'jaxcompress run large-then-compress')")

    train = sub.add_parser("train", help="train a preset or a Python config file")
    train.add_argument("config", nargs="?", help="preset name or path to a .py file with get_config()")
    train.add_argument("--workdir", help="checkpoints, metrics and summary (default: runs/<preset>)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.learning_rate=3e-4 (repeatable)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    train.add_argument("--help-config", action="store_true", help="list every config key of CONFIG and exit")
    _add_distributed_flags(train)

    data = sub.add_parser("data", help="list or prepare datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_list = data_sub.add_parser("list", help="embedded datasets and whether they are prepared")
    data_list.add_argument("--json", action="store_true")
    data_list.add_argument("--data-dir", help="TFDS data directory (default: $JAXCOMPRESS_DATA_DIR or cache)")
    data_prepare = data_sub.add_parser("prepare", help="generate an embedded dataset (offline)")
    data_prepare.add_argument("name")
    data_prepare.add_argument("--force", action="store_true", help="rebuild even if prepared")
    data_prepare.add_argument("--data-dir", help="TFDS data directory")

    run = sub.add_parser("run", help="reproduce a paper's experiment (results.json, report.md, plots)",
                         formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    run.add_argument("-h", "--help", action=_HelpWithEpilog, epilog=_experiments_epilog)
    run.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    run.add_argument("--out", help="output directory (default: runs/<experiment>)")
    run.add_argument("--quick", action="store_true", help="a small version for a first look")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--config", help="a .py file whose get_config() returns the experiment's config")
    run.add_argument("--list", action="store_true", help="list the experiments and exit")

    compress = sub.add_parser("compress", help="compress a trained model and report sizes, speed and accuracy",
                              formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    compress.add_argument("-h", "--help", action=_HelpWithEpilog, epilog=_methods_epilog)
    compress.add_argument("--workdir", help="a `jaxcompress train` work directory")
    compress.add_argument("--method", dest="methods", action="append", default=[], metavar="NAME",
                          help="compression method, applied in the order given (repeatable; see --list)")
    compress.add_argument("--set", dest="settings", action="append", default=[], metavar="METHOD.KEY=VALUE",
                          help="a method option, e.g. --set prune.sparsity=0.9")
    compress.add_argument("--out", help="report and compact model (default: WORKDIR/compressed/<methods>)")
    compress.add_argument("--list", action="store_true", help="list the methods and exit")

    info = sub.add_parser("model-info", help="parameter counts and FLOPs of a preset's model")
    info.add_argument("preset")
    info.add_argument("--json", action="store_true")
    info.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


class _HelpWithEpilog(argparse.Action):
    """``-h``/``--help`` whose epilog (a registry listing) is built only when help is asked for,
    so ordinary commands do not import every runner or method."""

    def __init__(self, option_strings: list[str], dest: str, epilog: Callable[[], str], **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show this help message (with the list below) and exit", **kwargs)
        self._epilog = epilog

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.epilog = self._epilog()
        parser.print_help()
        parser.exit()


def _experiments_epilog() -> str:
    from jaxcompress.runners import experiments

    lines = [f"  {name:22s} {experiment.help}" for name, experiment in experiments().items()]
    return "experiments:\n" + "\n".join(lines)


def _methods_epilog() -> str:
    from jaxcompress.compress.methods import method_help

    lines = [f"  {name:12s} {families}" for name, families in method_help()]
    return ("methods (compose them: --method prune --method quantize):\n" + "\n".join(lines) + "\n"
            "  distillation is training, not a step on saved weights: `jaxcompress train` with task=distill\n"
            "  (see the survey runner); pruning and QAT during training: --set prune.* / quant.qat=...")


def _cmd_train(args: argparse.Namespace) -> int:
    from jaxcompress import configlib, configs

    if args.list_presets:
        for name in sorted(configs.PRESETS):
            print(f"{name:24s} {(configs.PRESETS[name].__doc__ or '').strip()}")
        return 0
    if not args.config:
        raise UserError("train needs CONFIG: a preset name (see --list-presets) or a .py config file")
    config = configlib.apply_overrides(configs.load_config(args.config), args.overrides)
    if args.help_config:
        for key, value, text in configlib.describe(config):
            print(f"{key:28s} {value!r:24s} {text}")
        return 0
    configlib.validate(config)
    _start_distributed(args)
    from jaxcompress.train import train

    workdir = args.workdir or str(pathlib.Path("runs") / config.name)
    summary = train(config, workdir, quiet=args.quiet)
    print(json.dumps({k: summary[k] for k in ("final_step", "eval_metrics", "params_sha256")}, sort_keys=True))
    print(f"summary: {pathlib.Path(workdir).absolute() / 'summary.json'}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from jaxcompress import data

    if args.data_command == "prepare":
        builder = data.prepare(args.name, data_dir=args.data_dir, force=args.force)
        print(f"prepared {args.name} in {builder.data_dir}")
        return 0
    if args.data_command == "list":
        rows = data.list_datasets(args.data_dir)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        for row in rows:
            splits = ", ".join(f"{k}={v}" for k, v in (row.get("splits") or {}).items()) or "-"
            state = "prepared" if row["prepared"] else "not prepared"
            print(f"{row['name']:16s} {state:13s} {splits:40s} {row['description']}")
        return 0
    raise UserError("data needs an action: list or prepare NAME")


def _cmd_model_info(args: argparse.Namespace) -> int:
    from jaxcompress import configlib, configs
    from jaxcompress.model_info import model_info

    config = configlib.apply_overrides(configs.get_preset(args.preset), args.overrides)
    configlib.validate(config)
    info = model_info(config)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(f"preset            {info['preset']}")
        print(f"total parameters  {info['total_params']:,}")
        for module, count in info["params_by_module"].items():
            print(f"  {module:16s}{count:,}")
        print(f"FLOPs per example {info['flops_per_example']:,.0f} (forward, XLA cost analysis)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from jaxcompress.runners import RunRequest, experiments, run_experiment

    if args.list or not args.experiment:
        for name, experiment in experiments().items():
            print(f"{name:24s} {experiment.help}")
        return 0 if args.list else 2
    out = pathlib.Path(args.out or pathlib.Path("runs") / args.experiment)
    run_experiment(args.experiment, RunRequest(out=out, quick=args.quick, quiet=args.quiet,
                                               overrides=tuple(args.overrides), config=args.config))
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from jaxcompress.compress.methods import method_help

    if args.list:
        import jaxcompress.workflows.cap  # noqa: F401  (registers the training method ``cap``)

        for name, families in method_help():
            print(f"{name:12s} {families}")
        return 0
    if not args.workdir:
        raise UserError("compress needs --workdir DIR: a `jaxcompress train` work directory")
    from jaxcompress.compress.report import markdown_table
    from jaxcompress.workflows.compress_workdir import compress_workdir

    report = compress_workdir(args.workdir, args.methods, args.settings, args.out)
    print(markdown_table([report]), end="")
    for step in report["history"]:
        if "measured_sparsity" in step:
            target = ("set by threshold and soft_l1" if step.get("pruner") == "soft_movement"
                      else f"target {step['sparsity']}")
            print(f"{step['method']}: measured sparsity {step['measured_sparsity']:.4f} ({target})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from jaxcompress.demo import run_demo

    run_demo(args.out, quick=args.quick, quiet=args.quiet, overrides=args.overrides)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"train": _cmd_train, "data": _cmd_data, "model-info": _cmd_model_info, "demo": _cmd_demo,
                "run": _cmd_run, "compress": _cmd_compress}
    from jaxcompress.train.loop import TrainingInterrupted

    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:
        # The reader went away (`jaxcompress train X --help-config | head`): end quietly, as
        # Unix tools do, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
