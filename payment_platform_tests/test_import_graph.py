"""The import graph of the product and of the local dev stack (devstack/), drawn from every import statement
(module level, inside functions and under TYPE_CHECKING alike), has no cycle: each room depends on rooms below
it, never back. The product never imports devstack (the image ships the product alone), and the HBase gateway
imports nothing of the product (another project can use it on its own)."""
from __future__ import annotations

import ast
from pathlib import Path

import devstack
import payment_platform

PACKAGE_DIR = Path(payment_platform.__file__).resolve().parent
DEVSTACK_DIR = Path(devstack.__file__).resolve().parent


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, each import resolved to the deepest module it names
    (`from pkg import sub` is an edge to `pkg.sub` when that is a module, else to `pkg`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {**module_files(PACKAGE_DIR), **module_files(DEVSTACK_DIR)}
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (package / "c.py").write_text("from . import a\n")
    (package / "d.py").write_text("import pkg.a\n")
    modules = module_files(package)
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "devstack.stack.cli" in graph and "payment_platform.cli" in graph  # both packages drawn
    assert sum(map(len, graph.values())) > 100  # really drawn
    assert cycles(graph) == []


def test_the_finder_sees_an_import_of_the_other_package(tmp_path):
    for package, source in (("product", "def f():\n    from devstack.stack import manager\n"), ("devstack", "")):
        (tmp_path / package / "stack").mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text(source)
        (tmp_path / package / "stack" / "__init__.py").write_text("")
        (tmp_path / package / "stack" / "manager.py").write_text("")
    modules = {**module_files(tmp_path / "product"), **module_files(tmp_path / "devstack")}
    assert imported_modules("product", tmp_path / "product" / "__init__.py", modules) == {"devstack.stack.manager"}


def test_the_product_never_imports_devstack():
    graph = import_graph()
    product = {name: targets for name, targets in graph.items() if in_package(name, "payment_platform")}
    assert product and not any(in_package(name, "devstack") for name in product)
    crossing = {name: sorted(t for t in targets if in_package(t, "devstack")) for name, targets in product.items()}
    assert {name: targets for name, targets in crossing.items() if targets} == {}
    assert any(in_package(t, "payment_platform") for n, ts in graph.items() if in_package(n, "devstack") for t in ts)


def test_the_hbase_gateway_imports_nothing_of_the_product():
    graph = import_graph()
    gateway = {name: targets for name, targets in graph.items() if in_package(name, "devstack.hbase_gateway")}
    assert "devstack.hbase_gateway.server" in gateway
    assert {name: sorted(t for t in targets if not in_package(t, "devstack.hbase_gateway"))
            for name, targets in gateway.items()} == {name: [] for name in gateway}
