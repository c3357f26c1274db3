"""What every benchmark shares: the machine it ran on, a printed table, and its results JSON."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from sentiment.files import write_json_atomic

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "benchmarks" / "results"
SHARED_ARCHIVE = REPOSITORY.parent / "shared" / "data" / "aclImdb_v1.tar.gz"


def machine() -> dict[str, Any]:
    """The machine, software and commit a result was measured with."""
    cpu = "unknown"
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpu_capability": _cpu_capability(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
    }


def _cpu_capability() -> str:
    """What torch computes with on this CPU ("AVX512", "AVX2", ...), whether it has native bfloat16, and
    whether it has AMX tiles: each kind gives different figures (the model in a batch of 64 took 0.60 ms a
    review on a Xeon with AMX, 0.90 on an EPYC with AVX512-BF16 alone: README, Serving)."""
    import torch

    from sentiment.models.lstm import native_bfloat16

    capability = torch.backends.cpu.get_cpu_capability()
    if native_bfloat16():
        capability += ", native bfloat16"
    if "amx_bf16" in _cpu_flags():
        capability += ", AMX"
    return capability


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (none where there is no such file)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPOSITORY, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as an aligned plain-text table, in `columns` order."""
    values = [[row.get(column, "") for column in columns] for row in rows]
    cells = [[_cell(value) for value in line] for line in values]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
    print("  ".join("-" * width for width in widths))
    for line, raw in zip(cells, values, strict=True):
        # Numbers align right, text left.
        aligned = [
            cell.rjust(width) if isinstance(value, int | float) and not isinstance(value, bool) else cell.ljust(width)
            for cell, value, width in zip(line, raw, widths, strict=True)
        ]
        print("  ".join(aligned).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) < 1:
            return f"{value:.4f}"  # accuracies and other fractions
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Save `results` with the date, command and machine to benchmarks/results/<name>.json."""
    document = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **results,
    }
    path = RESULTS / f"{name}.json"
    write_json_atomic(path, document)
    return path
