import dagster as dg

from payment_platform.definitions import defs


def test_definitions_load_and_resolve():
    assert isinstance(defs, dg.Definitions)
    defs.validate_loadable(defs)
