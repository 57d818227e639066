"""Two versions of moviegenre timed alternately, in fresh processes, on one model: the
single-plot p50 as ``benchmarks/run.py`` measures it and, with ``--cold-start``, the cold start.

    python benchmarks/ab.py fc85a81 --model models/linear                 # 8 pairs, under a minute
    python benchmarks/ab.py fc85a81 --model models/static --cold-start --pairs 5

On a shared virtual machine one run of ``benchmarks/run.py`` says little about a difference of
20%: the machine's speed drifts from one hour to the next, and a process's p50 varies with
where its memory lands. The two processes of a pair run one right after the other (which one
first alternates), so their medians compare the versions. REVISION (any git revision) is
checked out into a temporary git worktree and imported from its ``src``; this checkout's
``src`` is the other side. Both must load the model directory (the same bundle format).

Prints one JSON line per process, then one with the medians. Data: ``--testing``, by default
``dataTesting.zip`` under ``$MOVIEGENRE_TEST_DATA`` or ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import PROBES, REPO, SHARED_DATA, child_environment


def worktree(revision: str, into: Path) -> Path:
    """``revision`` checked out at ``into``; its ``src``."""
    done = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(into), revision],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ab.py: cannot check out {revision!r}: {done.stderr.strip()}")
    return into / "src"


def run_probe(src: Path, args: list[str]) -> tuple[dict, float]:
    """``benchmarks/probes.py ARGS`` with moviegenre imported from ``src``: its JSON and wall time."""
    env = {**child_environment(), "PYTHONPATH": str(src)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(PROBES), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"ab.py: {' '.join(args[:2])} failed with moviegenre from {src}: {last}")
    return json.loads(done.stdout), wall


def measure(side: str, src: Path, args: argparse.Namespace) -> dict:
    result, _ = run_probe(src, ["single", str(args.model), "--testing", str(args.testing),
                                "--single", str(args.single)])
    out = {"side": side, "p50_ms": result["single"]["p50_ms"]}
    if args.cold_start:
        out["cold_start_s"] = run_probe(src, ["cold-start", str(args.model)])[1]
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="The other version: a git revision (commit, tag, branch).")
    parser.add_argument("--model", type=Path, required=True, help="A model directory both versions load.")
    parser.add_argument("--testing", type=Path, default=SHARED_DATA / "dataTesting.zip",
                        help="Plots to score, one call each (default: dataTesting.zip of the test data).")
    parser.add_argument("--pairs", type=int, default=8, help="Pairs of processes (default 8).")
    parser.add_argument("--single", type=int, default=3383, help="Single-plot calls per process (default 3383).")
    parser.add_argument("--cold-start", action="store_true", help="Time a cold start in each process too.")
    args = parser.parse_args(argv)
    for path, what in ((args.model, "--model"), (args.testing, "--testing")):
        if not path.exists():
            parser.error(f"{what} {path} does not exist")
    if args.pairs < 1 or args.single < 1:
        parser.error("--pairs and --single must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="moviegenre-ab-"))
    try:
        sides = {"this checkout": REPO / "src", args.revision: worktree(args.revision, work / "other")}
        for src in sides.values():  # unmeasured: each version writes its bytecode once
            run_probe(src, ["cold-start", str(args.model)])
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for pair in range(args.pairs):
            order = list(sides) if pair % 2 == 0 else list(sides)[::-1]
            for side in order:
                result = {"pair": pair, **measure(side, sides[side], args)}
                runs[side].append(result)
                print(json.dumps(result), flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "other")],
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    this, other = runs.values()
    summary = {side: {key: statistics.median(run[key] for run in side_runs) for key in side_runs[0]
                      if key not in ("pair", "side")} for side, side_runs in runs.items()}
    summary["pairs"] = args.pairs
    faster = sum(mine["p50_ms"] < theirs["p50_ms"] for mine, theirs in zip(this, other, strict=True))
    summary["this checkout faster (p50), pairs"] = faster
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
