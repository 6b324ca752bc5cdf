"""The generated pages (docs/configuration.md's settings, docs/api.md and docs/openapi.json) match the code
they come from; a stale page fails with the command that regenerates it."""
from __future__ import annotations

import pytest

from payment_platform.config import ALL_ENV_VARS
from payment_platform_tests.test_docs.docs_files import DOCS, generator


@pytest.mark.parametrize("name", ["configuration.md", "api.md", "openapi.json"])
def test_generated_page_is_current(name):
    path = DOCS / name
    expected = generator().expected_pages()[path]
    assert path.read_text() == expected, f"docs/{name} is stale: run {generator().REGENERATE}"


def test_configuration_page_names_every_setting():
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name in ALL_ENV_VARS if f"| `{name}` |" not in text]
    assert not missing, missing


def test_a_new_setting_makes_the_configuration_page_stale(monkeypatch):
    from payment_platform import config

    gen = generator()
    current = (DOCS / "configuration.md").read_text()
    monkeypatch.setitem(config.ENV_VARS, "NEW_SETTING", "a setting added to config.py")
    page = gen.configuration_page(current)
    assert page != current and "| `NEW_SETTING` | a setting added to config.py |" in page
    # the hand-written text around the markers is kept as it is
    assert page.split(gen.BEGIN)[0] == current.split(gen.BEGIN)[0]
    assert page.split(gen.END)[1] == current.split(gen.END)[1]


def test_configuration_page_without_markers_is_an_error_naming_them():
    with pytest.raises(SystemExit, match="markers"):
        generator().configuration_page("# Configuration\n")


def test_api_page_lists_every_route_of_the_openapi_document():
    gen = generator()
    document = gen.openapi_document()
    page = (DOCS / "api.md").read_text()
    for path, methods in document["paths"].items():
        for method in methods:
            assert f"## `{method.upper()} {path}`" in page
    document["paths"]["/new"] = {"get": {"summary": "A new route", "responses": {"200": {"description": "OK"}}}}
    assert "## `GET /new`" in gen.api_page(document)


def test_check_mode_names_a_stale_page(tmp_path, monkeypatch, capsys):
    gen = generator()
    stale = tmp_path / "api.md"
    stale.write_text("# REST API\n")
    monkeypatch.setattr(gen, "expected_pages", lambda: {stale: "# REST API\n\nfresh\n"})
    monkeypatch.setattr(gen, "DOCS", tmp_path / "docs")
    assert gen.main(["--check"]) == 1
    assert "api.md is stale: run .venv/bin/python docs/generate.py" in capsys.readouterr().err
    assert stale.read_text() == "# REST API\n"  # --check changes nothing
