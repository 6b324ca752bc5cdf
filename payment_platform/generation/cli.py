"""`payment-platform generate` (a batch to a JSON-lines file, or to Kafka with --publish) and
`payment-platform produce` (a continuous stream to Kafka at a target rate)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from payment_platform.config import endpoints_from_env, parse_bootstrap_servers
from payment_platform.domain.schema import RAILS
from payment_platform.errors import UsageError
from payment_platform.generation.generator import generate
from payment_platform.generation.settings import DEFAULT_START, KEY_STRATEGIES, GenerationSettings


def register(subparsers) -> None:
    """Adds `generate` and `produce`; each sets `func=handler` where handler(args) -> exit status."""
    gen = subparsers.add_parser("generate", help="generate realistic B2B payments (JSON lines, or Kafka with --publish)",
                                description="Generate realistic B2B payments. The same --count, --seed and options "
                                            "always give byte-identical output.")
    gen.add_argument("--count", type=int, required=True, help="number of payments")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gen.add_argument("--output", help="JSON-lines file to write ('-' for standard output)")
    gen.add_argument("--publish", action="store_true", help="send to Kafka (KAFKA_BOOTSTRAP_SERVERS, PAYMENTS_TOPIC)")
    gen.add_argument("--labels", help="CSV file listing the deliberately bad records: line,payment_id,defect "
                                      "(with --output; on Kafka the label travels as header `defect`)")
    _common_options(gen)
    gen.set_defaults(func=run_generate)

    prod = subparsers.add_parser("produce", help="stream payments to Kafka continuously at --tps (Ctrl+C stops)",
                                 description="Stream payments to Kafka at a target rate with a live rate line; "
                                             "Ctrl+C flushes and reports how many were acknowledged.")
    prod.add_argument("--tps", type=float, required=True, help="target payments per second")
    prod.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    prod.add_argument("--count", type=int, default=None, help="stop after this many payments (default: run until Ctrl+C)")
    _common_options(prod)
    prod.set_defaults(func=run_produce)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bad-fraction", type=float, default=GenerationSettings.bad_fraction,
                        help="share of deliberately bad, labelled records (default 0)")
    parser.add_argument("--rails", default=None,
                        help=f"comma-separated rails to generate (default all: {','.join(RAILS)})")
    parser.add_argument("--key-strategy", default=GenerationSettings.key_strategy,
                        help=f"Kafka message key: {', '.join(KEY_STRATEGIES)} (default payment_id)")
    parser.add_argument("--start", default=None,
                        help=f"ISO 8601 timestamp anchor of the first payment (default {DEFAULT_START.isoformat()} "
                             f"for generate; produce stamps the wall clock unless --start is given)")
    parser.add_argument("--bootstrap-servers", default=None, help="Kafka bootstrap servers (overrides the environment)")
    parser.add_argument("--topic", default=None, help="Kafka topic (overrides PAYMENTS_TOPIC)")


def settings_from_args(args, start_default: datetime = DEFAULT_START, **extra) -> GenerationSettings:
    rails = GenerationSettings.rails
    if args.rails is not None:
        rails = tuple(r.strip().upper() for r in args.rails.split(",") if r.strip())
    start = start_default
    if args.start is not None:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--start: not an ISO 8601 timestamp: {args.start!r}") from None
        if start.tzinfo is None:
            raise UsageError(f"--start: needs a time zone (e.g. 2026-11-02T13:00:00Z), got {args.start!r}")
    return GenerationSettings(bad_fraction=args.bad_fraction, rails=rails, start=start,
                              key_strategy=args.key_strategy.strip().lower(), **extra)


def kafka_target(args) -> tuple[str, str]:
    endpoints = endpoints_from_env()
    bootstrap = parse_bootstrap_servers(args.bootstrap_servers, "--bootstrap-servers") if args.bootstrap_servers \
        else endpoints.kafka
    if not bootstrap:
        raise UsageError("--bootstrap-servers: Kafka is not configured (set KAFKA_BOOTSTRAP_SERVERS or pass "
                         "--bootstrap-servers)")
    topic = args.topic or endpoints.topic
    return bootstrap, topic


def run_generate(args) -> int:
    if args.count <= 0:
        raise UsageError(f"--count: must be a positive number of payments, got {args.count}")
    if args.output and args.publish:
        raise UsageError("--output: give either --output FILE or --publish, not both")
    if not args.output and not args.publish:
        raise UsageError("--output: required (a file, or '-' for standard output) unless --publish is given")
    if args.labels and args.publish:
        raise UsageError("--labels: only with --output (on Kafka the label travels as the message header `defect`)")
    settings = settings_from_args(args)
    if args.publish:
        return _publish_batch(args, settings)
    return _write_file(args, settings)


def _open_for_writing(option: str, path: str):
    try:
        return open(Path(path), "wb", buffering=1 << 20)
    except OSError as error:
        raise UsageError(f"{option}: cannot write {path}: {error.strerror or error}") from None


def _write_file(args, settings: GenerationSettings) -> int:
    to_stdout = args.output == "-"
    out = sys.stdout.buffer if to_stdout else _open_for_writing("--output", args.output)
    try:
        labels = _open_for_writing("--labels", args.labels) if args.labels else None
    except UsageError:
        if not to_stdout:  # leave nothing half-made behind
            out.close()
            os.unlink(args.output)
        raise
    started = time.perf_counter()
    count = bad = 0
    try:
        write = out.write
        if labels:
            labels.write(b"line,payment_id,defect\n")
        for message in generate(args.count, args.seed, settings):
            write(message.value)
            write(b"\n")
            count += 1
            if message.defect is not None:
                bad += 1
                if labels:
                    labels.write(f"{count},{message.payment_id},{message.defect}\n".encode())
    finally:
        if labels:
            labels.close()
        if not to_stdout:
            out.close()
        else:
            out.flush()
    seconds = time.perf_counter() - started
    summary = {"generated": count, "bad": bad, "seed": args.seed, "output": args.output, "labels": args.labels,
               "seconds": round(seconds, 3), "rate_per_s": round(count / seconds) if seconds else None}
    print(json.dumps(summary), file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _publish_batch(args, settings: GenerationSettings) -> int:
    from payment_platform.stores.kafka import KafkaUnavailable, PublishError, Publisher, ensure_topic

    bootstrap, topic = kafka_target(args)
    try:
        with Publisher(bootstrap, topic) as publisher:  # connects with bounded retries
            ensure_topic(bootstrap, topic)
            result = publisher.publish(generate(args.count, args.seed, settings))
    except (PublishError, KafkaUnavailable) as error:
        acknowledged = getattr(error, "acknowledged", 0)
        print(f"payment-platform generate: error: {error}" + ("" if "acknowledged" in str(error) else
              f"; {acknowledged} payments acknowledged"), file=sys.stderr)
        return 1
    print(json.dumps({"generated": args.count, "published": result.acknowledged, "topic": topic,
                      "offsets": {str(p): list(span) for p, span in sorted(result.offsets.items())},
                      "seconds": round(result.seconds, 3), "rate_per_s": round(result.rate)}))
    return 0


def run_produce(args) -> int:
    from payment_platform.stores.kafka import KafkaUnavailable, PublishError, Publisher, ensure_topic

    if not args.tps > 0:
        raise UsageError(f"--tps: must be a positive rate, got {args.tps}")
    if args.count is not None and args.count <= 0:
        raise UsageError(f"--count: must be a positive number of payments, got {args.count}")
    # A live stream is stamped with the wall clock, unless --start asks for reproducible simulated time.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    settings = settings_from_args(args, start_default=now, peak_rate_per_s=args.tps, live_clock=args.start is None)
    bootstrap, topic = kafka_target(args)
    limit = args.count if args.count is not None else sys.maxsize
    publisher = None
    try:
        publisher = Publisher(bootstrap, topic)  # connects with bounded retries
        ensure_topic(bootstrap, topic)
        _stream(publisher, generate(limit, args.seed, settings), args.tps)
        publisher.flush()
    except KeyboardInterrupt:
        print("\nstopping: flushing what was sent...", file=sys.stderr)
        if publisher is not None:
            try:
                publisher.flush()
            except PublishError as error:
                print(f"payment-platform produce: error: {error}", file=sys.stderr)
                return 1
    except (PublishError, KafkaUnavailable) as error:
        print(f"\npayment-platform produce: error: {error}" + ("" if "acknowledged" in str(error)
              else f"; {publisher.result.acknowledged if publisher else 0} payments acknowledged"), file=sys.stderr)
        return 1
    finally:
        if publisher is not None:
            publisher.close()
    if publisher is None:
        return 130
    r = publisher.result
    print(f"\nproduced {r.sent} payments to {topic}: {r.acknowledged} acknowledged, {r.failed} failed", file=sys.stderr)
    return 0


def _stream(publisher, messages, tps: float) -> None:
    """Sends at `tps`, pacing in small slices, and redraws one status line every second."""
    started = last_line = time.monotonic()
    sent = 0
    for message in messages:
        publisher.send(message)
        sent += 1
        due = started + sent / tps
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            now = due
        if now - last_line >= 1.0:
            last_line = now
            r = publisher.result
            rate = r.acknowledged / (now - started)
            print(f"\rsent {r.sent:,}  acknowledged {r.acknowledged:,}  failed {r.failed:,}  "
                  f"rate {rate:,.0f}/s (target {tps:,.0f}/s)   ", end="", file=sys.stderr, flush=True)
