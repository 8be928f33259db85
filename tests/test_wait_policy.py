"""The OpenMP wait policy aetool picks for PyTorch's threads when the user sets none."""

from __future__ import annotations

import os
import subprocess
import sys

from aetool import BUSY_LOAD, omp_wait_policy


def test_waiting_threads_sleep_at_once_on_a_busy_or_unknown_machine_and_spin_on_an_idle_one():
    assert omp_wait_policy(BUSY_LOAD) == "PASSIVE" and omp_wait_policy(3.7) == "PASSIVE"
    assert omp_wait_policy(None) == "PASSIVE"
    assert omp_wait_policy(0.0) is None and omp_wait_policy(BUSY_LOAD - 0.01) is None


def test_a_policy_the_user_sets_wins():
    environment = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    code = "import os, aetool; print(os.environ['OMP_WAIT_POLICY'])"
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "ACTIVE"
