"""The embedded Kafka broker (Tansu, memory storage) as it fills: produce and fetch rates, and the broker's CPU per
message, after every `--step` messages held, against the same figures on the empty broker (the raw baseline,
measured in the same run).

    .venv/bin/python payment_platform_tests/benchmarks/bench_broker_growth.py [--steps 8] [--step 250000]

Why: in the hour-long soak at 1,200 payments/s (`bench_soak.py`), ingestion fell behind after ~30 minutes with the
broker at 120% CPU and the lease runs idle, waiting on fetches. This isolates the broker: one partition, values of
~1 KB (a payment's size), kafka-python as the platform uses it; nothing of the platform runs. At each step: fill
the partition up to the step, then time producing `--probe` messages (acks=all) and fetching the newest `--probe`
messages, with the broker's CPU seconds for each.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parents[2]
VALUE = (b'{"payment_id": "%08d", "pad": "' + b"x" * 960 + b'"}')


def produce(bootstrap: str, topic: str, count: int, start: int) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                             max_request_size=8 * 1024 * 1024)
    began = time.perf_counter()
    for i in range(start, start + count):
        producer.send(topic, VALUE.replace(b"%08d", b"%08d" % i), partition=0)
    producer.flush()
    seconds = time.perf_counter() - began
    producer.close()
    return seconds


def fetch(bootstrap: str, topic: str, start: int, end: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             max_poll_records=10_000, fetch_max_bytes=32 * 1024 * 1024)
    consumer.assign([tp])
    consumer.seek(tp, start)
    got, began = 0, time.perf_counter()
    while got < end - start:
        got += sum(len(r) for r in consumer.poll(timeout_ms=1000).values())
        if time.perf_counter() - began > 300:
            raise RuntimeError(f"fetched {got} of {end - start} in 300 s")
    seconds = time.perf_counter() - began
    consumer.close()
    return seconds


def measured(broker: psutil.Process, work) -> tuple[float, float]:
    """(seconds, broker CPU seconds) of `work()`."""
    before = broker.cpu_times()
    seconds = work()
    after = broker.cpu_times()
    return seconds, (after.user + after.system) - (before.user + before.system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--step", type=int, default=250_000, help="messages added between measurements")
    parser.add_argument("--probe", type=int, default=20_000, help="messages produced and fetched per measurement")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT))
    from devstack.stack import processes
    from devstack.stack.manager import free_ports
    from devstack.stack.services import kafka_launch
    from payment_platform.stores import kafka as kafka_store

    work = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    (port,) = free_ports(1)
    launch = kafka_launch(work, port)
    server = processes.spawn(launch.command, work / "kafka.log", die_with_parent=True)
    bootstrap, topic = f"127.0.0.1:{port}", "growth"
    try:
        time.sleep(1.0)
        kafka_store.ensure_topic(bootstrap, topic, partitions=1)
        broker = psutil.Process(server.pid)
        held, rows = 0, []
        print(f"Tansu memory broker, one partition, values of {len(VALUE)} bytes; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        for step in range(args.steps + 1):
            if step:
                produce(bootstrap, topic, args.step, held)
                held += args.step
            p_s, p_cpu = measured(broker, lambda h=held: produce(bootstrap, topic, args.probe, h))
            held += args.probe
            f_s, f_cpu = measured(broker, lambda h=held: fetch(bootstrap, topic, h - args.probe, h))
            rss = broker.memory_info().rss / 2**20
            rows.append((held, args.probe / p_s, p_cpu / args.probe * 1e6, args.probe / f_s, f_cpu / args.probe * 1e6,
                         rss))
            base = rows[0]
            print(f"  {held:>9,} held: produce {rows[-1][1]:>8,.0f}/s ({rows[-1][1] / base[1]:.2f}x), broker "
                  f"{rows[-1][2]:6.1f} us/msg ({rows[-1][2] / base[2]:.2f}x); fetch {rows[-1][3]:>8,.0f}/s "
                  f"({rows[-1][3] / base[3]:.2f}x), broker {rows[-1][4]:6.1f} us/msg ({rows[-1][4] / max(base[4], 1e-9):.2f}x); "
                  f"RSS {rss:,.0f} MB", flush=True)
        per_msg = (rows[-1][5] - rows[0][5]) * 1024 / max(1, rows[-1][0] - rows[0][0])
        print(f"memory held per message: {per_msg:.2f} KB; raw baseline: the empty broker, first row")
        return 0
    finally:
        server.send_signal(launch.stop_signal)
        try:
            server.wait(timeout=10)
        except Exception:  # noqa: BLE001
            server.kill()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
