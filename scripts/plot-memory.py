#!/usr/bin/env python3
"""Memory against contacts, at rest and during a new policy's first converge: runs
`cargo bench --bench memory` at several sizes (or reads outputs saved by an earlier run),
keeps each output beside the plot, and draws it as a PNG.

    scripts/plot-memory.py                      # runs the benches (a few minutes), then plots
    scripts/plot-memory.py --from-saved         # plots the outputs saved in docs/benchmarks/memory/

Needs matplotlib (`pip install matplotlib`).
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAVED = ROOT / "docs" / "benchmarks" / "memory"
REST = re.compile(r"^peak \(VmHWM\)\s+([\d.]+) MiB for (\d+) contacts", re.M)
COLD = re.compile(r"^cold peak \(VmHWM\)\s+([\d.]+) MiB for (\d+) contacts", re.M)


def run(n: int) -> str:
    env = dict(os.environ, BENCH_CONTACTS=str(n))
    out = subprocess.run(
        ["cargo", "bench", "--bench", "memory"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout
    SAVED.mkdir(parents=True, exist_ok=True)
    (SAVED / f"memory-{n}.txt").write_text(out)
    return out


def figures(text: str):
    rest, cold = REST.search(text), COLD.search(text)
    if not rest or not cold:
        sys.exit("a bench output lacks its `peak (VmHWM)` or `cold peak (VmHWM)` line")
    return int(rest.group(2)), float(rest.group(1)), float(cold.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,25000,50000,100000,200000")
    parser.add_argument("--from-saved", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "memory.png"))
    parser.add_argument("--limit-mib", type=float, default=256.0,
                        help="the chart's default memory limit, drawn for reference")
    args = parser.parse_args()

    if args.from_saved:
        texts = [p.read_text() for p in sorted(SAVED.glob("memory-*.txt"))]
    else:
        texts = [run(int(n)) for n in args.sizes.split(",")]
    points = sorted(figures(t) for t in texts)
    if not points:
        sys.exit(f"no bench outputs in {SAVED}")
    for n, rest, cold in points:
        print(f"{n:>8} contacts: at rest {rest:7.1f} MiB, first converge {cold:7.1f} MiB")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p[0] / 1000 for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(xs, [p[2] for p in points], "o-", label="first converge of a new policy (plan, apply, journal)")
    ax.plot(xs, [p[1] for p in points], "s-", label="at rest: a resync of the converged policy")
    ax.axhline(args.limit_mib, color="grey", linestyle="--", linewidth=1)
    ax.text(xs[0], args.limit_mib * 1.025, f"chart's default limit ({args.limit_mib:.0f} Mi)",
            color="grey", fontsize=8)
    ax.set_xlabel("managed contacts in one policy (thousands)")
    ax.set_ylabel("peak resident memory, MiB (VmHWM)")
    ax.set_title("ghl-operator engine memory (cargo bench --bench memory)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
