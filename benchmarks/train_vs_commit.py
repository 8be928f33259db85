"""Training time of this checkout against an earlier commit's, on this machine, model by model in alternation.

    python benchmarks/train_vs_commit.py --commit 3e3d31d --data-dir ../shared/data/mnist --runs runs/vs-round1

For each report model, trains it with the commit's defaults (the commit's own ``benchmarks/train_all.py``, run from
a git worktree of it in a temporary folder) and then with this checkout's (``benchmarks/train_all.py``), one right
after the other, so both see about the same machine; a busy spell then slows one pair, not one side. Both run
under one OpenMP wait policy, ``--wait-policy`` (default ACTIVE, what OpenMP's default amounts to on an idle
machine): left to itself, this checkout picks PASSIVE when the load average is 1 or more, which the other side's
run just before it makes it (README, Training), and round 1's train_all imported torch before aetool, so its
PASSIVE never took effect. Prints a
table of epochs, wall seconds, seconds per epoch and test MSE of both, the 1-minute load average before each, and
the totals; writes ``RUNS/train_vs_commit.json``. Round 1's last commit is 3e3d31d, whose README measured 451 s on
another machine; its code names ``denoise-dense`` ``denoise``. Runs already in ``--runs`` are trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from one_line_errors import run_script

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = dict(os.environ)  # before aetool is imported here: each side's aetool picks its own OpenMP wait policy
RENAMED = {"denoise-dense": "denoise"}  # this checkout's name → round 1's


def train_one(tree: Path, model: str, *, data_dir: str, runs: Path, force: bool) -> dict:
    """Train ``model`` with ``tree``'s train_all.py into ``runs``; its row, and the load average before it."""
    load = round(os.getloadavg()[0], 2)
    command = [sys.executable, "benchmarks/train_all.py", "--data-dir", data_dir, "--runs", str(runs)]
    command += ["--models", model] + (["--force"] if force else [])
    env = {**ENVIRONMENT, "PYTHONPATH": str(tree)}
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    row = json.loads((runs / "train_all.json").read_text())["rows"][0]
    return {**row, "load_before": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", required=True, help="the earlier commit (e.g. 3e3d31d, round 1's last)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs", default="runs/vs-commit")
    parser.add_argument("--models", nargs="*", default=None, help="default: every report model")
    parser.add_argument(
        "--wait-policy", choices=["ACTIVE", "PASSIVE"], default="ACTIVE", help="OMP_WAIT_POLICY of both"
    )
    args = parser.parse_args()
    ENVIRONMENT["OMP_WAIT_POLICY"] = args.wait_policy
    sys.path.insert(0, str(ROOT))
    from aetool.models import REPORT_MODELS

    data_dir, runs = str(Path(args.data_dir).resolve()), Path(args.runs).resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="aetool-commit-") as scratch:
        old_tree = Path(scratch) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old_tree), args.commit], cwd=ROOT, check=True)
        try:
            for model in args.models or list(REPORT_MODELS):
                old = train_one(old_tree, RENAMED.get(model, model), data_dir=data_dir, runs=runs / "old", force=False)
                new = train_one(ROOT, model, data_dir=data_dir, runs=runs / "new", force=True)
                rows.append({"model": model, "old": old, "new": new})
                print(
                    f"{model:20s} {old['seconds']:7.1f} s → {new['seconds']:7.1f} s "
                    f"(test MSE {old['test_mse']:.5f} → {new['test_mse']:.5f})",
                    flush=True,
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=True)
    record = {"commit": args.commit, "wait_policy": args.wait_policy, "rows": rows}
    (runs / "train_vs_commit.json").write_text(json.dumps(record, indent=2))
    print(f"\ncommit {args.commit} → this checkout, OMP_WAIT_POLICY={args.wait_policy}\n")
    print("| model | epochs | wall s | s/epoch | test MSE | load before |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        old, new = row["old"], row["new"]
        per_epoch = [side["seconds"] / side["epochs"] if side["epochs"] else None for side in (old, new)]
        speed = f"{per_epoch[0]:.1f} → {per_epoch[1]:.1f}" if all(per_epoch) else "—"
        print(
            f"| {row['model']} | {old['epochs']} → {new['epochs']} | {old['seconds']} → {new['seconds']} | {speed} | "
            f"{old['test_mse']:.5f} → {new['test_mse']:.5f} | {old['load_before']} / {new['load_before']} |"
        )
    totals = [sum(row[side]["seconds"] for row in rows) for side in ("old", "new")]
    print(f"\ntotal: {totals[0]:.0f} s → {totals[1]:.0f} s ({totals[0] / totals[1]:.2f}× faster)")


if __name__ == "__main__":
    run_script(main)
