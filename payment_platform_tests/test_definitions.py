import importlib
import pkgutil

import dagster as dg

import payment_platform.defs as defs_package
from payment_platform.defs import ROOMS
from payment_platform.definitions import defs


def test_definitions_load_and_resolve():
    assert isinstance(defs, dg.Definitions)
    defs.validate_loadable(defs)


def test_every_room_exposing_defs_is_loaded():
    names = (f"{defs_package.__name__}.{m.name}" for m in pkgutil.iter_modules(defs_package.__path__))
    rooms = {name for name in names if isinstance(getattr(importlib.import_module(name), "defs", None), dg.Definitions)}
    assert rooms == set(ROOMS)
