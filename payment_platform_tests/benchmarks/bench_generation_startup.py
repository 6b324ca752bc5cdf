"""Benchmark of generation start-up: `payment-platform generate --count 1` cold (no pool cache) and warm (the
party pool loaded from the disk cache), and the CLI's throughput including start-up against Faker.

    .venv/bin/python payment_platform_tests/benchmarks/bench_generation_startup.py [--rounds 5] [--count 20000]
        [--faker-count 3000]

Prints, measured in the same run (each figure the best of --rounds fresh processes):
- the raw baseline: a bare `python -c "import payment_platform"` process (interpreter + package start);
- `generate --count 1` with an empty cache folder (cold: the pool is built and cached) and with the cache
  filled (warm), as whole-process wall time and as the generator's own time to its first payment
  (the `seconds` it reports); the warm figure's excess over the baseline is the start-up the cache leaves;
- `generate --count N --output FILE` whole-process throughput (warm cache) against Faker field by field
  (bench_generation.faker_rate), and the ratio. Target (issue 11 item 7): start-up under 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_generation import faker_rate, pin_to_one_core  # noqa: E402


def timed_process(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def generate_command(count: int, output: str) -> list[str]:
    return [sys.executable, "-m", "payment_platform.cli", "generate", "--count", str(count), "--output", output]


def reported_seconds(stdout: str) -> float:
    return json.loads(stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cold-rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--faker-count", type=int, default=3_000)
    args = parser.parse_args()
    pin_to_one_core()

    base_env = {**os.environ}
    baseline = min(timed_process([sys.executable, "-c", "import payment_platform"], base_env)[0]
                   for _ in range(args.rounds))
    print(f"baseline `python -c 'import payment_platform'`: {baseline:.3f} s (best of {args.rounds})")

    cold, cold_inner = [], []
    for _ in range(args.cold_rounds):
        with tempfile.TemporaryDirectory() as empty:
            seconds, out = timed_process(generate_command(1, os.devnull),
                                         {**base_env, "PAYMENT_PLATFORM_CACHE_DIR": empty})
            cold.append(seconds)
            cold_inner.append(reported_seconds(out))
    print(f"cold `generate --count 1` (empty cache): {min(cold):.3f} s process, {min(cold_inner):.3f} s to the "
          f"first payment; {min(cold) / baseline:.1f}x the baseline")

    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out_dir:
        env = {**base_env, "PAYMENT_PLATFORM_CACHE_DIR": cache}
        timed_process(generate_command(1, os.devnull), env)  # fills the cache
        warm, warm_inner = [], []
        for _ in range(args.rounds):
            seconds, out = timed_process(generate_command(1, os.devnull), env)
            warm.append(seconds)
            warm_inner.append(reported_seconds(out))
        best = min(warm)
        print(f"warm `generate --count 1` (pool from the cache): {best:.3f} s process, {min(warm_inner):.3f} s to "
              f"the first payment; {best / baseline:.1f}x the baseline, start-up beyond the baseline "
              f"{best - baseline:.3f} s (target < 0.5 s); cold/warm {min(cold) / best:.1f}x")

        output = os.path.join(out_dir, "p.jsonl")
        cli_runs, raw_runs = [], []
        for _ in range(max(1, args.rounds // 2)):  # alternate, so load from other processes hits both alike
            seconds, _ = timed_process(generate_command(args.count, output), env)
            cli_runs.append(args.count / seconds)
            raw_runs.append(faker_rate(args.faker_count))
        cli, raw = max(cli_runs), max(raw_runs)
        print(f"CLI `generate --count {args.count:,} --output FILE`, whole process incl. start-up (warm): "
              f"{cli:,.0f} payments/s")
        print(f"Faker field by field (raw baseline, same run): {raw:,.0f} payments/s; ratio {cli / raw:.1f}x")


if __name__ == "__main__":
    main()
