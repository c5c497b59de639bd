"""The datasets package stays composed: parts that take their collaborators in their
constructor, no mixins, no private names reached across modules, no silenced type errors."""

from __future__ import annotations

import ast
from pathlib import Path

import mao.datasets

PACKAGE = Path(mao.datasets.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))


def test_no_module_imports_a_private_name_of_another() -> None:
    found = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mao."):
                found += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []


def test_no_mixins_and_no_silenced_type_errors() -> None:
    for path in MODULES:
        text = path.read_text()
        assert "type: ignore" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                assert not node.name.endswith("Mixin"), f"{path.name}: {node.name}"
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                assert len(bases) <= 1, f"{path.name}: {node.name} inherits from {bases}"
