"""Run torchsci with the toy field installed through its entry point only (no change to torchsci/ or configs/).

``python tests/toyfield/run_toy.py SITE <torchsci arguments> [::: <torchsci arguments> ...]``: writes
``torchsci_toy-0.1.dist-info`` (with the ``torchsci.plugins`` entry point) into the folder SITE, puts SITE and
this folder on ``sys.path`` so that ``importlib.metadata`` finds the distribution, and runs each
``torchsci <arguments>`` in turn (one process: torch is imported once), printing ``== exit <code>`` after each.
"""

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    site = Path(argv[0])
    info = site / "torchsci_toy-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torchsci-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[torchsci.plugins]\ntoy = torchsci_toy:register\n")
    sys.path[:0] = [str(site), str(Path(__file__).parent)]
    from torchsci.cli import main as torchsci  # lazy: after sys.path names the toy field

    commands, current = [], []
    for arg in argv[1:]:
        if arg == ":::":
            commands.append(current)
            current = []
        else:
            current.append(arg)
    for command in [*commands, current]:
        try:
            code = torchsci(command)
        except SystemExit as exc:  # a Hydra-run error exits (torchsci.cli: one clear line, then exit 2)
            code = exc.code
        print(f"== exit {code}", flush=True)
        print("== exit", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
