"""The soak benchmark's criteria in a few minutes: `up`, a steady producer, each fault once, then every payment
exactly once in both stores, the lag back to normal after every fault, the housekeeping job launched from the UI,
and nothing left running after Ctrl+C under load. Timings (the 90 s, the 10 s, memory slopes) are the benchmark's
to measure: `payment_platform_tests/benchmarks/bench_soak.py`."""
from __future__ import annotations

import pytest

from payment_platform_tests.benchmarks.bench_soak import FAULTS, run_soak
from payment_platform_tests.conftest import stack_data_dir

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1500)
def test_a_short_soak_meets_the_criteria():
    result = run_soak(minutes=7, tps=50, fault_every_s=40, sample_every_s=20, warmup_s=90, prune_every_s=60,
                      keep_runs_hours=0.01, drain_timeout_s=420, data_root=stack_data_dir("payment-platform-soak-"))
    assert result.produced > 0
    assert result.exactly_once, result.criteria()[0]
    assert [r["fault"] for r in result.recoveries] == list(FAULTS)
    assert not any(r["said"].startswith("no ") for r in result.recoveries), result.recoveries
    assert result.all_recovered, result.recoveries
    assert result.pruning_runs
    assert result.leftovers == []
