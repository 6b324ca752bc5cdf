"""What the infra tests read: the files under infra/, the image recipe, and the settings the code reads.

Everything is derived from the repository itself (config.py, the Definitions' resources, the ingestion
sensor's run tags), so the checks follow the code instead of repeating it.
"""
from __future__ import annotations

import re

import ast
import fnmatch
import json
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
DEPLOY_DAGSTER_YAML = INFRA / "dagster.yaml"
GRPC_WORKSPACE = INFRA / "workspace.grpc.yaml"
HELM_VALUES = INFRA / "helm" / "dagster-values.yaml"
HELM_SCHEMA = INFRA / "helm" / "schema" / "values.schema.json"
K8S_DIR = INFRA / "k8s"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PLATFORM_ENV_FILE = INFRA / "platform.env"

# the Kubernetes API versions the manifests are checked against (oldest and newest still supported)
K8S_VERSIONS = ("1.29.0", "1.37.0")
# the Dagster Helm chart's schema refers to Kubernetes definitions by URL; they resolve offline to the
# definitions kubernetes-validate ships (the oldest it has; the chart pinned v1.18.0 when generated)
HELM_K8S_DEFINITIONS_URL = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"
HELM_K8S_DEFINITIONS_VERSION = "v1.25.0-local"

# environment variables a deployment may set that are not the platform's settings: read by Dagster itself
# (DAGSTER_HOME: where dagster.yaml is) or by the interpreter and pip while the image is built and run
NOT_PLATFORM_SETTINGS = {
    "DAGSTER_HOME",
    "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK",
}


def infra_yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_yaml_documents(path: Path) -> list:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_yaml(path: Path):
    (doc,) = load_yaml_documents(path)
    return doc


# The secrets infra/docker-compose.yml and infra/platform.env read from the environment (infra/compose.env.example)
SAMPLE_SECRETS = {"POSTGRES_PASSWORD": "sample-password"}
_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


class MissingVariable(ValueError):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's (and the shell's) variable substitution over a loaded document: ${VAR}, ${VAR:-default},
    ${VAR-default}, ${VAR:?error}, ${VAR?error}, and $$ for a literal $."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if name is None:
            return "$"
        current = env.get(name)
        unset = current is None or (operator in (":-", ":?") and current == "")
        if not unset:
            return current
        if operator in (":?", "?"):
            raise MissingVariable(f"{name}: {argument}")
        return argument if operator in (":-", "-") else ""

    return _VARIABLE.sub(substitute, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    """infra/docker-compose.yml as compose sees it with these variables set (default: the sample secrets)."""
    return interpolate(load_yaml(COMPOSE_FILE), SAMPLE_SECRETS if env is None else env)


def k8s_manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(K8S_DIR.glob("*.yaml")) for doc in load_yaml_documents(path)]


@cache
def compose_spec_schema() -> dict:
    """The Compose Specification's JSON schema, as check-jsonschema (PyPI) vendors it."""
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    return json.loads(text)


@cache
def helm_values_validator():
    """A validator for the vendored Dagster chart schema, its Kubernetes references resolved offline."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    schema = json.loads(HELM_SCHEMA.read_text())
    definitions_file = f"kubernetes-json-schema/{HELM_K8S_DEFINITIONS_VERSION}/_definitions.json"
    k8s = json.loads(resources.files("kubernetes_validate").joinpath(definitions_file).read_text())["$defs"]
    # the chart points into "#/definitions/...", kubernetes-validate's own refs into "#/$defs/..."
    registry = Registry().with_resource(
        HELM_K8S_DEFINITIONS_URL, Resource(contents={"definitions": k8s, "$defs": k8s}, specification=DRAFT7))
    return jsonschema.Draft7Validator(schema, registry=registry)  # Helm validates with draft-07 semantics


# --- the settings the code reads ---------------------------------------------------------------------------

def config_env_vars() -> set[str]:
    """Every environment variable payment_platform/config.py reads: the keys of its tables of variables
    (ENV_VARS and every other dict literal named *_VARS) and every name it looks up with
    get(...)/getenv(...)/environ[...]."""
    tree = ast.parse((REPO / "payment_platform" / "config.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and t.id.endswith("_VARS") for t in node.targets):
            names |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("get", "getenv") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
                names.add(node.slice.value)
    return {n for n in names if isinstance(n, str) and n.isupper()}


def resource_env_vars() -> set[str]:
    """The environment variables the code location's resources are configured from (dg.EnvVar): a process
    that runs the code location's sensors or runs cannot start a resource without each of them."""
    from payment_platform.definitions import defs

    names = set()
    for resource in defs.resources.values():
        for value in vars(resource).values():
            name = getattr(value, "env_var_name", None)
            if name:
                names.add(name)
    return names


def dagster_yaml_env_vars(path: Path) -> set[str]:
    """The variables a dagster.yaml reads through `env:` sources."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "env" and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(load_yaml(path))
    return found


def env_file_vars(path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """KEY=VALUE lines, their ${...} substituted as a shell sourcing the file would (default: the sample secrets)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = interpolate(value.strip(), {**(SAMPLE_SECRETS if env is None else env), **pairs})
    return pairs


# --- the image recipe ---------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[dict]:
    from dockerfile_parse import DockerfileParser

    return DockerfileParser(path=str(DOCKERFILE)).structure


def dockerfile_copy_sources() -> list[str]:
    """The build-context paths named by COPY/ADD (not those copied from another stage with --from)."""
    import shlex

    sources = []
    for instruction in dockerfile_instructions():
        if instruction["instruction"] not in ("COPY", "ADD"):
            continue
        value = instruction["value"].strip()
        if value.startswith("["):
            parts = json.loads(value)
        else:
            parts = shlex.split(value)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        operands = [p for p in parts if not p.startswith("--")]
        sources.extend(operands[:-1])  # the last operand is the destination
    return sources


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines() if DOCKERIGNORE.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def excluded_by_dockerignore(relative: str, patterns: list[str]) -> bool:
    """Whether the build context leaves this path (or a folder above it) out; Docker's rules for the
    patterns used here: a path pattern, a leading **/ for any depth, and ! to take a path back."""
    parts = Path(relative).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):  # at any depth (fnmatch's * also matches "/")
            shapes = [pattern[3:], "*/" + pattern[3:]]
        else:
            shapes = [pattern]
        if any(fnmatch.fnmatchcase(c, shape) for c in candidates for shape in shapes):
            excluded = not negate
    return excluded
