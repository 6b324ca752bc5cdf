"""The scaling knobs: defaults, values, and one clear error naming a bad variable."""
import pytest

from payment_platform.config import ALL_ENV_VARS, ENV_VARS, RETENTION_VARS, SCALING_VARS, ConfigError, Scaling, scaling_from_env


def test_defaults_when_unset_or_empty():
    assert scaling_from_env({}) == Scaling() == scaling_from_env({name: "" for name in SCALING_VARS})
    assert Scaling() == Scaling(topic_partitions=3, max_ranges_in_flight=3, batch_size=20_000,
                                max_concurrent_runs=10, hbase_salt_buckets=0, lease_seconds=600,
                                lease_idle_seconds=120)


def test_values_are_read_and_round_trip():
    env = {"PAYMENTS_TOPIC_PARTITIONS": "6", "INGESTION_MAX_RANGES_IN_FLIGHT": " 6 ", "INGESTION_BATCH_SIZE": "5000",
           "DAGSTER_MAX_CONCURRENT_RUNS": "8", "HBASE_SALT_BUCKETS": "8", "INGESTION_LEASE_SECONDS": "300",
           "INGESTION_LEASE_IDLE_SECONDS": "30"}
    scaling = scaling_from_env(env)
    assert scaling == Scaling(6, 6, 5000, 8, 8, 300, 30)
    assert scaling_from_env(scaling.to_env()) == scaling


@pytest.mark.parametrize("name, value, problem", [
    ("PAYMENTS_TOPIC_PARTITIONS", "0", "between 1 and"),
    ("PAYMENTS_TOPIC_PARTITIONS", "three", "not an integer"),
    ("INGESTION_MAX_RANGES_IN_FLIGHT", "-2", "between 1 and"),
    ("INGESTION_BATCH_SIZE", "1e4", "not an integer"),
    ("DAGSTER_MAX_CONCURRENT_RUNS", "0", "between 1 and"),
    ("HBASE_SALT_BUCKETS", "100", "between 0 and 99"),
    ("HBASE_SALT_BUCKETS", "eight", "not an integer"),
])
def test_a_bad_value_names_its_variable(name, value, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        scaling_from_env({name: value})
    assert caught.value.setting == name and str(caught.value).startswith(f"{name}: ")


def test_every_knob_is_documented_apart_from_the_endpoints():
    assert set(SCALING_VARS) == set(Scaling().to_env())
    assert not set(SCALING_VARS) & set(ENV_VARS) and set(ALL_ENV_VARS) == set(ENV_VARS) | set(SCALING_VARS) | set(RETENTION_VARS)
