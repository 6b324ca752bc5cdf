"""Soak: `payment-platform up` as an operator runs it, a steady producer, a fault every few minutes, sampled from
outside; at the end every payment exactly once in both stores. Prints its pass criteria.

    .venv/bin/python payment_platform_tests/benchmarks/bench_soak.py --minutes 60 --tps 250

Faults, in turn (every --fault-every seconds): SIGKILL of the Dagster daemon, of the code server, of a run worker
mid-write, of the HBase gateway (restarted by `payment-platform stack restart hbase` 10 s later, as an operator
would); SIGSTOP of every Postgres process for 20 s. Sampled every --sample-every seconds: Kafka lag (end offsets
minus recorded progress), freshness (now minus the newest landed payment's created_at), each process's memory (PSS) and
open files, the Dagster database's size, the compute logs' size. Ingestion is driven only through `up`, `produce`
and the stores, never through Dagster's runs, so a change of the run design does not change this benchmark.

Pass criteria: nothing lost or duplicated (Postgres and HBase hold exactly the produced payment ids, the backup
is empty); lag back to normal within 90 s of each fault; memory growth < 20 MB/h after warm-up for every process;
Dagster storage flat with pruning on (growth < 1 MB/h after the first pruning); `up` gone within 10 s of Ctrl+C
under load, nothing it started left behind.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parents[2]
FAULTS = ("daemon", "code_server", "run_worker", "hbase_gateway", "postgres_stop")
MEMORY_LIMIT_MB_H = 20.0
RESTART_SETTLE_S = 300.0  # a restarted process's own warm-up, left out of its memory slope
STORAGE_LIMIT_MB_H = 1.0
RECOVERY_LIMIT_S = 90.0
STOP_LIMIT_S = 10.0
GRAPHQL_LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


# ---------------------------------------------------------------- processes of `up`, by role
def role_of(cmdline: list[str]) -> str | None:
    text = " ".join(cmdline)
    if "resource_tracker" in text:  # multiprocessing's helper beside the run workers, not one of them
        return "mp_tracker"
    for needle, role in (("tansu", "kafka"), ("redis-server", "redis"), ("nx-27017", "mongo"),
                         ("hbase-gateway", "hbase_gateway"), ("devstack.hbase_gateway", "hbase_gateway"),
                         ("stack.reaper", "reaper"),
                         ("dagster_webserver", "webserver"), ("dagster._daemon", "daemon"),
                         ("code-server start", "code_server"), ("api grpc", "grpc_server"),
                         ("execute_run", "run_worker"), ("payment-platform api", "rest_api"),
                         ("dagster dev", "dagster_dev"), ("multiprocessing", "run_worker")):
        if needle in text:
            return role
    if cmdline and ("postgres" in cmdline[0] or text.startswith("postgres:")):
        return "postgres"
    return None


def processes_of(root_pid: int, data_dir: Path | None = None) -> dict[str, list[psutil.Process]]:
    """`up`'s process tree by role, plus (given its data dir) the services started outside the tree: a gateway
    restarted by `stack restart` is the child of that command, not of `up`, and is `up`'s all the same."""
    found: dict[str, list[psutil.Process]] = {}
    try:
        procs = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    if data_dir is not None:
        known = {root_pid, *(proc.pid for proc in procs)}
        for proc in psutil.process_iter():
            try:
                if proc.pid not in known and str(data_dir) in " ".join(proc.cmdline()):
                    outside = [proc, *proc.children(recursive=True)]
                    procs += [p for p in outside if p.pid not in known]
                    known.update(p.pid for p in outside)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    for proc in procs:
        try:
            role = role_of(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if role:
            found.setdefault(role, []).append(proc)
    return found


def usage(procs: list[psutil.Process]) -> tuple[float, int]:
    """Memory (PSS) in MB and open files, summed over the processes of one role. PSS, not RSS: Postgres' backends
    share its buffer pool, and a sum of their RSS counts every shared page once per backend that touched it (so
    it grows as backends come and touch the pool, though nothing more is held); PSS splits each shared page
    between the processes that map it, so the sum is what the role really holds."""
    pss, files = 0.0, 0
    for proc in procs:
        try:
            pss += proc.memory_full_info().pss / 1e6
            files += proc.num_fds()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return pss, files


# ---------------------------------------------------------------- the platform from outside
@dataclass
class Platform:
    data_dir: Path
    up: subprocess.Popen
    ui_port: int
    env: dict[str, str] = field(default_factory=dict)

    def stack_env(self) -> dict[str, str]:
        from devstack.stack.manager import load_stack

        stack = load_stack(self.data_dir)
        return {**os.environ, **stack.env()} if stack else {}

    def ledger(self):
        from payment_platform.stores.postgres import PostgresLedger

        return PostgresLedger(self.env["POSTGRES_DSN"])

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.ui_port}/graphql", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def launch_pruning(self, keep_runs_hours: float) -> str:
        """Launches the housekeeping job as an operator would from the UI."""
        params = {"selector": {"repositoryLocationName": "payment_platform", "repositoryName": "__repository__",
                               "jobName": "prune_dagster_runs_job"},
                  "runConfigData": {"ops": {"prune_dagster_runs": {"config": {
                      "keep_runs_hours": keep_runs_hours, "keep_failed_runs_hours": keep_runs_hours}}}}}
        answer = self.graphql(GRAPHQL_LAUNCH, {"params": params})["data"]["launchPipelineExecution"]
        return answer.get("run", {}).get("runId") or answer.get("message", answer["__typename"])


def start_up(data_dir: Path, extra_env: dict[str, str]) -> Platform:
    from devstack.stack.manager import free_ports
    from devstack.stack.services import SERVICES

    *service_ports, ui_port, api_port = free_ports(len(SERVICES) + 2)
    ports = [arg for name, port in zip(SERVICES, service_ports) for arg in ("--port", f"{name}={port}")]
    from payment_platform.config import ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "DAGSTER_HOME"}
    env.update(extra_env)
    log = open(data_dir.parent / "up.out", "ab")
    up = subprocess.Popen([sys.executable, "-m", "payment_platform.cli", "up", "--data-dir", str(data_dir),
                           "--dagster-port", str(ui_port), "--api-port", str(api_port), *ports],
                          env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT)
    platform = Platform(data_dir, up, ui_port)
    deadline = time.monotonic() + 300
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    while True:
        if up.poll() is not None:
            raise RuntimeError(f"payment-platform up exited with {up.returncode}; see {data_dir.parent / 'up.out'}")
        try:
            entries = platform.graphql(query)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Dagster did not load the code location within 300 s")
        time.sleep(2)
    platform.env = platform.stack_env()
    return platform


def kafka_end(platform: Platform) -> int:
    from payment_platform.stores.kafka import KafkaClient

    with KafkaClient(platform.env["KAFKA_BOOTSTRAP_SERVERS"], platform.env.get("PAYMENTS_TOPIC")
                     or "payment-transactions") as kafka:
        return sum(kafka.end_offsets().values())


def progress(platform: Platform) -> int:
    return sum(platform.ledger().read_progress(platform.env.get("PAYMENTS_TOPIC") or "payment-transactions").values())


def postgres_scalar(platform: Platform, query: str):
    return postgres_rows(platform, query)[0][0]


def postgres_rows(platform: Platform, query: str, dbname: str | None = None) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(platform.env["POSTGRES_DSN"], connect_timeout=5, **({"dbname": dbname} if dbname else {}))
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.close()


def dagster_rows(platform: Platform, query: str) -> list[tuple]:
    """Rows from Dagster's own database; none while Postgres is frozen by a fault (no breakdown this time)."""
    import psycopg2

    try:
        return postgres_rows(platform, query, dbname="dagster")
    except psycopg2.Error:
        return []


def dagster_db_mb(platform: Platform) -> float:
    return postgres_scalar(platform, "SELECT pg_database_size('dagster')") / 1e6


def dagster_tables_mb(platform: Platform) -> dict[str, float]:
    """Each table of Dagster's database with its indexes and TOAST, in MB: what grows, when the whole does."""
    rows = dagster_rows(platform, "SELECT relname, pg_total_relation_size(relid) FROM pg_catalog.pg_statio_user_tables")
    return {name: size / 1e6 for name, size in rows}


def event_logs_split(platform: Platform) -> dict[str, tuple[int, float]]:
    """Dagster's event_logs rows of runs against those recorded outside any run (the sensors' observations), as
    (rows, MB of event text): which of the two a growing event_logs holds."""
    rows = dagster_rows(platform, "SELECT run_id = '', count(*), coalesce(sum(octet_length(event)), 0) "
                                  "FROM event_logs GROUP BY 1")
    return {("run-less" if runless else "runs"): (count, size / 1e6) for runless, count, size in rows}


def folder_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total / 1e6


# ---------------------------------------------------------------- faults
def inject(platform: Platform, fault: str, log) -> str:
    procs = processes_of(platform.up.pid, platform.data_dir)
    if fault == "postgres_stop":
        targets = procs.get("postgres", [])
        for proc in targets:
            proc.send_signal(signal.SIGSTOP)
        time.sleep(20)
        for proc in targets:
            try:
                proc.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass
        return f"SIGSTOP of {len(targets)} Postgres processes for 20 s"
    role = {"daemon": "daemon", "code_server": "code_server", "run_worker": "run_worker",
            "hbase_gateway": "hbase_gateway"}[fault]
    deadline = time.monotonic() + 60
    while not procs.get(role) and time.monotonic() < deadline:  # a run worker exists only while a run writes
        time.sleep(0.5)
        procs = processes_of(platform.up.pid, platform.data_dir)
    if not procs.get(role):
        return f"no {role} process found to kill"
    victim = procs[role][0]
    victim.kill()
    said = f"SIGKILL of {role} pid {victim.pid}"
    if fault == "hbase_gateway":
        time.sleep(10)
        done = subprocess.run([sys.executable, "-m", "payment_platform.cli", "stack", "restart", "hbase",
                               "--data-dir", str(platform.data_dir)], capture_output=True, text=True, cwd=PROJECT,
                              env=platform.env, timeout=120)
        said += f"; `stack restart hbase` after 10 s: {done.stdout.strip() or done.stderr.strip()}"
    return said


# ---------------------------------------------------------------- the soak
@dataclass
class Sample:
    t: float
    lag: int
    freshness_s: float | None
    memory_mb: dict[str, float]
    files: dict[str, int]
    dagster_db_mb: float | None
    compute_logs_mb: float
    produced: int | None = None  # messages on the topic (Kafka's end offsets)
    roots: dict[str, list[int]] = field(default_factory=dict)  # per role, its processes whose parent is not of it


def roots_of(procs: list[psutil.Process]) -> list[int]:
    """The role's processes not started by another of its processes (Postgres' postmaster, not its backends): a new
    root means the role was restarted."""
    pids = {proc.pid for proc in procs}
    roots = []
    for proc in procs:
        try:
            if proc.ppid() not in pids:
                roots.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return sorted(roots)


def sample(platform: Platform, began: float, full: bool) -> Sample:
    produced = None
    try:
        produced = kafka_end(platform)
        lag = produced - progress(platform)
    except Exception:  # noqa: BLE001 - a store frozen by a fault: no figure this time
        lag = -1
    memory, files, roots = {}, {}, {}
    if full:
        for role, procs in processes_of(platform.up.pid, platform.data_dir).items():
            memory[role], files[role] = usage(procs)
            roots[role] = roots_of(procs)
    fresh, db = None, None
    if full:
        try:
            fresh = postgres_scalar(platform, "SELECT extract(epoch FROM now() - max(created_at)) FROM payments")
            db = dagster_db_mb(platform)
        except Exception:  # noqa: BLE001
            pass
    logs = folder_mb(platform.data_dir / "dagster_home" / "storage") if full else 0.0
    return Sample(time.monotonic() - began, lag, float(fresh) if fresh is not None else None, memory, files, db, logs,
                  produced, roots)


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) in value per hour."""
    return pooled_slope_per_hour([points])


@dataclass
class SoakResult:
    produced: int = 0
    postgres_rows: int = 0
    postgres_distinct: int = 0
    hbase_index_rows: int = 0
    missing_in_postgres: int = 0
    missing_in_hbase: int = 0
    backup_size: int = 0
    recoveries: list[dict] = field(default_factory=list)
    memory_slopes: dict[str, float | None] = field(default_factory=dict)
    storage_slope_mb_h: float | None = None
    pruning_runs: list[str] = field(default_factory=list)
    dagster_tables_at_first_pruning: dict[str, float] = field(default_factory=dict)
    dagster_tables_at_end: dict[str, float] = field(default_factory=dict)
    event_logs_at_end: dict[str, tuple[int, float]] = field(default_factory=dict)  # "runs"/"run-less": (rows, MB)
    drain_s: float | None = None  # from the producer's end to every message settled; None: it never was
    missing_offsets: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # partition: [first, last]
    quarantined: int = 0  # the producer sends only good payments: any quarantined one is a validation bug
    quarantine_reasons: list[tuple[str, int]] = field(default_factory=list)  # the most frequent, with counts
    stop_seconds: float | None = None
    leftovers: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def dagster_table_growth(self) -> list[tuple[str, float]]:
        """The Dagster tables that grew most from the first pruning to the end (MB), largest first."""
        start, end = self.dagster_tables_at_first_pruning, self.dagster_tables_at_end
        grown = [(name, end[name] - start.get(name, 0.0)) for name in end]
        return sorted((g for g in grown if g[1] > 0.01), key=lambda g: -g[1])[:6]

    @property
    def exactly_once(self) -> bool:
        return (self.produced == self.postgres_rows == self.postgres_distinct == self.hbase_index_rows
                and not self.missing_in_postgres and not self.missing_in_hbase and self.backup_size == 0
                and self.quarantined == 0)

    @property
    def all_recovered(self) -> bool:
        return all(r["recovered_s"] is not None for r in self.recoveries)

    def broker_kb_per_payment(self) -> float | None:
        """The embedded broker's memory growth per produced payment after warm-up (it keeps every message)."""
        pts = [(s.produced, s.memory_mb["kafka"]) for s in self.samples
               if "kafka" in s.memory_mb and getattr(s, "produced", None) is not None]
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            return None
        return (pts[-1][1] - pts[0][1]) * 1024 / (pts[-1][0] - pts[0][0])

    def criteria(self) -> list[tuple[str, bool | None, str]]:
        # the embedded broker keeps every message by design of its memory storage (docs/operating.md, "Running
        # for days"): judged apart, against what the docs say, not hidden in the criterion of the other processes
        mem = {k: v for k, v in self.memory_slopes.items() if v is not None and k != "kafka"}
        worst = max(mem.items(), key=lambda kv: kv[1]) if mem else ("-", 0.0)
        slow = [r for r in self.recoveries if r["recovered_s"] is None or r["recovered_s"] > RECOVERY_LIMIT_S]
        return [
            ("nothing lost or duplicated", self.exactly_once,
             f"produced {self.produced}, Postgres {self.postgres_rows} rows ({self.postgres_distinct} distinct, "
             f"{self.missing_in_postgres} missing), HBase index {self.hbase_index_rows} ({self.missing_in_hbase} "
             f"missing), backup {self.backup_size}; drained in "
             + (f"{self.drain_s} s" if self.drain_s is not None else "never")
             + (f"; quarantined {self.quarantined} (most often: {self.quarantine_reasons})" if self.quarantined else "")
             + (f"; missing offsets {self.missing_offsets}" if self.missing_offsets else "")),
            (f"lag back to normal within {RECOVERY_LIMIT_S:.0f} s of each fault", not slow and bool(self.recoveries),
             "; ".join(f"{r['fault']} {r['recovered_s'] if r['recovered_s'] is not None else 'never'} s"
                       for r in self.recoveries)),
            ("the embedded broker keeps every message (a documented limit: ~2 KB a payment, docs/operating.md)", None,
             f"{self.memory_slopes.get('kafka') or 0:+.0f} MB/h after warm-up"
             + (f", {kb:.1f} KB per payment produced" if (kb := self.broker_kb_per_payment()) is not None else "")),
            (f"memory growth < {MEMORY_LIMIT_MB_H:.0f} MB/h after warm-up, every process but the embedded broker",
             (worst[1] < MEMORY_LIMIT_MB_H) if mem else None,
             f"worst {worst[0]} {worst[1]:+.1f} MB/h; " + ", ".join(f"{k} {v:+.1f}" for k, v in sorted(mem.items()))),
            (f"Dagster storage flat with pruning on (< {STORAGE_LIMIT_MB_H:g} MB/h)",
             None if self.storage_slope_mb_h is None else self.storage_slope_mb_h < STORAGE_LIMIT_MB_H,
             (f"{self.storage_slope_mb_h:+.2f} MB/h after the first pruning" if self.storage_slope_mb_h is not None
              else "not enough samples after the first pruning")
             + ("; grown since: " + ", ".join(f"{name} {mb:+.2f} MB" for name, mb in self.dagster_table_growth())
                if self.dagster_table_growth() else "")
             + ("; event_logs at the end: " + ", ".join(f"{kind} {rows} rows {mb:.1f} MB"
                                                        for kind, (rows, mb) in self.event_logs_at_end.items())
                if self.event_logs_at_end else "")),
            (f"`up` stops within {STOP_LIMIT_S:.0f} s of Ctrl+C under load, nothing left", self.stop_seconds is not None
             and self.stop_seconds < STOP_LIMIT_S and not self.leftovers,
             f"{self.stop_seconds:.1f} s, leftovers {self.leftovers}" if self.stop_seconds is not None else "-"),
        ]


def normal_lag(tps: float, warmup: list[int]) -> int:
    """Lag counted as normal: 30 s of production, or the 90th percentile of warm-up's second half if that was
    lower (a platform that keeps up holds far less). A warm-up whose lag only grew does not raise the bar."""
    settled = sorted(x for x in warmup[len(warmup) // 2:] if x >= 0)
    p90 = settled[int(len(settled) * 0.9)] if settled else 0
    return int(min(max(2 * p90, tps * 5), tps * 30))


def run_soak(minutes: float, tps: float, fault_every_s: float, sample_every_s: float = 30.0,
             lag_every_s: float = 5.0, warmup_s: float | None = None, prune_every_s: float = 300.0,
             keep_runs_hours: float = 0.05, drain_timeout_s: float = 600.0, faults: tuple[str, ...] = FAULTS,
             data_root: Path | None = None, log=print) -> SoakResult:
    root = Path(data_root or tempfile.mkdtemp(prefix="payment-platform-soak-"))
    data_dir = root / "data"
    if warmup_s is None:
        # until Redis holds a full idempotency window (its landed ids expire after REDIS_LANDED_TTL_S: before
        # that its memory grows by design), at most a third of the run
        from payment_platform.config import DEFAULT_REDIS_LANDED_TTL_S

        warmup_s = min(max(600.0, DEFAULT_REDIS_LANDED_TTL_S + 120.0), minutes * 60 / 3)
    result = SoakResult()
    platform = start_up(data_dir, {"HOUSEKEEPING_KEEP_RUNS_HOURS": str(keep_runs_hours),
                                   "HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS": str(keep_runs_hours)})
    log(f"up: UI on http://127.0.0.1:{platform.ui_port}, data {data_dir}")
    producer = subprocess.Popen([sys.executable, "-m", "payment_platform.cli", "produce", "--tps", str(tps)],
                                env=platform.env, cwd=PROJECT, stdout=subprocess.DEVNULL,
                                stderr=open(root / "produce.err", "ab"))
    began = time.monotonic()
    end_at = began + minutes * 60
    next_fault, next_full, next_lag, next_prune = began + warmup_s, began, began, began + prune_every_s
    fault_index, pending, warm_lags, threshold = 0, [], [], None
    first_prune_t = None
    try:
        while time.monotonic() < end_at:
            now = time.monotonic()
            if now >= next_lag:
                full = now >= next_full
                s = sample(platform, began, full)
                result.samples.append(s)
                if full:
                    next_full = now + sample_every_s
                    log(f"t={s.t:6.0f}s lag={s.lag} fresh={s.freshness_s and round(s.freshness_s, 1)}s "
                        f"dagster_db={s.dagster_db_mb and round(s.dagster_db_mb, 1)}MB logs={s.compute_logs_mb:.1f}MB "
                        f"pss_mb=" + ",".join(f"{k}:{v:.0f}" for k, v in sorted(s.memory_mb.items())))
                if s.t < warmup_s:
                    warm_lags.append(s.lag)
                elif threshold is None:
                    threshold = normal_lag(tps, warm_lags)
                    log(f"normal lag: <= {threshold} messages")
                for record in pending:
                    if record["recovered_s"] is None and 0 <= s.lag <= (threshold or 0) and s.t > record["at"]:
                        record["recovered_s"] = round(s.t - record["at"], 1)
                next_lag = now + lag_every_s
            if now >= next_prune:
                try:
                    result.pruning_runs.append(platform.launch_pruning(keep_runs_hours))
                    if first_prune_t is None:
                        first_prune_t = now - began
                        result.dagster_tables_at_first_pruning = dagster_tables_mb(platform)
                    next_prune = now + prune_every_s
                except (OSError, KeyError, ValueError) as error:  # the UI restarting after a fault: try again soon
                    log(f"t={now - began:6.0f}s could not launch the housekeeping job yet: {error}")
                    next_prune = now + 15
            if now >= next_fault and faults and now < end_at - 120:
                fault = faults[fault_index % len(faults)]
                fault_index += 1
                at = time.monotonic() - began
                said = inject(platform, fault, log)
                log(f"t={at:6.0f}s fault {fault}: {said}")
                record = {"fault": fault, "at": at, "said": said, "recovered_s": None}
                pending.append(record)
                result.recoveries.append(record)
                next_fault = time.monotonic() + fault_every_s
            if platform.up.poll() is not None:
                raise RuntimeError(f"payment-platform up exited with {platform.up.returncode} during the soak")
            time.sleep(0.5)

        # Ctrl+C under load, once the figures are in: first the end of production and the drain.
        producer.send_signal(signal.SIGINT)
        producer.wait(timeout=60)
        result.produced = kafka_end(platform)
        drain_began = time.monotonic()
        deadline = drain_began + drain_timeout_s
        while time.monotonic() < deadline:
            if progress(platform) >= result.produced and backup_size(platform) == 0:
                result.drain_s = round(time.monotonic() - drain_began, 1)
                break
            time.sleep(5)
        if result.drain_s is None:
            log(f"the drain did not finish within {drain_timeout_s:.0f} s: progress {progress(platform)} of "
                f"{result.produced}, backup {backup_size(platform)}")
        verify(platform, result)
        result.dagster_tables_at_end = dagster_tables_mb(platform)
        result.event_logs_at_end = event_logs_split(platform)
        result.memory_slopes = memory_slopes(result.samples, warmup_s)
        if first_prune_t is not None:
            pts = [(s.t, s.dagster_db_mb) for s in result.samples
                   if s.dagster_db_mb is not None and s.t >= first_prune_t + prune_every_s]
            result.storage_slope_mb_h = slope_per_hour(pts)
        # Ctrl+C with load: the producer again, then SIGINT to `up`.
        producer = subprocess.Popen([sys.executable, "-m", "payment_platform.cli", "produce", "--tps", str(tps),
                                     "--seed", "7"], env=platform.env, cwd=PROJECT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        time.sleep(20)
        tree = [p.pid for procs in processes_of(platform.up.pid, platform.data_dir).values() for p in procs]
        t0 = time.monotonic()
        platform.up.send_signal(signal.SIGINT)
        platform.up.wait(timeout=120)
        gone = wait_gone(tree, 30)
        result.stop_seconds = time.monotonic() - t0 if not gone else None
        result.leftovers = [f"{pid}" for pid in gone]
        return result
    finally:
        if producer.poll() is None:
            producer.kill()
        if platform.up.poll() is None:
            platform.up.send_signal(signal.SIGINT)
            try:
                platform.up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                platform.up.kill()
        from devstack.stack.manager import remove_data_dir

        if not os.environ.get("SOAK_KEEP_DATA"):
            remove_data_dir(root)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def backup_size(platform: Platform) -> int:
    from payment_platform.stores.backup import FailedPaymentBackup

    backup = FailedPaymentBackup(platform.env["MONGO_URI"], platform.data_dir / "failed_payments")
    try:
        return int(backup.stats()["size"])
    finally:
        backup.close()


def verify(platform: Platform, result: SoakResult) -> None:
    """Every produced payment id once in Postgres, in HBase's id index and in HBase's payments table."""
    from kafka import KafkaConsumer, TopicPartition

    from payment_platform.stores.hbase import HBaseStore

    topic = platform.env.get("PAYMENTS_TOPIC") or "payment-transactions"
    consumer = KafkaConsumer(bootstrap_servers=platform.env["KAFKA_BOOTSTRAP_SERVERS"], enable_auto_commit=False,
                             max_poll_records=5000)
    ids: list[str] = []
    where: list[tuple[int, int]] = []  # (partition, offset) of each id, to say where a loss happened
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.seek_to_beginning()
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=2000).values():
                for r in records:
                    ids.append(json.loads(r.value)["payment_id"])
                    where.append((r.partition, r.offset))
    finally:
        consumer.close()
    result.produced = len(ids)
    wanted = set(ids)
    result.postgres_rows = postgres_scalar(platform, "SELECT count(*) FROM payments")
    result.postgres_distinct = postgres_scalar(platform, "SELECT count(DISTINCT payment_id) FROM payments")
    ledger = platform.ledger()
    hbase = HBaseStore(platform.env["HBASE_HOST"], int(platform.env["HBASE_PORT"]))
    chunks = [ids[i:i + 5000] for i in range(0, len(ids), 5000)]
    absent: set[str] = set()
    for chunk in chunks:
        absent |= set(chunk) - ledger.existing_ids(chunk)
    result.missing_in_postgres = len(absent)
    result.missing_offsets = offset_ranges(sorted(where[i] for i, pid in enumerate(ids) if pid in absent))
    result.missing_in_hbase = sum(len(set(c) - hbase.existing_ids(c)) for c in chunks)
    result.hbase_index_rows = hbase.count_index()
    result.backup_size = backup_size(platform)
    result.quarantined = postgres_scalar(platform, "SELECT count(*) FROM payments_quarantine")
    if result.quarantined:
        result.quarantine_reasons = postgres_rows(
            platform, "SELECT left(reason, 60) AS why, count(*) FROM payments_quarantine GROUP BY why "
                      "ORDER BY count(*) DESC LIMIT 3")
    if len(wanted) != len(ids):
        result.postgres_distinct = -1  # the producer itself sent a payment twice: not a platform failure, but say so


def offset_ranges(positions: list[tuple[int, int]]) -> dict[int, list[tuple[int, int]]]:
    """Sorted (partition, offset) pairs as each partition's runs of consecutive offsets."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for partition, offset in positions:
        runs = ranges.setdefault(partition, [])
        if runs and runs[-1][1] == offset - 1:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return ranges


def memory_slopes(samples: list[Sample], warmup_s: float, settle_s: float = RESTART_SETTLE_S) -> dict[str, float | None]:
    """Each role's memory growth in MB/h after warm-up. A role restarted by a fault (its root processes changed)
    starts small and warms up again: the slope is pooled over the stretches between restarts (each stretch its own
    level, one slope for all), and the first `settle_s` of a stretch after a restart is its warm-up, left out."""
    roles = {role for s in samples for role in s.memory_mb}
    slopes = {}
    for role in sorted(roles):
        if role in ("run_worker",):  # short-lived: their number, not their growth, varies
            continue
        stretches: list[list[tuple[float, float]]] = []
        current, began, restarted = None, 0.0, False
        for s in samples:
            if role not in s.memory_mb:
                continue
            identity = tuple(s.roots.get(role, ()))
            if identity != current:
                restarted = current is not None
                current, began = identity, s.t
                stretches.append([])
            if s.t >= warmup_s and (not restarted or s.t - began >= settle_s):
                stretches[-1].append((s.t, s.memory_mb[role]))
        slopes[role] = pooled_slope_per_hour(stretches)
    return slopes


def pooled_slope_per_hour(stretches: list[list[tuple[float, float]]]) -> float | None:
    """One least-squares slope (value per hour) over stretches that each have a level of their own."""
    stretches = [pts for pts in stretches if len(pts) >= 2]
    if sum(len(pts) for pts in stretches) < 3:
        return None
    covariance = variance = 0.0
    for pts in stretches:
        mean_t = sum(t for t, _ in pts) / len(pts)
        mean_v = sum(v for _, v in pts) / len(pts)
        covariance += sum((t - mean_t) * (v - mean_v) for t, v in pts)
        variance += sum((t - mean_t) ** 2 for t, _ in pts)
    return covariance / variance * 3600 if variance else None


def main() -> int:
    sys.path.insert(0, str(PROJECT))
    from payment_platform_tests.running_up import accept_ctrl_c

    accept_ctrl_c()  # the benchmark stops its children with SIGINT, also when it was started in the background
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--tps", type=float, default=250.0, help="payments per second (default 250: half of what "
                                                                   "the platform sustains on this machine)")
    parser.add_argument("--fault-every", type=float, default=300.0, help="seconds between faults (default 300)")
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument("--prune-every", type=float, default=300.0,
                        help="seconds between launches of the housekeeping job (its schedule runs every 15 min)")
    parser.add_argument("--keep-runs-hours", type=float, default=0.05, help="pruning window of the soak (default 3 min)")
    parser.add_argument("--json", help="write every sample and the result to this file")
    args = parser.parse_args()
    result = run_soak(args.minutes, args.tps, args.fault_every, args.sample_every, prune_every_s=args.prune_every,
                      keep_runs_hours=args.keep_runs_hours)
    print(f"\nsoak: {args.minutes:g} min at {args.tps:g} payments/s, a fault every {args.fault_every:g} s")
    failed = False
    for name, passed, detail in result.criteria():
        mark = "PASS" if passed else ("info" if passed is None else "FAIL")
        failed |= passed is False
        print(f"  {mark}  {name}: {detail}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": [vars(s) for s in result.samples],
                                               "recoveries": result.recoveries,
                                               "memory_slopes": result.memory_slopes}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
