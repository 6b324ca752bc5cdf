"""The benchmarks' recorder (payment_platform_tests/benchmarks/figures.py): each benchmark owns one section of
docs/capacity.md, replaced by its next run, with the date, the command and the machine."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from payment_platform_tests.benchmarks import figures
from payment_platform_tests.test_docs.docs_files import DOCS

PAGE = "# Capacity\n\nhand-written figures\n\n## Recorded benchmark runs\nintro\n"


def test_first_run_appends_a_section_with_date_command_and_machine(tmp_path):
    page = tmp_path / "capacity.md"
    page.write_text(PAGE)
    written = figures.record_figures("/x/bench_demo.py", ["figure", "value", "ratio"], [("rate", "1,000/s", "0.50x")],
                                     note="met: rate >= 500/s", env={}, page=page)
    text = page.read_text()
    assert written == page and text.startswith(PAGE.rstrip("\n"))
    assert "<!-- figures:bench_demo.py -->\n### bench_demo.py" in text and text.endswith("<!-- /figures:bench_demo.py -->\n")
    assert re.search(r"Recorded \d{4}-\d\d-\d\d \d\d:\d\d UTC by `python payment_platform_tests/benchmarks/bench_demo.py",
                     text)
    assert f"{figures._cpu_model()}, " in text and "load average" in text
    assert "| figure | value | ratio |\n|---|---|---|\n| rate | 1,000/s | 0.50x |" in text
    assert "met: rate >= 500/s" in text


def test_a_new_run_replaces_its_own_section_and_keeps_the_others(tmp_path):
    page = tmp_path / "capacity.md"
    page.write_text(PAGE)
    figures.record_figures("bench_a.py", ["figure"], [("a first",)], env={}, page=page)
    figures.record_figures("bench_b.py", ["figure"], [("b only",)], env={}, page=page)
    figures.record_figures("bench_a.py", ["figure"], [("a second",)], env={}, page=page)
    text = page.read_text()
    assert "a first" not in text and text.count("a second") == 1 and text.count("b only") == 1
    assert text.count("<!-- figures:bench_a.py -->") == 1 and text.index("a second") < text.index("b only")
    assert "hand-written figures" in text


def test_recording_off_leaves_the_page_alone(tmp_path):
    page = tmp_path / "capacity.md"
    page.write_text(PAGE)
    assert figures.record_figures("bench_a.py", ["figure"], [("x",)], env={"BENCH_RECORD": "0"}, page=page) is None
    assert page.read_text() == PAGE


def test_a_row_that_does_not_fit_the_header_is_refused_before_the_page_is_touched(tmp_path):
    page = tmp_path / "capacity.md"
    page.write_text(PAGE)
    with pytest.raises(ValueError, match="bench_a.py: a row of 1 cells under a header of 2"):
        figures.record_figures("bench_a.py", ["figure", "value"], [("x",)], env={}, page=page)
    assert page.read_text() == PAGE


def test_section_text_is_fixed_by_its_inputs():
    when = datetime(2026, 12, 7, 15, 4, tzinfo=timezone.utc)
    text = figures.section("bench_x.py", ["a", "b"], [(1, "x|y")], command="python bench_x.py", when=when,
                           machine_line="2 cores")
    assert text == ("<!-- figures:bench_x.py -->\n### bench_x.py\n\nRecorded 2026-12-07 15:04 UTC by "
                    "`python bench_x.py`,\non 2 cores.\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n"
                    "<!-- /figures:bench_x.py -->")


def test_the_capacity_page_has_well_formed_recorded_sections():
    text = (DOCS / "capacity.md").read_text()
    assert "## Recorded benchmark runs" in text
    opened = re.findall(r"<!-- figures:(\S+) -->", text)
    closed = re.findall(r"<!-- /figures:(\S+) -->", text)
    assert opened == closed and len(set(opened)) == len(opened)
    assert text.index("## Recorded benchmark runs") < min((text.index(f"<!-- figures:{n}") for n in opened),
                                                          default=len(text))
