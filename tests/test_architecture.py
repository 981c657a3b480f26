"""The house rules of the three product packages, checked on every run.

* Layering, read statically from every ``.py`` file (``import x``, ``from x
  import y``, relative imports, imports under ``TYPE_CHECKING`` or inside a
  function, ``importlib.import_module("x")``): ``vpp`` sits above ``adapters``
  and ``dispatch``; neither lower package imports ``vpp``, they never import
  each other, and no product module imports ``tests``.
* Every module imports, each one first in a fresh set of product modules (an
  import cycle only shows when the cycle is entered from the right module).
* Every package has a face: a module docstring and an ``__all__`` (possibly
  empty, with the docstring saying why) whose names exist. Its order is
  ruff's RUF022.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("vpp", "adapters", "dispatch")
LOWER = frozenset({"adapters", "dispatch"})


@dataclass(frozen=True)
class Violation:
    """One import that breaks the layering."""

    path: str
    line: int
    module: str
    target: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.target} ({self.rule})"


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of a source file under ``root``, and whether it is a package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _absolute(module: str, is_package: bool, target: str | None, level: int) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(base):
        raise ValueError(f"relative import beyond the top-level package in {module}")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imported_names(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every module a source imports, as ``(line, absolute dotted name)``.

    Walks the whole tree, so imports under ``if TYPE_CHECKING:``, in functions
    and in ``try`` blocks count as much as top-level ones.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(module, is_package, node.module, node.level)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.lineno, node.args[0].value


def check_source(source: str, path: str, module: str, is_package: bool) -> list[Violation]:
    """The layering violations of one product source file."""
    own = module.split(".")[0]
    found = []
    for line, target in imported_names(source, module, is_package):
        other = target.split(".")[0]
        rule = None
        if other == "tests":
            rule = "the product never imports tests"
        elif own in LOWER and other == "vpp":
            rule = f"{own} sits below vpp and never imports it"
        elif own in LOWER and other in LOWER and other != own:
            rule = "adapters and dispatch never import each other"
        if rule is not None:
            found.append(Violation(path, line, module, target, rule))
    return found


def check_tree(root: Path, packages: tuple[str, ...] = PRODUCT) -> list[Violation]:
    """The layering violations of every ``.py`` file of ``packages`` under ``root``."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            module, is_package = module_name(path, root)
            rel = str(path.relative_to(root))
            found += check_source(path.read_text(encoding="utf-8"), rel, module, is_package)
    return found


def product_modules() -> list[str]:
    """Every module of the product packages, found by walking them.

    ``__main__`` modules are left out: ``python -m`` entry points run their
    command when imported (``vpp.__main__`` exits with the CLI's code). The
    layering check still reads their source.
    """
    names = []
    for top in PRODUCT:
        package = importlib.import_module(top)
        names.append(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                names.append(info.name)
    return names


def product_packages() -> list[str]:
    """Every package (``__init__.py``) of the product."""
    return [
        module_name(path, ROOT)[0]
        for top in PRODUCT
        for path in sorted((ROOT / top).rglob("__init__.py"))
    ]


# -- the rules on today's tree


def test_layering_holds() -> None:
    violations = check_tree(ROOT)
    assert not violations, "layering broken:\n" + "\n".join(map(str, violations))


def test_the_walk_sees_every_source_file() -> None:
    on_disk = {module_name(path, ROOT)[0] for top in PRODUCT for path in (ROOT / top).rglob("*.py")}
    walked = set(product_modules())
    assert walked <= on_disk
    assert {m for m in on_disk - walked if not m.endswith(".__main__")} == set()


_FRESH_IMPORTS = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in {tops!r}]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first() -> None:
    # One child process, not this one: the product modules are dropped before
    # each import so each starts its own import chain, and this process's
    # modules (whose classes other tests hold) are left alone.
    names = product_modules()
    assert len(names) > 50
    script = _FRESH_IMPORTS.format(tops=set(PRODUCT))
    proc = subprocess.run(
        [sys.executable, "-c", script, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, f"modules that fail to import first:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("name", product_packages())
def test_every_package_has_a_face(name: str) -> None:
    package = importlib.import_module(name)
    doc = package.__doc__ or ""
    assert len(doc.strip()) > 40, f"{name}/__init__.py needs a docstring that says what it holds"
    exported = package.__dict__.get("__all__")
    assert isinstance(exported, list), f"{name} declares no __all__ (an empty one says: no API)"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


# -- the checker itself catches what it should


def _check(source: str, module: str, is_package: bool = False) -> list[Violation]:
    return check_source(textwrap.dedent(source), f"{module}.py", module, is_package)


def test_checker_catches_a_lower_package_importing_vpp() -> None:
    found = _check(
        """\
        from __future__ import annotations
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from vpp.model import Park
        def f():
            import vpp.state
        """,
        "adapters.mqtt",
    )
    assert [(v.line, v.target) for v in found] == [(4, "vpp.model"), (6, "vpp.state")]
    assert str(found[0]) == (
        "adapters.mqtt.py:4: adapters.mqtt imports vpp.model "
        "(adapters sits below vpp and never imports it)"
    )
    assert [v.target for v in _check("import vpp\n", "dispatch.bids")] == ["vpp"]


def test_checker_catches_the_lower_packages_importing_each_other() -> None:
    assert [v.target for v in _check("from dispatch import bids\n", "adapters.clamp")] == [
        "dispatch"
    ]
    assert [v.target for v in _check("import adapters.types as t\n", "dispatch.grid")] == [
        "adapters.types"
    ]
    dynamic = _check('import importlib\nimportlib.import_module("adapters.mqtt")\n', "dispatch.x")
    assert [(v.line, v.target) for v in dynamic] == [(2, "adapters.mqtt")]


def test_checker_catches_the_product_importing_tests() -> None:
    for module in ("vpp.demo", "adapters.sim.park", "dispatch.envelopes"):
        found = _check("from tests.support import eventually\n", module)
        assert [v.rule for v in found] == ["the product never imports tests"]
    assert [v.target for v in _check('__import__("tests.benchmarks")\n', "vpp.cli")] == [
        "tests.benchmarks"
    ]


def test_checker_resolves_relative_imports_and_allows_the_downward_ones() -> None:
    source = "from . import session\nfrom ..types import Telemetry\nfrom .. import clamp\n"
    names = [t for _, t in imported_names(source, "adapters.ocpp.csms", False)]
    assert names == ["adapters.ocpp", "adapters.types", "adapters"]
    in_package = [t for _, t in imported_names("from .csms import X\n", "adapters.ocpp", True)]
    assert in_package == ["adapters.ocpp.csms"]
    allowed = "import adapters\nfrom dispatch import bids\nfrom .state import State\n"
    assert _check(allowed, "vpp.control") == []
    with pytest.raises(ValueError, match="beyond the top-level package"):
        list(imported_names("from ... import x\n", "adapters.ocpp", True))


def test_checker_reads_files_and_names_them(tmp_path: Path) -> None:
    (tmp_path / "dispatch").mkdir()
    (tmp_path / "dispatch" / "__init__.py").write_text('"""x."""\n')
    (tmp_path / "dispatch" / "ok.py").write_text("import numpy\nfrom . import grid\n")
    (tmp_path / "adapters" / "sim").mkdir(parents=True)
    (tmp_path / "adapters" / "sim" / "__init__.py").write_text("from .park import run\n")
    (tmp_path / "adapters" / "sim" / "park.py").write_text(
        "import asyncio\n\nfrom vpp.parkfile import load_park_file\n"
    )
    found = check_tree(tmp_path, ("adapters", "dispatch"))
    assert [str(v) for v in found] == [
        "adapters/sim/park.py:3: adapters.sim.park imports vpp.parkfile "
        "(adapters sits below vpp and never imports it)"
    ]
