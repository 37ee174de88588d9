"""The test suite's own rules: one harness, fixtures declared once, no test module importing another.

Helpers shared by several test modules live in helper modules (``harness``, ``qbo_helpers``,
``emulator_client``, ``emulator_rows``, ``web_fixtures``...), and the shared fixtures in
``conftest.py``. A test module that imports another one runs (and collects) it twice and ties
two test files together; a fixture declared again in a module silently shadows the shared one.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
#: The fixtures ``conftest.py`` gives every module; no module declares its own under these names.
SHARED_FIXTURES = frozenset({"emulator", "shared_emulator", "shared_demo", "landed", "chromium"})


def _modules() -> list[Path]:
    return sorted(TESTS.glob("*.py"))


def _fixture_name(function: ast.FunctionDef) -> str | None:
    """The name a ``@pytest.fixture`` function is registered under (``name=`` wins), else ``None``."""
    for decorator in function.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            for keyword in call.keywords if call else []:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            return function.name
    return None


def _imported_test_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every import of a ``test_*`` module in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "qb_pipelines_tests" else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[-1].startswith("test_")]
    return found


def test_no_test_module_imports_another() -> None:
    offenders = [f"{path.name}:{line} imports {name}" for path in _modules()
                 for line, name in _imported_test_modules(ast.parse(path.read_text(), str(path)))]
    assert offenders == [], "move what is shared into a helper module (harness.py, qbo_helpers.py...)"


def test_shared_fixtures_are_declared_only_in_conftest() -> None:
    redeclared = []
    for path in _modules():
        if path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and _fixture_name(node) in SHARED_FIXTURES:
                redeclared.append(f"{path.name}:{node.lineno} declares the fixture {_fixture_name(node)!r}")
    assert redeclared == [], "use the conftest fixture (shared_emulator for one emulator per module)"


def test_the_rules_see_what_they_look_for() -> None:
    """The checks above find an imported test module and a redeclared fixture when there is one."""
    imports = ast.parse("from qb_pipelines_tests.test_reconcile import Landed\n"
                        "from qb_pipelines_tests import test_quality, harness\nimport qb_pipelines_tests.test_push\n"
                        "from qb_pipelines_tests.harness import connect_company\n")
    assert _imported_test_modules(imports) == [(1, "qb_pipelines_tests.test_reconcile"), (2, "test_quality"),
                                               (3, "qb_pipelines_tests.test_push")]
    fixtures = ast.parse("import pytest\n@pytest.fixture(scope='module', name='chromium')\ndef browser(): ...\n"
                         "@pytest.fixture\ndef emulator(): ...\ndef helper(): ...\n")
    assert [_fixture_name(f) for f in fixtures.body if isinstance(f, ast.FunctionDef)] == [
        "chromium", "emulator", None]
    conftest = ast.parse((TESTS / "conftest.py").read_text())
    assert {_fixture_name(f) for f in conftest.body if isinstance(f, ast.FunctionDef)} >= SHARED_FIXTURES
