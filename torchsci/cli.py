"""The ``torchsci`` command.

Plain subcommands for one-shot jobs; each installed plug-in adds its own under its field's name
(``torchsci neuro ...``) with ``registry.register_command(field, add_parser)`` in its ``register``.
Config-driven runs on Hydra (``torchsci train experiment=...``) are added by the CLI issue.
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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchsci", description="torchsci: science on PyTorch.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import torchsci  # noqa: PLC0415

        print(torchsci.__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
