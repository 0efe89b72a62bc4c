"""The package is laid out by stage, and each stage imports only from the stages before
it (each subpackage's docstring says what it owns and may import). This test reads
every module's imports, lazy ones inside functions included, and fails on an import
against the direction, on a module importing the package's façade (`reasoner/__init__`)
and on a private name (`_x`) imported from another module."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reasoner"

ORDER = ["language", "analysis", "io", "plan", "engines", "proof", "authoring", "domains", "render", "service", "cli"]
"""Stages in the direction data flows: a module may import from its own stage and earlier ones."""


def _stage(module: str) -> int | None:
    """Position in ORDER of `reasoner.X.Y` (None: the façade or __main__)."""
    parts = module.split(".")
    if parts[0] != "reasoner" or len(parts) == 1:
        return None
    return ORDER.index(parts[1]) if parts[1] in ORDER else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every `from ... import` of the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "reasoner" or module.startswith("reasoner."):
                out.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("reasoner"):
                    out.append((node.lineno, alias.name, []))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "rulesets" not in p.parts)


def test_every_module_belongs_to_a_stage() -> None:
    loose = [p.name for p in _modules() if _stage(_module_name(p)) is None
             and p.name not in ("__init__.py", "__main__.py")]
    assert loose == []


def test_imports_go_with_the_flow_of_data() -> None:
    problems = []
    for path in _modules():
        name = _module_name(path)
        mine = _stage(name)
        if mine is None:
            continue  # the façade and __main__ may import anything
        for line, module, names in _imports(path):
            targets = [module] if module != "reasoner" else [f"reasoner.{n}" for n in names]
            for target in targets:
                theirs = _stage(target)
                if module == "reasoner" and theirs is None:
                    problems.append(f"{name}:{line} imports {names} from the package façade")
                elif theirs is not None and theirs > mine:
                    problems.append(f"{name}:{line} ({ORDER[mine]}) imports {target} ({ORDER[theirs]})")
    assert problems == [], "\n".join(problems)


def test_no_private_names_across_modules() -> None:
    problems = []
    for path in _modules():
        name = _module_name(path)
        for line, module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and module != name:
                problems.append(f"{name}:{line} imports {private} from {module}")
    assert problems == [], "\n".join(problems)


def test_no_module_runs_text_as_code() -> None:
    """Rule and fact text is data: no module calls Python's eval, exec or compile, loads
    pyDatalog program text, or hands z3 SMT-LIB text (z3 terms are built from the tree)."""
    forbidden = {"eval", "exec", "compile", "__import__"}
    problems = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in forbidden:
                problems.append(f"{_module_name(path)}:{node.lineno} calls {func.id}()")
            elif isinstance(func, ast.Attribute) and (
                    func.attr in ("load", "parse_smt2_string", "parse_smt2_file")
                    and isinstance(func.value, ast.Name) and func.value.id in ("pyDatalog", "z3")):
                problems.append(f"{_module_name(path)}:{node.lineno} calls {func.value.id}.{func.attr}()")
            elif isinstance(func, ast.Attribute) and func.attr in ("eval", "exec"):
                problems.append(f"{_module_name(path)}:{node.lineno} calls .{func.attr}() (z3 models: .evaluate())")
    assert problems == [], "\n".join(problems)
