"""The soak's memory slopes: a process restarted by a fault starts small and warms up again, which is not growth."""
from payment_platform_tests.benchmarks.bench_soak import Sample, memory_slopes, pooled_slope_per_hour


def samples(series: list[tuple[float, float, int]]) -> list[Sample]:
    return [Sample(t, 0, None, {"gateway": mb}, {}, None, 0.0, None, {"gateway": [root]}) for t, mb, root in series]


def test_a_flat_process_restarted_midway_is_flat():
    # 100 MB, killed at t=1800, back at 30 MB warming to 100 MB within five minutes, then flat
    series = [(t, 100.0, 1) for t in range(0, 1800, 30)]
    series += [(t, min(100.0, 30.0 + (t - 1800) * 0.5), 2) for t in range(1800, 3600, 30)]
    slopes = memory_slopes(samples(series), warmup_s=600)
    assert abs(slopes["gateway"]) < 0.5


def test_growth_is_found_across_restarts():
    # 36 MB/h (1 MB every 100 s) in both lives of the process
    series = [(t, 50 + t / 100, 1) for t in range(0, 1800, 30)]
    series += [(t, 20 + (t - 1800) / 100, 2) for t in range(1800, 3600, 30)]
    slopes = memory_slopes(samples(series), warmup_s=600, settle_s=0)
    assert abs(slopes["gateway"] - 36.0) < 0.5


def test_pooled_slope_needs_points():
    assert pooled_slope_per_hour([[(0, 1.0)], [(10, 2.0)]]) is None
    assert pooled_slope_per_hour([[(0, 1.0), (3600, 2.0), (7200, 3.0)]]) == 1.0
