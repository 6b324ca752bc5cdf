"""Benchmark of payment generation: in-memory rate on one core against Faker field by field, and memory.

    .venv/bin/python payment_platform_tests/benchmarks/bench_generation.py [--count 200000] [--faker-count 5000]
        [--rounds 3] [--rss-small 100000] [--rss-large 1000000]

Prints, measured in the same run:
- the one-off cost of building the party pool (excluded from the rate: it happens once per process);
- `generate()` in memory (messages consumed, not kept) in payments/s, single process, pinned to one core,
  best of --rounds rounds alternating with the baseline;
- the raw baseline: the same kind of payment built field by field with Faker and `json.dumps` (the
  straightforward approach), in payments/s, and the ratio;
- peak RSS of `payment-platform generate --output FILE` for --rss-small and --rss-large payments: memory stays
  flat as N grows because the output streams.
Targets: >= 50,000 payments/s, ratio >= 25x, RSS(large) within a few MB of RSS(small).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

from payment_platform.generation.generator import generate
from payment_platform.generation.parties import build_pool
from payment_platform.generation.settings import GenerationSettings


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def generation_rate(count: int, seed: int) -> float:
    started = time.perf_counter()
    size = 0
    for message in generate(count, seed):
        size += len(message.value)
    seconds = time.perf_counter() - started
    return count / seconds


def faker_rate(count: int) -> float:
    """Payments built field by field with Faker, as a straightforward generator does, serialised with json.dumps."""
    from faker import Faker

    fake = Faker()
    Faker.seed(1)
    rails = ["ACH", "WIRE", "RTP", "SEPA", "CARD", "DIRECT_DEBIT", "CHECK"]
    started = time.perf_counter()
    for _ in range(count):
        doc = {
            "schema_version": 1,
            "payment_id": fake.uuid4(),
            "payment_type": fake.random_element(rails),
            "amount": {"value": str(Decimal(str(fake.pyfloat(min_value=1, max_value=100000, right_digits=2)))
                                    .quantize(Decimal("0.01"))), "currency": fake.currency_code()},
            "originator": {"party_id": f"PTY-{fake.random_int(1, 999999):06d}", "name": fake.company(),
                           "country": fake.country_code(), "iban": fake.iban(), "bic": fake.swift()},
            "beneficiary": {"party_id": f"PTY-{fake.random_int(1, 999999):06d}", "name": fake.company(),
                            "country": fake.country_code(), "account_number": fake.bban(),
                            "routing_number": fake.aba()},
            "created_at": fake.date_time_this_year().isoformat() + "Z",
            "value_date": fake.date_this_year().isoformat(),
            "status": fake.random_element(["ACSC", "ACSP", "RJCT", "PDNG"]),
            "reference": fake.bothify("E2E############"),
            "remittance_info": f"Invoice {fake.bothify('INV-#####')}",
        }
        json.dumps(doc, separators=(",", ":")).encode()
    return count / (time.perf_counter() - started)


def peak_rss_mb(count: int) -> float:
    """Peak RSS of the real CLI writing `count` payments to a file (a separate process per size)."""
    script = (
        "import resource, sys; from payment_platform.cli import main; "
        f"rc = main(['generate', '--count', '{count}', '--seed', '1', '--output', sys.argv[1]]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)"
    )
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-c", script, os.path.join(folder, "p.jsonl")],
                             capture_output=True, text=True, check=True)
        size_mb = os.path.getsize(os.path.join(folder, "p.jsonl")) / 1e6
    kb = int(out.stderr.strip().splitlines()[-1])
    print(f"  {count:>9,} payments -> {size_mb:,.0f} MB file, peak RSS {kb / 1024:,.1f} MB")
    return kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--faker-count", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rss-small", type=int, default=100_000)
    parser.add_argument("--rss-large", type=int, default=1_000_000)
    args = parser.parse_args()
    pin_to_one_core()

    started = time.perf_counter()
    settings = GenerationSettings()
    build_pool(settings.pool_seed, settings.parties)
    print(f"party pool ({settings.parties:,} parties, validated identifiers): built once in "
          f"{time.perf_counter() - started:.2f}s")
    list(generate(2000, random.randrange(1000)))  # warm-up

    ours_runs, raw_runs = [], []
    for round_ in range(args.rounds):  # alternate, so load from other processes hits both alike
        ours_runs.append(generation_rate(args.count, round_ + 1))
        raw_runs.append(faker_rate(args.faker_count))
        print(f"  round {round_ + 1}: generate() {ours_runs[-1]:,.0f}/s, Faker {raw_runs[-1]:,.0f}/s")
    ours, raw = max(ours_runs), max(raw_runs)
    print(f"generate() in memory, one core: {ours:,.0f} payments/s (target >= 50,000)")
    print(f"Faker field by field (raw baseline, same run): {raw:,.0f} payments/s")
    print(f"ratio: {ours / raw:,.1f}x (target >= 25x)")

    print("memory of `payment-platform generate --output FILE`:")
    small = peak_rss_mb(args.rss_small)
    large = peak_rss_mb(args.rss_large)
    print(f"RSS growth from {args.rss_small:,} to {args.rss_large:,} payments: {large - small:+.1f} MB "
          f"(ratio {large / small:.2f}; flat means the output streams)")


if __name__ == "__main__":
    main()
