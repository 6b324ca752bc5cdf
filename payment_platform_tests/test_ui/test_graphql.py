"""The Dagster UI as a user drives it, through the webserver's GraphQL API against `payment-platform up`: the
asset graph, every check, sensors and schedules, the buttons (Materialize, Materialize all, Execute on a check,
Execute all on a Checks tab, Launchpad runs, sensor and schedule toggles) and checks following the data.

The tests run in file order and share one `up` (the data they build on is the batch materialized below)."""
from __future__ import annotations


import pytest

from payment_platform_tests.waiting import wait_until
from payment_platform_tests.test_ui.conftest import REPO, START_SCHEDULE, START_SENSOR, STOP_SCHEDULE, STOP_SENSOR

# the first test also pays for `up`, the Launchpad test for five runs: minutes on a loaded 2-core machine
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1500)]

BATCH = ["generation", "payment_batch"]
TOPIC = ["kafka", "payment_transactions"]
HBASE = ["hbase", "payments"]
POSTGRES = ["postgres", "payments"]
BACKUP = ["mongo", "failed_payments"]
QUARANTINE = ["postgres", "payments_quarantine"]
SUMMARY = ["postgres", "daily_settlement_summary"]
BATCH_SIZE = 300
RANGE_CHECKS = {(tuple(HBASE), "ingested_ranges_consistency"),
                (tuple(HBASE), "range_no_duplicate_payment_ids"), (tuple(HBASE), "range_amounts_valid_for_rail"),
                (tuple(POSTGRES), "range_no_duplicate_payment_ids"), (tuple(POSTGRES), "range_amounts_valid_for_rail")}
FULL_CHECKS = {(tuple(store), name) for store in (HBASE, POSTGRES)
               for name in ("cross_store_consistency", "no_duplicate_payment_ids", "amounts_valid_for_rail")}
OTHER_CHECKS = {(tuple(POSTGRES), "recent_days_consistency"), (tuple(BACKUP), "backup_empty_or_draining"),
                (tuple(QUARANTINE), "quarantine_rate_under_threshold"), (tuple(TOPIC), "ingestion_not_stalled")}

ASSET_NODES = """{ assetNodes { assetKey { path } dependencyKeys { path } kinds isExecutable
    owners { __typename ... on TeamAssetOwner { team } }
    metadataEntries { label __typename }
    assetChecksOrError { __typename ... on AssetChecks { checks { name blocking canExecuteIndividually } } } } }"""


def nodes(ui) -> dict[tuple, dict]:
    return {tuple(n["assetKey"]["path"]): n for n in ui.query(ASSET_NODES)["assetNodes"]}


def instigators(ui) -> tuple[dict, dict]:
    data = ui.query("""query($repo: RepositorySelector!) {
        sensorsOrError(repositorySelector: $repo) { ... on Sensors { results { name sensorState { id status } } } }
        schedulesOrError(repositorySelector: $repo) { ... on Schedules { results { name
            scheduleState { id status } } } } }""", {"repo": REPO})
    sensors = {s["name"]: s["sensorState"] for s in data["sensorsOrError"]["results"]}
    schedules = {s["name"]: s["scheduleState"] for s in data["schedulesOrError"]["results"]}
    return sensors, schedules


def sensor_ticks(ui, name: str) -> list[dict]:
    data = ui.query("""query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
        ... on Sensor { sensorState { ticks(limit: 10) { status skipReason error { message } } } } } }""",
                    {"selector": {**REPO, "sensorName": name}})
    return data["sensorOrError"]["sensorState"]["ticks"]


def runs_of(ui, job: str) -> list[dict]:
    data = ui.query("""query($filter: RunsFilter!) { runsOrError(filter: $filter, limit: 200) {
        ... on Runs { results { runId status tags { key value } } } } }""", {"filter": {"pipelineName": job}})
    return data["runsOrError"]["results"]


def materialized_in(ui, run_id: str) -> set[tuple]:
    data = ui.query("""query($id: ID!) { logsForRun(runId: $id, limit: 5000) { ... on EventConnection {
        events { __typename ... on MaterializationEvent { assetKey { path } } } } } }""", {"id": run_id})
    return {tuple(e["assetKey"]["path"]) for e in data["logsForRun"]["events"]
            if e["__typename"] == "MaterializationEvent"}


def checks_in(ui, run_id: str, keys) -> dict[tuple, dict]:
    """Each check's execution in this run: {(asset path, name): execution}."""
    found = {}
    for path, name in keys:
        for execution in ui.check_executions(list(path), name):
            if execution["runId"] == run_id:
                found[(path, name)] = execution
    return found


def test_the_asset_graph_shows_the_lineage_kinds_owners_and_schemas(dagster_ui):
    graph = nodes(dagster_ui)
    deps = {key: {tuple(d["path"]) for d in node["dependencyKeys"]} for key, node in graph.items()}
    assert deps[tuple(TOPIC)] == {tuple(BATCH)}
    for store in (HBASE, POSTGRES, BACKUP, QUARANTINE):
        assert deps[tuple(store)] == {tuple(TOPIC)}
    assert deps[tuple(SUMMARY)] == {tuple(HBASE), tuple(POSTGRES)}
    kinds = set().union(*(set(node["kinds"]) for node in graph.values()))
    assert {"kafka", "hbase", "postgres", "mongodb", "redis"} <= kinds
    for key in (BATCH, TOPIC, HBASE, POSTGRES, BACKUP, QUARANTINE, SUMMARY):
        assert {o.get("team") for o in graph[tuple(key)]["owners"]} == {"payments-data"}, key
    for key in (HBASE, POSTGRES, BACKUP, QUARANTINE, SUMMARY):
        labels = {e["label"] for e in graph[tuple(key)]["metadataEntries"]}
        assert {"dagster/column_schema", "dagster/table_name"} <= labels, (key, labels)
    assert not graph[tuple(TOPIC)]["isExecutable"] and graph[tuple(HBASE)]["isExecutable"]


def test_every_check_on_every_asset_can_be_executed_on_its_own(dagster_ui):
    found = {}
    for key, node in nodes(dagster_ui).items():
        assert node["assetChecksOrError"]["__typename"] == "AssetChecks", node
        for check in node["assetChecksOrError"]["checks"]:
            found[(key, check["name"])] = check
    assert set(found) == RANGE_CHECKS | FULL_CHECKS | OTHER_CHECKS
    assert {k for k, c in found.items() if c["canExecuteIndividually"] != "CAN_EXECUTE"} == set()
    assert {k for k, c in found.items() if c["blocking"]} == FULL_CHECKS | {(tuple(POSTGRES),
                                                                              "recent_days_consistency")}


def test_sensors_and_schedules_start_in_their_default_state(dagster_ui):
    sensors, schedules = instigators(dagster_ui)
    for name in ("payments_ingestion_sensor", "backup_replay_sensor", "platform_monitoring_sensor"):
        assert sensors[name]["status"] == "RUNNING", name
    assert schedules["generate_payments_every_minute"]["status"] == "STOPPED"
    assert schedules["consistency_checks_every_15_minutes"]["status"] == "RUNNING"
    assert schedules["daily_settlement_at_0030_utc"]["status"] == "RUNNING"


def test_before_the_first_batch_the_sensor_says_it_is_waiting_and_how_to_publish(dagster_ui):
    ticks = wait_until(lambda: [t for t in sensor_ticks(dagster_ui, "payments_ingestion_sensor")
                                if t["status"] == "SKIPPED"], 90, "a skipped tick of the ingestion sensor", every_s=1.0)
    reason = ticks[0]["skipReason"]
    assert reason.startswith("no payments published yet: materialize generation/payment_batch or run "
                             "`payment-platform produce --tps 50`"), reason
    assert "paused" not in reason and "UnknownTopic" not in reason


def test_materialize_on_a_store_before_any_payment_is_refused_saying_what_to_do(dagster_ui):
    run = dagster_ui.wait_for_run(dagster_ui.launched_run("__ASSET_JOB", assets=[HBASE]))
    assert run["status"] == "FAILURE"
    assert any("nothing to ingest: no payments published yet: materialize generation/payment_batch" in m
               for m in dagster_ui.run_messages(run["runId"]))


def test_materialize_the_batch_then_the_sensor_ingests_it_and_the_range_checks_follow(dagster_ui):
    run_id = dagster_ui.launched_run("__ASSET_JOB", assets=[BATCH],
                                     run_config={"ops": {"generation__payment_batch": {"config": {
                                         "count": BATCH_SIZE, "seed": 13}}}})
    assert dagster_ui.wait_for_run(run_id)["status"] == "SUCCESS"

    wait_until(lambda: any(t["status"] == "SKIPPED" and "up to date" in (t["skipReason"] or "")
                           for t in sensor_ticks(dagster_ui, "payments_ingestion_sensor")), 180,
               f"a tick saying all {BATCH_SIZE} payments are ingested", every_s=2)

    def leases_ended():  # a lease ends a few seconds after its partition went quiet (INGESTION_LEASE_IDLE_SECONDS)
        runs = runs_of(dagster_ui, "ingest_partition_lease_job")
        return runs if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs) else None
    runs = wait_until(leases_ended, 60, "the lease runs ending", every_s=2)
    landed = [r for r in runs if r["status"] == "SUCCESS" and {tuple(HBASE), tuple(POSTGRES)} <= materialized_in(
        dagster_ui, r["runId"])]
    assert landed and all(r["status"] == "SUCCESS" for r in runs), runs
    for run in landed:  # every lease evaluated the cheap checks of what it landed, and they passed
        executions = checks_in(dagster_ui, run["runId"], RANGE_CHECKS)
        assert set(executions) == RANGE_CHECKS, (run["runId"], executions)
        assert all(e["status"] == "SUCCEEDED" and e["evaluation"]["success"] for e in executions.values()), executions


def test_execute_all_on_a_checks_tab_runs_every_check_of_the_asset(dagster_ui):
    hbase_checks = sorted((path, name) for path, name in RANGE_CHECKS | FULL_CHECKS if path == tuple(HBASE))
    answer = dagster_ui.launch("__ASSET_JOB", assets=[], checks=[(list(p), n) for p, n in hbase_checks])
    assert answer["__typename"] == "LaunchRunSuccess", answer  # was InvalidSubsetError for the multi-asset check
    run = dagster_ui.wait_for_run(answer["run"]["runId"])
    executions = checks_in(dagster_ui, run["runId"], hbase_checks)
    assert set(executions) == set(hbase_checks), executions  # none left "in progress"
    assert all(e["evaluation"]["success"] for e in executions.values()), executions
    assert run["status"] == "SUCCESS"


@pytest.mark.parametrize("check", [(tuple(POSTGRES), "no_duplicate_payment_ids"),
                                   (tuple(POSTGRES), "range_amounts_valid_for_rail"),
                                   (tuple(TOPIC), "ingestion_not_stalled"),
                                   (tuple(BACKUP), "backup_empty_or_draining")])
def test_execute_on_one_check_runs_that_check(dagster_ui, check):
    run_id = dagster_ui.launched_run("__ASSET_JOB", assets=[], checks=[(list(check[0]), check[1])])
    run = dagster_ui.wait_for_run(run_id)
    executions = checks_in(dagster_ui, run_id, RANGE_CHECKS | FULL_CHECKS | OTHER_CHECKS)
    assert set(executions) == {check}, executions
    assert executions[check]["evaluation"]["success"], executions[check]
    assert run["status"] == "SUCCESS"


def test_materialize_on_one_store_ingests_what_waits_now(dagster_ui):
    run_id = dagster_ui.launched_run("__ASSET_JOB", assets=[POSTGRES])
    run = dagster_ui.wait_for_run(run_id)
    assert run["status"] == "SUCCESS", dagster_ui.run_messages(run_id)[-20:]
    assert materialized_in(dagster_ui, run_id) == {tuple(POSTGRES)}


def test_a_launchpad_run_with_config_of_the_wrong_type_is_refused_naming_the_field(dagster_ui):
    answer = dagster_ui.launch("ingest_payments_range_job",
                               run_config={"ops": {"ingest_payments_range": {"config": {"partition": "first"}}}})
    assert answer["__typename"] == "RunConfigValidationInvalid"
    assert any("partition" in e["message"] for e in answer["errors"]), answer


def test_a_launchpad_run_with_half_a_range_fails_saying_what_to_give(dagster_ui):
    run_id = dagster_ui.launched_run("ingest_payments_range_job", run_config={
        "ops": {"ingest_payments_range": {"config": {"topic": "payment-transactions", "partition": 0}}}})
    assert dagster_ui.wait_for_run(run_id)["status"] == "FAILURE"
    assert any("give topic, partition, start and end together" in m for m in dagster_ui.run_messages(run_id))


LAUNCHPAD = {  # a Launchpad run of each job, with the config a person would give
    "generate_payments_job": {"ops": {"generation__payment_batch": {"config": {"count": 50, "seed": 5}}}},
    "ingest_payments_range_job": {},  # no range: what waits now
    # a lease of partition 0 (the resource's topic): it waits for the sensor's lease, or ingests, then ends
    "consistency_checks_job": {},
    "daily_settlement_job": {},
    "replay_failed_payments_job": {},
    "ingest_partition_lease_job": {"ops": {"ingest_partition_lease": {"config": {"partition": 0}}}},
}


def test_a_launchpad_run_of_each_job_succeeds(dagster_ui):
    jobs = dagster_ui.query("""query($repo: RepositorySelector!) { repositoryOrError(repositorySelector: $repo) {
        ... on Repository { jobs { name } } } }""", {"repo": REPO})["repositoryOrError"]["jobs"]
    names = {j["name"] for j in jobs} - {"__ASSET_JOB"}
    assert set(LAUNCHPAD) <= names, names
    finished = {}  # one at a time, as a person at the Launchpad would (and the 2-core machine can take)
    for name in sorted(names):
        finished[name] = dagster_ui.wait_for_run(dagster_ui.launched_run(name, run_config=LAUNCHPAD.get(name, {})))
    failed = {name: dagster_ui.run_messages(run["runId"])[-5:] for name, run in finished.items()
              if run["status"] != "SUCCESS"}
    assert failed == {}


def test_materialize_all_generates_ingests_checks_and_builds_the_summary(dagster_ui):
    graph = nodes(dagster_ui)
    assets = [list(key) for key, node in graph.items() if node["isExecutable"]]
    checks = [(list(key), c["name"]) for key in map(tuple, assets)
              for c in graph[key]["assetChecksOrError"]["checks"]]
    run_id = dagster_ui.launched_run("__ASSET_JOB", assets=assets, checks=checks)
    run = dagster_ui.wait_for_run(run_id, timeout=300)
    assert run["status"] == "SUCCESS", dagster_ui.run_messages(run_id)[-20:]
    assert {tuple(BATCH), tuple(HBASE), tuple(POSTGRES), tuple(SUMMARY)} <= materialized_in(dagster_ui, run_id)
    blocking = checks_in(dagster_ui, run_id, FULL_CHECKS)
    assert set(blocking) == FULL_CHECKS and all(e["evaluation"]["success"] for e in blocking.values())


def test_turning_the_sensor_off_and_on(dagster_ui):
    sensors, _ = instigators(dagster_ui)
    state = sensors["payments_ingestion_sensor"]
    stopped = dagster_ui.query(STOP_SENSOR, {"id": state["id"]})["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED", stopped
    assert instigators(dagster_ui)[0]["payments_ingestion_sensor"]["status"] == "STOPPED"
    started = dagster_ui.query(START_SENSOR, {"sensorSelector": {**REPO, "sensorName": "payments_ingestion_sensor"}})
    assert started["startSensor"]["sensorState"]["status"] == "RUNNING", started
    assert instigators(dagster_ui)[0]["payments_ingestion_sensor"]["status"] == "RUNNING"


def test_turning_the_batch_schedule_on_and_off(dagster_ui):
    selector = {**REPO, "scheduleName": "generate_payments_every_minute"}
    started = dagster_ui.query(START_SCHEDULE, {"scheduleSelector": selector})["startSchedule"]
    assert started["scheduleState"]["status"] == "RUNNING", started
    state_id = instigators(dagster_ui)[1]["generate_payments_every_minute"]["id"]
    stopped = dagster_ui.query(STOP_SCHEDULE, {"id": state_id})["stopRunningSchedule"]
    assert stopped["scheduleState"]["status"] == "STOPPED", stopped
    assert instigators(dagster_ui)[1]["generate_payments_every_minute"]["status"] == "STOPPED"
