"""How OpenMP's wait policy changes training speed, on idle cores and beside busy processes.

    .venv/bin/python benchmarks/wait_policy.py --data-dir ../shared/data/mnist [--models deep conv-unpool]
        [--limit 12800] [--busy 0 1] [--rounds 2]

For each number of busy processes (each a Python loop that never sleeps, started before and stopped after) and each
round, trains each model for one epoch on the first ``--limit`` training digits in a fresh interpreter, once with
``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once) and once spinning as GNU OpenMP does by default
(300,000 turns, then sleep: ``OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=300000``, since aetool would otherwise pick
by the load), alternating, and prints the wall seconds of each run (data loading, the epoch and the
test scores) with the load average before it. ``aetool/__init__.py`` picks between the two by the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from one_line_errors import run_script

from aetool.errors import AetoolError

TRAIN_ONE_EPOCH = """
import sys, time, tempfile
import aetool
from aetool.train import TrainConfig, train
started = time.perf_counter()
with tempfile.TemporaryDirectory() as run:
    config = TrainConfig(sys.argv[1], data_dir=sys.argv[2], epochs=1, limit=int(sys.argv[3]))
    train(config, run_dir=run, force=True, progress=False, echo=lambda line: None)
print(time.perf_counter() - started)
"""
POLICIES = {
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"},  # GNU OpenMP's default spin
}


def timed(model: str, data_dir: str, limit: int, policy: dict[str, str]) -> float:
    """Wall seconds of one epoch's training in a fresh interpreter with the ``policy`` variables."""
    environment = {**os.environ, **policy}
    result = subprocess.run(
        [sys.executable, "-c", TRAIN_ONE_EPOCH, model, data_dir, str(limit)],
        env=environment,
        capture_output=True,
        text=True,
    )
    if result.returncode:  # the child's own last line (its traceback's error), not CalledProcessError's
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise AetoolError(f"training {model} in a fresh interpreter failed: {last}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("AETOOL_DATA_DIR"))
    parser.add_argument("--models", nargs="+", default=["deep", "conv-unpool"])
    parser.add_argument("--limit", type=int, default=12_800)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("--data-dir (or AETOOL_DATA_DIR) names the MNIST folder")
    print("| busy processes | model | load before | " + " | ".join(f"{name} s" for name in POLICIES) + " | ratio |")
    print("|---:|---|---:|" + "---:|" * len(POLICIES) + "---:|")
    for busy in args.busy:
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(2)
            for _ in range(args.rounds):
                for model in args.models:
                    load = os.getloadavg()[0]
                    seconds = [timed(model, args.data_dir, args.limit, policy) for policy in POLICIES.values()]
                    cells = " | ".join(f"{value:.2f}" for value in seconds)
                    print(f"| {busy} | {model} | {load:.2f} | {cells} | {seconds[0] / seconds[1]:.2f} |", flush=True)
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()


if __name__ == "__main__":
    run_script(main)
