"""The ``torchsci`` command.

Config-driven runs go through Hydra: ``torchsci train|evaluate|predict [experiment=...] [key=value ...]``
accepts every Hydra option (``-m`` sweeps, ``--cfg job``, ``--help``); ``torchsci-train`` and friends are the
same commands as single executables, for Hydra's shell completion (``-sc install=bash``).
Plain subcommands serve one-shot jobs; each installed plug-in adds its own under its field's name
(``torchsci neuro ...``) with ``registry.register_command(field, add_parser)`` in its ``register``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _cmd_models(args: argparse.Namespace) -> int:
    import torchsci

    names = torchsci.list_models(args.pattern, pretrained=args.pretrained)
    for name in names:
        print(name)
    for plugin, why in torchsci.registry.registry.unavailable.items():
        print(f"# plug-in '{plugin}' not available: {why}", file=sys.stderr)
    return 0 if names else 1


def _cmd_env(args: argparse.Namespace) -> int:
    import torch

    import torchsci
    from torchsci.distributed import env_info

    print(f"torchsci {torchsci.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}")
    print(f"device='auto' resolves to: {torchsci.resolve_device('auto')}")
    print(f"CUDA available: {torch.cuda.is_available()} ({torch.cuda.device_count()} device(s)); "
          f"MPS available: {torch.backends.mps.is_available()}")
    print(f"distributed: {env_info()}")
    print(f"CPU threads: {torch.get_num_threads()}")
    torchsci.registry.load_plugins()
    for plugin, dist in sorted(torchsci.registry.registry.plugins.items()):
        print(f"plug-in {plugin}: {dist}")
    for plugin, why in sorted(torchsci.registry.registry.unavailable.items()):
        print(f"plug-in {plugin}: not available: {why}")
    return 0


HYDRA_COMMANDS = ("train", "evaluate", "predict", "export")
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}


def _overrides_only(argv: Sequence[str]) -> list[str]:
    """The key=value overrides in a Hydra command line (flags and their values left out)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-") and not arg.lstrip("+~").startswith(("hydra.", "hydra/")):
            out.append(arg)
    return out


def _with_override(argv: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``argv`` with ``extra`` overrides beside its own (Hydra's parser takes one run of overrides, not two)."""
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return [*argv[:i], *extra, *argv[i:]]
    return [*argv, *extra]


def _flag_value(argv: Sequence[str], *flags: str) -> str | None:
    """The value of the last of ``flags`` in ``argv`` (``--config-dir DIR`` or ``--config-dir=DIR``)."""
    value = None
    for i, arg in enumerate(argv):
        name, eq, given = arg.partition("=")
        if name in flags:
            value = given if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def run_hydra(command: str, argv: Sequence[str]) -> int:
    """``torchsci <command> <hydra args>``: compose the config from configs/ and run it (see torchsci.runner)."""
    import hydra

    from torchsci.config import (
        CONFIG_MODULE,
        compose,
        merged_dict_overrides,
        normalise_overrides,
        register_schema,
    )
    from torchsci.errors import TorchsciError
    from torchsci.runner import run

    register_schema()
    argv = normalise_overrides(argv)
    config_dir = _flag_value(argv, "--config-dir", "-cd")
    own_config = bool(_OWN_CONFIG & set(argv))
    single = not own_config and not {"-m", "--multirun", "--help", "-h", "--hydra-help", "-sc", "--shell-completion",
                                     "--cfg", "-c", "--info", "-i"} & set(argv)
    sweep = (not own_config and bool({"-m", "--multirun"} & set(argv))
             and not {"--help", "-h", "--hydra-help"} & set(argv))

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="torchsci")
    def task(cfg) -> None:
        try:
            run(cfg, command)
        except TorchsciError as exc:
            # One clear line, not a traceback: these errors say what was wrong and what to do.
            print(f"torchsci {command}: error: {exc}", file=sys.stderr)
            sys.exit(2)

    from torchsci.hydra_guard import vet_command_line

    try:
        # Hydra builds callbacks, launchers, sweepers and logging handlers from the config itself: vet the
        # config it will compose (file, overrides, search path, every sweep job) before anything else reads
        # it, and before any run folder is made. A replayed config file is vetted as it is (its own
        # hydra.searchpath included); otherwise with the plug-ins' config groups on the search path.
        vet_command_line(argv if own_config else _searched(argv), task, f"pkg://{CONFIG_MODULE}", "torchsci")
        _check_launcher(argv)
        cfg = None
        if single or (not own_config and {"--cfg", "-c", "--info", "-i"} & set(argv)):
            # Compose once up front so a typo is one clear line with close matches, not Hydra's traceback advice.
            cfg = compose(_overrides_only(argv), config_dir=config_dir)
            for note in merged_dict_overrides(_overrides_only(argv), cfg):
                print(f"torchsci {command}: note: {note}", file=sys.stderr)
        if single:
            _check_run(cfg)
            extra = _run_folder(command, cfg, argv)
            replaced = {a.split("=", 1)[0] for a in extra}
            argv = [a for a in argv if a.split("=", 1)[0].lstrip("+~") not in replaced] + extra
        elif sweep:
            argv = [*argv, *_sweep_folder(argv)]
    except TorchsciError as exc:
        print(f"torchsci {command}: error: {exc}", file=sys.stderr)
        return 2
    searched = _searched(argv)
    saved = sys.argv
    sys.argv = [f"torchsci-{command}", *searched]
    try:
        task()
    finally:
        sys.argv = saved
    return 0


# A config of the user's own as the primary config (a replayed run folder): not composable from ours.
# (--config-dir alone only adds the user's groups and experiments beside ours.)
_OWN_CONFIG = {"--config-name", "-cn", "--config-path", "-cp"}


def _check_launcher(argv: Sequence[str]) -> None:
    """A SLURM sweep needs the submitit plug-in and SLURM itself; say so before Hydra tries to submit."""
    import shutil

    from torchsci.errors import ConfigError

    launcher = next((a.split("=", 1)[1] for a in argv if a.lstrip("+~").startswith("hydra/launcher=")), None)
    if launcher not in ("slurm", "submitit_slurm"):
        return
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError as exc:
        raise ConfigError("hydra/launcher=slurm needs Hydra's submitit launcher: pip install 'torchsci[cluster]'.") from exc
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm: there is no SLURM on this machine (no 'sbatch' on PATH); run the "
                          "sweep on the cluster's login node, or here with hydra/launcher=joblib.")


def _quote(value: object) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _searched(argv: Sequence[str]) -> list[str]:
    """``argv`` with the plug-ins' config groups on Hydra's search path (Hydra adds --config-dir itself)."""
    from torchsci.config import with_search_path

    searched = with_search_path(argv)
    if len(searched) > len(argv):  # appended: put it beside the other overrides
        searched = _with_override(argv, searched[-1:])
    return searched


def _check_run(cfg: object) -> None:
    """Check a run's values before any folder is made, so a refused command leaves no empty run folder."""
    from torchsci.config import validate
    from torchsci.runner import build_trainer

    validate(cfg)
    build_trainer(cfg, Path(os.devnull))


def _run_folder(command: str, cfg: object, argv: Sequence[str]) -> list[str]:
    """Overrides that put this run in its own folder: a new unique one, or the interrupted run it resumes."""
    from torchsci.checkpoint import load_state
    from torchsci.runner import find_resume, new_run_dir

    if any(a.lstrip("+~").startswith("hydra.run.dir=") for a in argv):
        return []
    # Hydra keeps its own records (.hydra/) out of a folder the user named or a run being resumed.
    keep_out = "hydra.output_subdir=null"
    if cfg.get("run_dir"):
        return [f"hydra.run.dir={_quote(cfg.run_dir)}", keep_out]
    if command == "train" and cfg.get("resume"):
        folder, resume = find_resume(str(cfg.name), str(cfg.resume))
        ckpt = folder / "checkpoints" / "last.ckpt" if resume == "last" else resume
        progress = load_state(ckpt).get("progress", {})
        print(f"torchsci train: resuming {folder} from {ckpt} (epoch {progress.get('epoch')}, step "
              f"{progress.get('step')}); logs and checkpoints continue in that folder.", file=sys.stderr)
        return [f"run_dir={_quote(folder)}", f"resume={_quote(resume)}", f"hydra.run.dir={_quote(folder)}", keep_out]
    return [f"hydra.run.dir={_quote(new_run_dir(str(cfg.name)))}"]


def _sweep_folder(argv: Sequence[str]) -> list[str]:
    """``hydra.sweep.dir`` of a new, unique ``multirun/<day>/<time>_<name>[-N]``: two sweeps started in the same
    second never share their job folders."""
    import datetime

    from torchsci.config import compose
    from torchsci.io import make_run_dir

    if any(a.lstrip("+~").startswith("hydra.sweep.dir=") for a in argv):
        return []
    sweeps = ("range(", "choice(", "interval(", "glob(", "tag(", "sort(", "shuffle(")
    fixed = [a for a in _overrides_only(argv) if "," not in a.partition("=")[2] and not a.partition("=")[2].startswith(sweeps)]
    name = str(compose(fixed, config_dir=_flag_value(argv, "--config-dir", "-cd")).name)
    stamp = datetime.datetime.now()
    folder = make_run_dir(Path("multirun") / stamp.strftime("%Y-%m-%d"), f"{stamp.strftime('%H-%M-%S')}_{name}")
    return [f"hydra.sweep.dir={_quote(folder)}"]


def _plain_export(argv: Sequence[str]) -> bool:
    """``torchsci export model.ckpt --format onnx`` (a model first, no key=value) is the one-shot export;
    ``torchsci export experiment=... ckpt=...`` is the config-driven one."""
    if argv[0] == "export" and argv[1:] in (["--help"], ["-h"]):  # both forms are explained in that help
        return True
    return argv[0] == "export" and len(argv) > 1 and "=" not in argv[1] and not argv[1].startswith("-")


# ------------------------------------------------------------------------------------- torchsci export
def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s)
    except ValueError:
        shape = ()
    if not shape:
        from torchsci.errors import ExportError

        raise ExportError(f"--example-shape {text!r}: write the shape as comma-separated sizes, e.g. 4,5.")
    return shape


def _cmd_export(args: Any) -> int:
    import torch  # lazy: torchsci --version imports no torch

    from torchsci.errors import ExportError
    from torchsci.export import export
    from torchsci.registry import load_model, registry

    source = Path(args.model)
    entry = None
    if source.is_file():
        model = load_model(source)
        name = model.torchsci_spec["name"]
    else:
        model = registry.create_model(args.model, pretrained=args.pretrained)
        name = args.model
    if args.example_shape:
        torch.manual_seed(0)
        example = tuple(torch.randn(*_parse_shape(s)) for s in args.example_shape)
    else:
        entry = registry.models[name]
        if entry.example_inputs is None:
            raise ExportError(f"{name} registers no example inputs; pass --example-shape.")
        example = entry.example_inputs()
    result = export(model, example, format=args.format, path=args.output,
                    batch_of=entry.batch_of if entry is not None else None)
    print(result.report)
    return 0


def add_export_command(subparsers: Any) -> None:
    """Add ``torchsci export MODEL --format F [--example-shape 4,5 ...] -o PATH`` to an argparse sub-parser set.

    ``MODEL`` is a checkpoint written by the Trainer for a registry model, or a registered model name.
    Without ``--example-shape``, the model's registered example inputs are used.
    """
    from torchsci.export import FORMATS

    p = subparsers.add_parser(
        "export", help="export a checkpoint or registered model (pt2, aoti, onnx, torchscript)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config-driven form (the example is a real batch of the experiment's data):\n"
               "  torchsci export experiment=<field>/<name> ckpt=<run>/checkpoints/best.ckpt export.format=onnx\n"
               "  (torchsci train --help lists the experiments and the export.* settings)")
    p.add_argument("model", help="checkpoint file (runs/.../best.ckpt) or registered model name (core/mlp)")
    p.add_argument("--format", choices=list(FORMATS), default="pt2")
    p.add_argument("--example-shape", action="append", default=[], metavar="SHAPE",
                   help="shape of one float input, e.g. 4,5 (repeat for several inputs; batch of at least 2)")
    p.add_argument("--pretrained", action="store_true", help="load the registered model's shipped weights")
    p.add_argument("-o", "--output", default=".", help="file or folder to write (default: current folder)")
    p.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchsci", description="torchsci: science on PyTorch.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for command in HYDRA_COMMANDS[:-1]:
        sub.add_parser(command, help=f"config-driven {command} (torchsci {command} --help lists experiments)",
                       add_help=False)
    add_export_command(sub)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="glob, e.g. 'neuro/*'")
    p.add_argument("--pretrained", action="store_true", help="only models with shipped weights")
    p.set_defaults(func=_cmd_models)
    p = sub.add_parser("env", help="show the device, torch build and distributed settings")
    p.set_defaults(func=_cmd_env)
    from torchsci.registry import registry

    registry.load_plugins()
    for field, add_commands in sorted(registry.commands.items()):
        fp = sub.add_parser(field, help=f"{field} commands (torchsci {field} --help)")
        fp.set_defaults(func=lambda args, fp=fp: fp.print_help() or 2)
        add_commands(fp.add_subparsers(dest=f"{field}_command"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # answered before any plug-in is loaded
        from torchsci import __version__

        print(__version__)
        return 0
    if argv and argv[0] in HYDRA_COMMANDS and not _plain_export(argv):
        return run_hydra(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import torchsci

        print(torchsci.__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from torchsci.errors import TorchsciError

    try:
        return int(args.func(args) or 0)
    except TorchsciError as exc:
        print(f"torchsci {' '.join(argv[:1])}: error: {exc}", file=sys.stderr)
        return 2


def train() -> int:
    """``torchsci-train ...`` = ``torchsci train ...`` (an executable of its own for shell completion)."""
    return main(["train", *sys.argv[1:]])


def evaluate() -> int:
    """``torchsci-evaluate ...`` = ``torchsci evaluate ...``."""
    return main(["evaluate", *sys.argv[1:]])


def predict() -> int:
    """``torchsci-predict ...`` = ``torchsci predict ...``."""
    return main(["predict", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
