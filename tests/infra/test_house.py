"""The house rules the layout promises: a README that is a user's guide, no lab-notebook
references to sessions or issues anywhere, and an engine that imports nothing outside itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "layers" / "autocrop"
#: Top-level packages of this repository the engine must never import.
OUTSIDE = {"functions", "infra", "training", "model_export", "research", "benchmarks", "tests"}


def _tracked(*suffixes: str) -> list[Path]:
    skip = {".git", ".venv", "node_modules", "build", ".serverless", "runs", "__pycache__", "out"}
    return [p for p in ROOT.rglob("*") if p.suffix in suffixes and p.is_file()
            and not skip & set(p.relative_to(ROOT).parts)]  # fmt: skip


def test_readme_is_a_guide_of_at_most_350_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 350, f"README.md has {len(lines)} lines; measurements belong in docs/"


def test_no_session_or_issue_numbers_in_code_or_docs():
    pattern = re.compile(r"session [0-9]|issue [0-9]", re.IGNORECASE)
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _tracked(".py", ".md", ".json")
             for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert not found, found


def test_the_engine_imports_nothing_outside_itself():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in OUTSIDE]
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                offenders.append(f"{path.name}: sys.path")
    assert not offenders, offenders
