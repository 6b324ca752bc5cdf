"""Redis: idempotency (which payments are already fully landed) and live ingestion metrics.

Redis is an optimisation and a metrics sink, never a store of record: a payment is marked landed only after it is
in both HBase and Postgres or in the backup for the store that failed, and ingestion carries on (counting the
error) when Redis is down. All keys start with `key_prefix` (default `pp`); the names below are stable:

    {p}:landed:{payment_id}              "1", expires after `landed_ttl_s` (REDIS_LANDED_TTL_S, default 15 min)
    {p}:metrics:processed                int: payments settled (written or backed up) by ingestion
    {p}:metrics:duplicates               int: messages skipped because their payment_id had already landed
    {p}:metrics:quarantined              int: messages sent to quarantine
    {p}:metrics:errors                   int: store writes that failed (their payments went to the backup)
    {p}:metrics:backed_up                hash store -> int: payments sent to the backup per store
    {p}:metrics:by_rail                  hash payment_type -> int
    {p}:metrics:by_currency              hash currency -> int
    {p}:metrics:amount_by_currency       hash currency -> float sum of amounts (a live gauge, not accounting)
    {p}:metrics:processing_ms_total      float: total processing time, for the average per payment
    {p}:metrics:last_processing_ms       float: processing time per payment in the latest chunk
    {p}:metrics:last_processed_at        float: unix time of the latest chunk
    {p}:rate:{unix_second}               int: payments settled in that second (expire after 10 min): the rate window

The landed window only has to outlive the moment a range can be read again (a retried or re-planned run, a
publisher's retry): ingestion lets the stores decide anyway (Postgres' primary key refuses a duplicate, an
HBase put of the same row is the same row), so an id that expired costs nothing but a duplicate not counted.
Each landed id costs ~130 bytes of Redis memory (~160 bytes of its RSS): ~70 MB at 500 payments/s with the
default 15 minutes, where the former 7 days would have needed ~55 GB.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

import redis

DEFAULT_PREFIX = "pp"
LANDED_TTL_S = 900  # config.DEFAULT_REDIS_LANDED_TTL_S
RATE_BUCKET_TTL_S = 600
_MARK_LANDED_LUA = """
local marked = 0
for _, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) then marked = marked + 1 end
end
return marked
"""


@dataclass
class ChunkMetrics:
    """What one chunk of a range did, to add to the live metrics."""

    processed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    errors: int = 0
    seconds: float = 0.0
    backed_up: Counter = field(default_factory=Counter)
    by_rail: Counter = field(default_factory=Counter)
    by_currency: Counter = field(default_factory=Counter)
    amount_by_currency: dict[str, Decimal] = field(default_factory=dict)


class RedisState:
    def __init__(self, url: str, key_prefix: str = DEFAULT_PREFIX, timeout_s: float = 2.0,
                 landed_ttl_s: int = LANDED_TTL_S):
        self.url = url
        self.prefix = key_prefix
        self.timeout_s = timeout_s
        self.landed_ttl_s = landed_ttl_s
        self._client: redis.Redis | None = None
        self._mark_script = None
        self._mark_script_ok = True  # False once the server refused the script (a cluster): pipelines instead

    def __repr__(self) -> str:
        return f"RedisState(prefix={self.prefix!r})"

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=self.timeout_s,
                                                socket_connect_timeout=self.timeout_s, decode_responses=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._mark_script = None

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def ensure_schema(self) -> None:
        """Nothing to create in Redis (keys appear on first write); checks the server answers."""
        self.client().ping()

    def health(self) -> dict:
        """Raises redis.RedisError (ConnectionError, TimeoutError) unless PING answers within the timeout."""
        client = self.client()
        client.ping()
        return {"redis_version": client.info("server").get("redis_version")}

    # -- idempotency -----------------------------------------------------------------------------------
    def landed_ids(self, payment_ids: Iterable[str]) -> set[str]:
        ids = list(payment_ids)
        if not ids:
            return set()
        values = self.client().mget([self.key("landed", i) for i in ids])
        return {i for i, v in zip(ids, values) if v is not None}

    def mark_landed(self, payment_ids: Iterable[str]) -> int:
        """Mark payments as settled in every store; returns how many were not marked before.

        One script call per chunk (`SET key 1 NX EX ttl` for each id, server-side): a pipeline of 2,000 SETs cost
        the ingesting process ~15 us per payment to pack and parse. Where the server refuses the script (a Redis
        Cluster: CROSSSLOT; scripting disabled), the same SETs go as a pipeline.
        """
        ids = list(payment_ids)
        if not ids:
            return 0
        keys = [self.key("landed", i) for i in ids]
        if self._mark_script_ok:
            if self._mark_script is None:
                self._mark_script = self.client().register_script(_MARK_LANDED_LUA)
            try:
                return int(self._mark_script(keys=keys, args=[self.landed_ttl_s]))
            except redis.ResponseError as error:
                if "CROSSSLOT" not in str(error) and "unknown command" not in str(error).lower():
                    raise  # scripting disabled (unknown command) or a cluster: fall back; anything else is an error
                self._mark_script_ok = False
        pipe = self.client().pipeline(transaction=False)
        for key in keys:
            pipe.set(key, b"1", nx=True, ex=self.landed_ttl_s)
        return sum(1 for ok in pipe.execute() if ok)

    def forget_landed(self, payment_ids: Iterable[str]) -> None:
        ids = list(payment_ids)
        if ids:
            self.client().delete(*[self.key("landed", i) for i in ids])

    # -- metrics ---------------------------------------------------------------------------------------
    def record_chunk(self, m: ChunkMetrics, now: float | None = None) -> None:
        now = time.time() if now is None else now
        pipe = self.client().pipeline(transaction=False)
        metric = lambda name: self.key("metrics", name)  # noqa: E731
        for name, value in (("processed", m.processed), ("duplicates", m.duplicates),
                            ("quarantined", m.quarantined), ("errors", m.errors)):
            if value:
                pipe.incrby(metric(name), value)
        for name, counts in (("backed_up", m.backed_up), ("by_rail", m.by_rail), ("by_currency", m.by_currency)):
            for member, value in counts.items():
                if value:
                    pipe.hincrby(metric(name), member, value)
        for currency, total in m.amount_by_currency.items():
            pipe.hincrbyfloat(metric("amount_by_currency"), currency, float(total))
        settled = m.processed
        if settled:
            ms = m.seconds * 1000.0
            pipe.incrbyfloat(metric("processing_ms_total"), ms)
            pipe.set(metric("last_processing_ms"), ms / settled)
            bucket = self.key("rate", str(int(now)))
            pipe.incrby(bucket, settled)
            pipe.expire(bucket, RATE_BUCKET_TTL_S)
        pipe.set(metric("last_processed_at"), now)
        pipe.execute()

    def rate(self, window_s: int = 60, now: float | None = None) -> float:
        """Payments settled per second over the last `window_s` seconds."""
        now = int(time.time() if now is None else now)
        values = self.client().mget([self.key("rate", str(s)) for s in range(now - window_s + 1, now + 1)])
        return sum(int(v) for v in values if v) / float(window_s)

    def metrics(self) -> dict:
        """A snapshot of the live metrics (numbers decoded), plus the current rate and average time."""
        client = self.client()
        metric = lambda name: self.key("metrics", name)  # noqa: E731
        pipe = client.pipeline(transaction=False)
        scalars = ("processed", "duplicates", "quarantined", "errors", "processing_ms_total",
                   "last_processing_ms", "last_processed_at")
        for name in scalars:
            pipe.get(metric(name))
        hashes = ("backed_up", "by_rail", "by_currency", "amount_by_currency")
        for name in hashes:
            pipe.hgetall(metric(name))
        values = pipe.execute()
        out: dict = {}
        for name, value in zip(scalars, values[:len(scalars)]):
            out[name] = float(value) if value is not None else 0.0
        for name in ("processed", "duplicates", "quarantined", "errors"):
            out[name] = int(out[name])
        for name, value in zip(hashes, values[len(scalars):]):
            out[name] = {k.decode(): (float(v) if name == "amount_by_currency" else int(v)) for k, v in value.items()}
        out["avg_processing_ms"] = out["processing_ms_total"] / out["processed"] if out["processed"] else None
        out["rate_per_s_60s"] = self.rate(60)
        return out
