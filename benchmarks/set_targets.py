"""Set the workloads' validation targets from tuned reference runs (see descend.lab.targets).

    python benchmarks/set_targets.py --size quick
    python benchmarks/set_targets.py --size default --workloads pydoc-gpt --trials 8

Writes src/descend/lab/targets.json (merging with the sizes and workloads already there);
the records stay in runs/targets-SIZE, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import sys

from descend.lab.errors import LabError
from descend.lab.spec import parse_csv
from descend.lab.targets import set_targets
from descend.lab.tasks import SIZES
from descend.lab.workloads import WORKLOADS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=SIZES, required=True)
    p.add_argument("--workloads", type=parse_csv, default=list(WORKLOADS),
                   help="comma-separated (default: all)")
    p.add_argument("--trials", type=int, default=8, help="trials per reference optimizer")
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    try:
        entries = set_targets(args.workloads, args.size, trials=args.trials, out=args.out,
                              jobs=args.jobs)
    except (LabError, ValueError) as e:
        print(f"set_targets: error: {e}", file=sys.stderr)
        return 2
    for name, entry in entries.items():
        print(f"{name} [{args.size}]: target {entry['target']:g} — "
              f"{entry['reference']['optimizer']} [{entry['reference']['schedule']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
