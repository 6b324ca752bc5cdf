"""`payment-platform generate` and `produce` as a person runs them: real processes, the real broker."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from payment_platform.generation.generator import generate
from payment_platform.generation.settings import GenerationSettings
from payment_platform.stores import kafka
from payment_platform_tests.waiting import wait_until

CLI = [sys.executable, "-m", "payment_platform.cli"]


def run(args, env=None, timeout=120):
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env)


def read_topic(bootstrap: str, topic: str) -> list:
    messages = []
    for partition, end in kafka.end_offsets(bootstrap, topic).items():
        for chunk in kafka.read_range(bootstrap, topic, partition, 0, end):
            messages.extend(chunk)
    return messages


def test_generate_writes_json_lines_identical_across_processes_and_to_the_api(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    cache = tmp_path / "cache"  # empty: the first process builds the party pool, the second loads it
    result = run(["generate", "--count", "3000", "--seed", "42", "--bad-fraction", "0.02", "--output", str(first)],
                 env={**os.environ, "PYTHONHASHSEED": "1", "PAYMENT_PLATFORM_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["generated"] == 3000
    assert len(list(cache.glob("party-pool-*.pickle"))) == 1
    run(["generate", "--count", "3000", "--seed", "42", "--bad-fraction", "0.02", "--output", str(second)],
        env={**os.environ, "PYTHONHASHSEED": "2", "PAYMENT_PLATFORM_CACHE_DIR": str(cache)})
    assert first.read_bytes() == second.read_bytes()  # byte-identical, cold or warm, whatever the hash seed
    expected = b"".join(m.value + b"\n" for m in generate(3000, 42, GenerationSettings(bad_fraction=0.02)))
    assert first.read_bytes() == expected


def test_generate_labels_list_exactly_the_bad_records(tmp_path):
    out, labels = tmp_path / "p.jsonl", tmp_path / "labels.csv"
    result = run(["generate", "--count", "1000", "--seed", "8", "--bad-fraction", "0.05", "--output", str(out),
                  "--labels", str(labels)])
    assert result.returncode == 0, result.stderr
    expected = [(n, m.payment_id, m.defect) for n, m in
                enumerate(generate(1000, 8, GenerationSettings(bad_fraction=0.05)), start=1) if m.defect]
    rows = [line.split(",") for line in labels.read_text().splitlines()]
    assert rows[0] == ["line", "payment_id", "defect"]
    assert [(int(n), pid, defect) for n, pid, defect in rows[1:]] == expected and expected
    lines = out.read_bytes().split(b"\n")
    assert all(pid.encode() in lines[n - 1] for n, pid, _ in expected)


def test_an_unwritable_labels_file_leaves_no_output_behind(tmp_path):
    out = tmp_path / "p.jsonl"
    result = run(["generate", "--count", "10", "--output", str(out), "--labels", "/nonexistent-dir/l.csv"])
    assert result.returncode == 2 and "error: --labels" in result.stderr
    assert not out.exists()


def test_generate_rails_filter(tmp_path):
    out = tmp_path / "sepa.jsonl"
    assert run(["generate", "--count", "200", "--rails", "sepa,ach", "--output", str(out)]).returncode == 0
    assert {json.loads(line)["payment_type"] for line in out.read_text().splitlines()} == {"SEPA", "ACH"}


@pytest.mark.parametrize("args, option", [
    (["generate", "--count", "0", "--output", "x"], "--count"),
    (["generate", "--count", "-5", "--output", "x"], "--count"),
    (["generate", "--count", "5", "--output", "/nonexistent-dir/x.jsonl"], "--output"),
    (["generate", "--count", "5"], "--output"),
    (["generate", "--count", "5", "--output", "x", "--rails", "ACH,SWIFT"], "--rails"),
    (["generate", "--count", "5", "--output", "x", "--key-strategy", "random"], "--key-strategy"),
    (["generate", "--count", "5", "--output", "x", "--bad-fraction", "1.5"], "--bad-fraction"),
    (["produce", "--tps", "0"], "--tps"),
    (["produce", "--tps", "-3"], "--tps"),
    (["produce", "--tps", "10", "--key-strategy", "random"], "--key-strategy"),
])
def test_bad_input_is_one_line_naming_the_option_and_exit_2(args, option, tmp_path):
    result = subprocess.run(CLI + args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"error: {option}" in lines[0]
    assert not (tmp_path / "x").exists()


def test_unreachable_kafka_says_how_many_were_acknowledged():
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "PAYMENTS_TOPIC": "t"}
    started = time.monotonic()
    result = run(["generate", "--count", "10", "--publish"], env=env)
    assert result.returncode == 1
    assert "0 payments acknowledged" in result.stderr and "unreachable" in result.stderr
    assert time.monotonic() - started < 60


@pytest.mark.stack
def test_generate_publish_sends_exactly_the_generated_payments_with_labels(stack):
    topic = f"test-gen-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **stack.env(), "PAYMENTS_TOPIC": topic}
    result = run(["generate", "--count", "1500", "--seed", "5", "--bad-fraction", "0.05", "--publish"], env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["published"] == 1500 and summary["topic"] == topic
    expected = {m.value: m for m in generate(1500, 5, GenerationSettings(bad_fraction=0.05))}
    received = read_topic(stack.endpoints.kafka, topic)
    assert sorted(m.value for m in received) == sorted(m.value for m in expected.values())
    for message in received:
        sent = expected[message.value]
        assert message.key == sent.key and message.headers == sent.headers


@pytest.mark.stack
def test_produce_streams_at_the_rate_and_stops_cleanly_on_ctrl_c(stack):
    topic = f"test-produce-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **stack.env(), "PAYMENTS_TOPIC": topic}
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    process = subprocess.Popen(CLI + ["produce", "--tps", "200", "--key-strategy", "originator"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(c) for c in iter(lambda: os.read(
        process.stderr.fileno(), 4096), b"")], daemon=True)
    reader.start()
    try:
        # the live rate line; start-up (imports, party pool) is slow on a busy machine
        wait_until(lambda: b"rate" in seen, 90, "the live rate line", every_s=0.2, detail=seen.decode,
                   give_up=lambda: process.poll() is not None and f"produce exited with {process.returncode}")
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = seen.decode()
    assert process.returncode == 0, stderr
    assert "/s (target 200/s)" in stderr
    final = stderr.strip().splitlines()[-1]
    acknowledged = int(final.split(":")[1].split("acknowledged")[0].split()[-1].replace(",", ""))
    failed = int(final.split("acknowledged,")[1].split("failed")[0].replace(",", ""))
    assert acknowledged > 100
    received = read_topic(stack.endpoints.kafka, topic)
    payments = {json.loads(m.value)["payment_id"] for m in received}
    # Every payment it calls acknowledged is on the topic, and nothing it did not send. Kafka without an idempotent
    # producer is at-least-once: a send retried after a lost reply may be written twice (ingestion keeps one, by
    # payment id), and a send it counted failed may have reached the broker after all (a busy CI machine did both).
    assert acknowledged <= len(payments) <= acknowledged + failed, (final, len(received), len(payments))
    assert len(received) - len(payments) <= 5  # a retry's copy now and then, not a stream of them
    assert all(m.key.startswith(b"PTY-") for m in received)
    stamps = sorted(json.loads(m.value)["created_at"] for m in received)
    assert started_at <= stamps[0] and stamps[-1][:19] <= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())  # live


@pytest.mark.stack
def test_produce_with_a_count_stops_by_itself(stack):
    topic = f"test-produce-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **stack.env(), "PAYMENTS_TOPIC": topic}
    result = run(["produce", "--tps", "2000", "--count", "300", "--key-strategy", "none"], env=env)
    assert result.returncode == 0, result.stderr
    assert "300 acknowledged" in result.stderr
    assert len(read_topic(stack.endpoints.kafka, topic)) == 300
