"""Benchmarks record the figures they print in docs/capacity.md, with the date and the machine.

Each benchmark owns one section of the page's "Recorded benchmark runs", between two markers named after its
script; a new run replaces that section (other sections and the rest of the page stay as they are), or adds it
at the end of the page the first time. Commit the page when the figures are worth keeping.

    from figures import record_figures          # a benchmark script's own folder is on sys.path
    record_figures(__file__, ["figure", "value", "raw baseline", "ratio"], rows, note="...")

`BENCH_RECORD=0` turns recording off (the figures are printed as before); `BENCH_RECORD_PAGE=FILE` writes to
another page.
"""
from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
CAPACITY_PAGE = REPO / "docs" / "capacity.md"
RECORD_SETTING = "BENCH_RECORD"
PAGE_SETTING = "BENCH_RECORD_PAGE"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        import psutil

        return f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM"
    except Exception:  # noqa: BLE001 - the memory size is context, never a reason to lose the figures
        return "RAM unknown"


def machine() -> str:
    """The machine in one line: CPU, cores, memory, system, Python, and the load when the figures were taken."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return (f"{_cpu_model()}, {os.cpu_count()} cores, {_memory_gib()}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average {load}")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- figures:{name} -->", f"<!-- /figures:{name} -->"


def _cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def section(name: str, header: Sequence[str], rows: Iterable[Sequence[object]], *, note: str = "",
            command: str = "", when: datetime | None = None, machine_line: str | None = None) -> str:
    """The Markdown of one benchmark's section, markers included."""
    begin, end = _markers(name)
    when = when or datetime.now(timezone.utc)
    lines = [begin, f"### {name}", "",
             f"Recorded {when:%Y-%m-%d %H:%M} UTC" + (f" by `{command}`" if command else "") + ",",
             f"on {machine_line if machine_line is not None else machine()}.", "",
             "| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"{name}: a row of {len(row)} cells under a header of {len(header)}: {row!r}")
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    if note:
        lines += ["", " ".join(note.split())]
    return "\n".join(lines + [end])


def replace_section(page: str, name: str, text: str) -> str:
    """`page` with the section of `name` replaced by `text`, or `text` appended when the page has none."""
    begin, end = _markers(name)
    start = page.find(begin)
    if start == -1:
        return page.rstrip("\n") + "\n\n" + text + "\n"
    stop = page.find(end, start)
    if stop == -1:
        raise ValueError(f"{name}: {begin} has no closing {end}")
    return page[:start] + text + page[stop + len(end):]


def record_figures(script: str, header: Sequence[str], rows: Iterable[Sequence[object]], *, note: str = "",
                   env: Mapping[str, str] | None = None, page: Path | None = None) -> Path | None:
    """Write the figures of `script` (a benchmark's `__file__`) into the capacity page; returns the page written,
    None when recording is off. The page is replaced atomically, so a benchmark killed meanwhile leaves it whole."""
    env = os.environ if env is None else env
    if env.get(RECORD_SETTING, "1").strip() == "0":
        return None
    page = Path(page or env.get(PAGE_SETTING) or CAPACITY_PAGE)
    name = Path(script).name
    command = " ".join(["python", f"payment_platform_tests/benchmarks/{name}", *map(shlex.quote, sys.argv[1:])])
    text = section(name, header, list(rows), note=note, command=command)
    current = page.read_text() if page.exists() else ""
    fd, tmp = tempfile.mkstemp(dir=page.parent, prefix=f".{page.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(replace_section(current, name, text))
        os.replace(tmp, page)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"figures recorded in {page}")
    return page
