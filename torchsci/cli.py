"""The ``torchsci`` command.

Config-driven runs go through Hydra: ``torchsci train|evaluate|predict [experiment=...] [key=value ...]``
accepts every Hydra option (``-m`` sweeps, ``--cfg job``, ``--help``); ``torchsci-train`` and friends are the
same commands as single executables, for Hydra's shell completion (``-sc install=bash``).
Plain subcommands serve one-shot jobs; each installed plug-in adds its own under its field's name
(``torchsci neuro ...``) with ``registry.register_command(field, add_parser)`` in its ``register``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_models(args: argparse.Namespace) -> int:
    import torchsci  # noqa: PLC0415

    names = torchsci.list_models(args.pattern, pretrained=args.pretrained)
    for name in names:
        print(name)
    for plugin, why in torchsci.registry.unavailable.items():
        print(f"# plug-in '{plugin}' not available: {why}", file=sys.stderr)
    return 0 if names else 1


def _cmd_env(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    import torchsci  # noqa: PLC0415
    from torchsci.distributed import env_info  # noqa: PLC0415

    print(f"torchsci {torchsci.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}")
    print(f"device='auto' resolves to: {torchsci.resolve_device('auto')}")
    print(f"CUDA available: {torch.cuda.is_available()} ({torch.cuda.device_count()} device(s)); "
          f"MPS available: {torch.backends.mps.is_available()}")
    print(f"distributed: {env_info()}")
    print(f"CPU threads: {torch.get_num_threads()}")
    torchsci.registry.load_plugins()
    for plugin, dist in sorted(torchsci.registry.plugins.items()):
        print(f"plug-in {plugin}: {dist}")
    for plugin, why in sorted(torchsci.registry.unavailable.items()):
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
    import hydra  # noqa: PLC0415

    from torchsci.config import (  # noqa: PLC0415
        CONFIG_MODULE,
        compose,
        normalise_overrides,
        register_schema,
        with_search_path,
    )
    from torchsci.errors import TorchsciError  # noqa: PLC0415
    from torchsci.runner import run  # noqa: PLC0415

    register_schema()
    argv = normalise_overrides(argv)
    config_dir = _flag_value(argv, "--config-dir", "-cd")
    if not {"-m", "--multirun", "--help", "-h", "--hydra-help", "-sc", "--shell-completion"} & set(argv):
        # Compose once up front so a typo is one clear line with close matches, not Hydra's traceback advice.
        try:
            compose(_overrides_only(argv), config_dir=config_dir)
        except TorchsciError as exc:
            print(f"torchsci {command}: error: {exc}", file=sys.stderr)
            return 2

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="torchsci")
    def task(cfg) -> None:
        try:
            run(cfg, command)
        except TorchsciError as exc:
            # One clear line, not a traceback: these errors say what was wrong and what to do.
            print(f"torchsci {command}: error: {exc}", file=sys.stderr)
            sys.exit(2)

    saved = sys.argv
    # The plug-ins' config groups (Hydra adds --config-dir itself).
    searched = with_search_path(argv)
    if len(searched) > len(argv):  # appended: put it beside the other overrides
        searched = _with_override(argv, searched[-1:])
    sys.argv = [f"torchsci-{command}", *searched]
    try:
        task()
    finally:
        sys.argv = saved
    return 0


def _plain_export(argv: Sequence[str]) -> bool:
    """``torchsci export model.ckpt --format onnx`` (a model first, no key=value) is the one-shot export;
    ``torchsci export experiment=... ckpt=...`` is the config-driven one."""
    return argv[0] == "export" and len(argv) > 1 and "=" not in argv[1] and not argv[1].startswith("-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchsci", description="torchsci: science on PyTorch.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for command in HYDRA_COMMANDS[:-1]:
        sub.add_parser(command, help=f"config-driven {command} (torchsci {command} --help lists experiments)",
                       add_help=False)
    from torchsci.export import add_export_command  # noqa: PLC0415

    add_export_command(sub)
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="glob, e.g. 'neuro/*'")
    p.add_argument("--pretrained", action="store_true", help="only models with shipped weights")
    p.set_defaults(func=_cmd_models)
    p = sub.add_parser("env", help="show the device, torch build and distributed settings")
    p.set_defaults(func=_cmd_env)
    from torchsci.registry import registry  # noqa: PLC0415

    registry.load_plugins()
    for field, add_commands in sorted(registry.commands.items()):
        fp = sub.add_parser(field, help=f"{field} commands (torchsci {field} --help)")
        fp.set_defaults(func=lambda args, fp=fp: fp.print_help() or 2)
        add_commands(fp.add_subparsers(dest=f"{field}_command"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # answered before any plug-in is loaded
        from torchsci import __version__  # noqa: PLC0415

        print(__version__)
        return 0
    if argv and argv[0] in HYDRA_COMMANDS and not _plain_export(argv):
        return run_hydra(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import torchsci  # noqa: PLC0415

        print(torchsci.__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from torchsci.errors import TorchsciError  # noqa: PLC0415

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
