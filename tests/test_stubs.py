"""The .pyi stubs of the compiled modules (and py.typed) match the live modules.

Each stub is parsed with ast and compared with the imported module: the same
public names (module level and in every class), classes where the stub has
classes, properties / static methods where it has them, and for every function
the same parameters (name, kind, whether it has a default). pybind11 functions
show their signature in the first line of ``__doc__``; Cython functions
(binding=True) answer ``inspect.signature``.
"""
import ast
import importlib
import inspect
import re
import types
from pathlib import Path

import pytest

import sutra_fast

PKG = Path(sutra_fast.__file__).parent
MODULES = ["_core", "_kernels"]
CONSTANT_TYPES = {"int": int, "str": str, "float": float, "bool": bool}


def public(name):
    return not name.startswith("_") or name in ("__init__", "__version__")


# ---- what the stub says
def stub_names(body):
    """{name: [ast nodes]} of the public definitions in a module or class body."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        else:
            continue
        if public(name):
            out.setdefault(name, []).append(node)
    return out


def decorators(node):
    return {ast.unparse(d) for d in node.decorator_list}


def params_of_def(node, unnamed_positional_only=False):
    """[(name, kind, has_default)] of an ast function definition."""
    a = node.args
    positional = [(p, "positional_only") for p in a.posonlyargs] + \
                 [(p, "positional_or_keyword") for p in a.args]
    first_default = len(positional) - len(a.defaults)
    out = [(p.arg, kind, i >= first_default) for i, (p, kind) in enumerate(positional)]
    if a.vararg:
        out.append((a.vararg.arg, "var_positional", False))
    out += [(p.arg, "keyword_only", d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append((a.kwarg.arg, "var_keyword", False))
    if unnamed_positional_only:
        # pybind11 names unnamed arguments arg0, arg1, ...: positional only, as
        # a stub's "/" makes them and every parameter before them (self too)
        last = max((i for i, (n, _, _) in enumerate(out) if re.fullmatch(r"arg\d+", n)), default=-1)
        out = [(n, "positional_only" if i <= last else k, d) for i, (n, k, d) in enumerate(out)]
    return out


# ---- what the live object says
def live_params(obj, name):
    try:
        sig = inspect.signature(obj)
    except (ValueError, TypeError):  # pybind11: "name(self: T, x: int = 0) -> R" on the first doc line
        first = (obj.__doc__ or "").lstrip().split("\n", 1)[0]
        if not first.startswith(name + "("):
            raise AssertionError(f"{name}: no signature in the first line of __doc__: {first!r}")
        node = ast.parse(f"def _{first[len(name):]}: ...").body[0]
        return params_of_def(node, unnamed_positional_only=True)
    return [(p.name, p.kind.name.lower(), p.default is not p.empty) for p in sig.parameters.values()]


def live_names(obj):
    if isinstance(obj, type):
        names = {n for n in vars(obj) if public(n)}
        if isinstance(vars(obj).get("__init__"), types.WrapperDescriptorType):
            names.discard("__init__")  # pybind11 class without a constructor
        return names
    return {n for n in dir(obj) if public(n) and not isinstance(getattr(obj, n), types.ModuleType)}


# ---- comparison
def compare(live, body, where, problems):
    stub = stub_names(body)
    live_set = live_names(live)
    for name in sorted(live_set - set(stub)):
        problems.append(f"{where}.{name}: in the compiled module, missing from the stub")
    for name in sorted(set(stub) - live_set):
        problems.append(f"{where}.{name}: in the stub, not in the compiled module")
    for name in sorted(live_set & set(stub)):
        compare_one(vars(live)[name] if isinstance(live, type) else getattr(live, name),
                    stub[name], f"{where}.{name}", problems)


def compare_one(obj, nodes, where, problems):
    node = nodes[0]
    if isinstance(node, ast.ClassDef):
        if not isinstance(obj, type):
            problems.append(f"{where}: a class in the stub, a {type(obj).__name__} in the module")
        else:
            compare(obj, node.body, where, problems)
    elif isinstance(node, ast.AnnAssign):
        want = CONSTANT_TYPES.get(ast.unparse(node.annotation))
        if want is not None and not isinstance(obj, want):
            problems.append(f"{where}: annotated {want.__name__} in the stub, "
                            f"is {type(obj).__name__} {obj!r}")
    elif isinstance(obj, property):
        if "property" not in decorators(node):
            problems.append(f"{where}: a property in the module, not in the stub")
        has_setter = any(f"{node.name}.setter" in decorators(n) for n in nodes)
        if has_setter != (obj.fset is not None):
            problems.append(f"{where}: setter in the stub {has_setter}, in the module {obj.fset is not None}")
    elif "property" in decorators(node):
        problems.append(f"{where}: a property in the stub, a {type(obj).__name__} in the module")
    else:
        if isinstance(obj, staticmethod) != ("staticmethod" in decorators(node)):
            problems.append(f"{where}: staticmethod in the module {isinstance(obj, staticmethod)}, "
                            f"in the stub {'staticmethod' in decorators(node)}")
        func = obj.__func__ if isinstance(obj, staticmethod) else obj
        stub_p, live_p = params_of_def(node), live_params(func, node.name)
        if stub_p != live_p:
            problems.append(f"{where}: parameters differ (name, kind, has default)\n"
                            f"    stub: {stub_p}\n    live: {live_p}")


@pytest.mark.parametrize("module", MODULES)
def test_stub_matches_compiled_module(module):
    live = importlib.import_module(f"sutra_fast.{module}")
    tree = ast.parse((PKG / f"{module}.pyi").read_text(encoding="utf-8"))
    problems = []
    compare(live, tree.body, f"sutra_fast.{module}", problems)
    assert not problems, "stub drifted from the compiled module:\n" + "\n".join(problems)


def test_package_is_marked_typed():
    assert (PKG / "py.typed").is_file()


def test_comparison_catches_drift():
    """The checker itself: a removed name, a renamed parameter and a lost default are reported."""
    for module, old, new, expected in [
        ("_kernels", "def cls_pool(", "def _gone(", "cls_pool: in the compiled module, missing"),
        ("_kernels", "dim: int", "width: int", "matryoshka: parameters differ"),
        ("_kernels", "eps: float = 1e-12", "eps: float", "l2_normalize: parameters differ"),
        ("_core", "def below(self, n: int)", "def below(self, k: int)", "Rng.below: parameters differ"),
        ("_core", "arg0: str, /", "arg0: str", "WordPieceTokenizer.token_to_id: parameters differ"),
        ("_core", "MAX_NUM_THREADS: int", "MAX_NUM_THREADS: str", "MAX_NUM_THREADS: annotated str"),
    ]:
        source = (PKG / f"{module}.pyi").read_text(encoding="utf-8")
        assert old in source
        problems = []
        compare(importlib.import_module(f"sutra_fast.{module}"),
                ast.parse(source.replace(old, new, 1)).body, f"sutra_fast.{module}", problems)
        assert any(p.startswith(f"sutra_fast.{module}.{expected}") for p in problems), (old, problems)
