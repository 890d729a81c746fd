"""Time-to-quality of training runs, from the hard-negative curves they logged (train.py --hard_negatives_every):
for each run, the first step at which each kind reached the pass mark, the first step at which every kind was at it
at once, and the accuracy at the last step.

    python scripts/time_to_quality.py checkpoints
    python scripts/time_to_quality.py runs/seed0 runs/seed1 runs/seed2 --pass_mark 0.97

A run is a train.py --output_dir (its curve is ckpt/hard_negatives.json) or a curve file itself. The curve's scenes
come from a development seed: read quality on seeds training never saw with `python -m captioning.evaluate`.
"""

import argparse
import os
import sys

from captioning.evaluate import curves
from captioning.util import cli
from captioning.util.errors import InvalidInput


def curve_path(run: str) -> str:
    for path in (run, os.path.join(run, "ckpt", curves.CURVE_FILE), os.path.join(run, curves.CURVE_FILE)):
        if os.path.isfile(path):
            return path
    raise InvalidInput(f"{run}: no {curves.CURVE_FILE} (train with --hard_negatives_every, or name the file)")


def parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="train.py output folders or curve files.")
    parser.add_argument("--pass_mark", type=float, default=curves.PASS, help="The accuracy a kind must reach.")
    return parser


def main(args):
    loaded = {run: curves.read_curve(curve_path(run)) for run in args.runs}
    kinds = sorted({kind for curve in loaded.values() for point in curve["points"] for kind in point["accuracy"]})
    print(f"Steps until each kind's log-likelihood accuracy first reached {args.pass_mark} ('-': never)\n")
    print("| run | scenes (seed) | " + " | ".join(kinds) + " | every kind at once | last step |")
    print("|---|---|" + "---:|" * (len(kinds) + 2))
    for run, curve in loaded.items():
        points = curve["points"]
        first = curves.first_passes(points, args.pass_mark)
        every = curves.every_kind_passed(points, args.pass_mark)
        cells = [str(first.get(kind, "-")) for kind in kinds]
        last = points[-1]["step"] if points else "-"
        print(f"| {run} | {curve['scenes']} ({curve['seed']}) | " + " | ".join(cells) + f" | {every or '-'} | {last} |")
    print("\nAccuracy at the last step\n")
    print("| run | " + " | ".join(kinds) + " |")
    print("|---|" + "---:|" * len(kinds))
    for run, curve in loaded.items():
        last = curve["points"][-1] if curve["points"] else {"accuracy": {}, "pairs": {}}
        cells = [
            f"{last['accuracy'][kind]:.3f} ({last['pairs'][kind]})" if kind in last["accuracy"] else "-"
            for kind in kinds
        ]
        print(f"| {run} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(cli.run_parsed(main, parser()))
