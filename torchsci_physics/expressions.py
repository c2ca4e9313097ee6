"""The expression language of physics specs: what a feature, label, selection, weight or particle expression may say.

Physicists write expressions over branches (``"log(jet1P4.pt)"``, ``"num(Muon_pt[Muon_pt > 20])"``,
``"(EventNumber % 2 == 0) & (jet1ID > 0)"``, ``"(jet1P4 + jet2P4).mass"``). They come from configs,
Python specs and the ``input_spec`` header of checkpoints shared between people, so they are data,
never code: an expression is parsed with :mod:`ast`, every node is checked against the grammar below
before anything is evaluated, and the checked tree is evaluated by this module with numpy and awkward.
Python's ``eval`` is never called.

The language:

- numbers (``int``, ``float``, ``True``/``False``) and names: branches, the reader's derived particle
  names (``pt``, ``deta``, ``log_pt_frac``, ...) and the constant ``pi``; no name starts with ``_``;
- ``+ - * / // % **``, ``& | ^ ~ << >>``, ``== != < <= > >=`` (chains are element-wise ``&``),
  ``and``/``or``/``not`` (element-wise), unary ``-``/``+``;
- calls of the functions in :data:`FUNCTIONS` (also as ``np.<name>`` / ``ak.<name>`` from
  ``NUMPY_FUNCTIONS`` / ``AWKWARD_FUNCTIONS``), with the keywords in :data:`KEYWORDS`;
  ``{"pt": ..., "eta": ...}`` as an argument (for ``ak.zip``);
- attributes: the four-vector properties in :data:`VECTOR_PROPERTIES` (``.pt``, ``.eta``, ``.mass``,
  ...), the four-vector methods in :data:`VECTOR_METHODS` (``a.deltaR(b)``), and record fields;
- subscripts: integers, slices of integers, tuples of those (``x[:, 0]``, ``x[:, :2]``) and masks or
  index arrays computed by an expression (``Muon_pt[Muon_pt > 20]``).

Nothing else: no lambdas, comprehensions, f-strings, walrus, starred arguments, ``if``/``else``
(use ``where``), strings outside dict keys and ``with_name``. Expressions are bounded (length,
nesting depth, number of nodes, exponents, shifts, padding) so that none can exhaust the machine.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import awkward as ak
import numpy as np
import vector

from torchsci.errors import ConfigError, DataError

vector.register_awkward()

MAX_LENGTH = 4000
MAX_DEPTH = 64
MAX_NODES = 2000
MAX_EXPONENT = 64
MAX_SHIFT = 64
MAX_INT_BITS = 4096
MAX_PAD = 1024


class ExpressionError(ConfigError):
    """An expression says something outside the language (names the expression, the part and what is allowed)."""


NUMPY_FUNCTIONS = (
    "log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "cbrt", "square", "abs", "absolute", "sign",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh",
    "arctanh", "hypot", "deg2rad", "rad2deg", "where", "minimum", "maximum", "fmin", "fmax", "clip", "isfinite",
    "isnan", "isinf", "floor", "ceil", "rint", "trunc", "fmod", "mod", "power", "sum", "prod", "mean", "min", "max",
    "any", "all")
AWKWARD_FUNCTIONS = (
    "num", "sum", "prod", "mean", "min", "max", "any", "all", "count", "count_nonzero", "argmax", "argmin", "std",
    "var", "ptp", "firsts", "flatten", "fill_none", "pad_none", "is_none", "drop_none", "sort", "argsort",
    "local_index", "where", "zip")


def _pad_none(array: Any, target: int, axis: int = 1, clip: bool = False) -> Any:
    if not isinstance(target, (int, np.integer)) or not 0 <= int(target) <= MAX_PAD:
        raise ExpressionError(f"pad_none: target must be an integer from 0 to {MAX_PAD}, got {target!r}.")
    return ak.pad_none(array, int(target), axis=axis, clip=clip)


def _awkward(name: str) -> Callable[..., Any]:
    return _pad_none if name == "pad_none" else getattr(ak, name)


_NUMPY = {name: getattr(np, name) for name in NUMPY_FUNCTIONS}
_AWKWARD = {name: _awkward(name) for name in AWKWARD_FUNCTIONS}
#: The functions an expression may call by bare name: numpy's element-wise functions, and awkward's
#: reductions over jagged axes (``num``, ``sum``, ``min``, ``max``, ``any``, ``all``, ``mean``, ...).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **{name: f for name, f in _NUMPY.items() if name not in ("sum", "prod", "mean", "min", "max", "any", "all")},
    **{name: f for name, f in _AWKWARD.items() if name not in ("where", "flatten", "zip", "is_none", "drop_none")},
}
CONSTANTS: dict[str, float] = {"pi": float(np.pi)}
_MODULES = {"np": _NUMPY, "numpy": _NUMPY, "ak": _AWKWARD, "awkward": _AWKWARD}

#: Four-vector properties (vector's names) an expression may read with ``.name``.
VECTOR_PROPERTIES = frozenset((
    "pt", "pt2", "eta", "phi", "mass", "mass2", "energy", "px", "py", "pz", "E", "e", "M", "m", "M2", "m2", "p",
    "p2", "mag", "mag2", "rho", "rho2", "rapidity", "theta", "costheta", "cottheta", "tau", "tau2", "t", "t2", "x",
    "y", "z", "Et", "et", "Et2", "et2", "Mt", "mt", "Mt2", "mt2", "beta", "gamma", "pseudorapidity"))
#: Four-vector methods an expression may call, with positional arguments only (``a.deltaR(b)``).
VECTOR_METHODS = frozenset(("deltaR", "deltaR2", "deltaphi", "deltaeta", "deltaRapidityPhi", "deltaRapidityPhi2",
                            "dot", "add", "subtract", "boost_p4", "boostCM_of_p4", "rotateZ", "unit"))
#: vector's record names, the only strings ``with_name=`` accepts.
VECTOR_NAMES = frozenset(("Momentum4D", "Momentum3D", "Momentum2D", "Vector4D", "Vector3D", "Vector2D"))
#: Keywords a call may pass, and what each accepts.
KEYWORDS = {"axis": "an integer or None", "keepdims": "True or False", "mask_identity": "True or False",
            "ascending": "True or False", "stable": "True or False", "clip": "True or False",
            "target": "an integer", "value": "a number", "depth_limit": "an integer",
            "with_name": f"one of {', '.join(sorted(VECTOR_NAMES))}"}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
                                            ast.Not: np.logical_not}
_ALLOWED = ("numbers, branch names, + - * / // % ** & | ^ ~ << >>, comparisons, and/or/not, calls of "
            "log, exp, sqrt, abs, where, minimum, maximum, num, sum, min, max, any, all, ... "
            "(torchsci_physics.expressions.FUNCTIONS), four-vector properties (.pt .eta .phi .mass .energy .px ...), "
            "and subscripts x[0], x[:, :2], x[mask]")
_REFUSED_NAMES = {
    ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.NamedExpr: "an assignment (:=)", ast.Starred: "a starred argument",
    ast.IfExp: "'a if c else b' (use where(c, a, b))", ast.List: "a list", ast.Set: "a set",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield"}


def _refuse(expression: str, node: ast.AST | None, why: str) -> ExpressionError:
    part = ast.get_source_segment(expression, node) if node is not None and hasattr(node, "lineno") else None
    where = f" at {part!r}" if part and part != expression else ""
    return ExpressionError(f"expression {expression!r}{where}: {why}. Allowed: {_ALLOWED}.")


def _int_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


class _Checker:
    """Walks a parsed expression and refuses every node outside the language."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def refuse(self, node: ast.AST, why: str) -> ExpressionError:
        return _refuse(self.expression, node, why)

    def name(self, node: ast.AST, name: str, what: str) -> None:
        if name.startswith("_"):
            raise self.refuse(node, f"{what} {name!r} starts with '_'; such names are never allowed")

    def value(self, node: ast.AST) -> None:  # noqa: C901, PLR0912 - one branch per node kind is the grammar
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float, bool):
                raise self.refuse(node, f"the constant {node.value!r} is not a number (strings only as dict keys "
                                        "and with_name=)")
            if type(node.value) is int and node.value.bit_length() > MAX_INT_BITS:
                raise self.refuse(node, f"the integer has more than {MAX_INT_BITS} bits")
        elif isinstance(node, ast.Name):
            self.name(node, node.id, "name")
            if node.id in _MODULES:
                raise self.refuse(node, f"{node.id!r} is only a prefix of its functions ({node.id}.log(...))")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise self.refuse(node, f"the operator {type(node.op).__name__} is not allowed")
            if isinstance(node.op, ast.Pow) and _int_constant(node.right):
                exponent = ast.literal_eval(node.right)
                if abs(exponent) > MAX_EXPONENT:
                    raise self.refuse(node, f"the exponent {exponent} is larger than {MAX_EXPONENT}")
            self.value(node.left)
            self.value(node.right)
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise self.refuse(node, f"the operator {type(node.op).__name__} is not allowed")
            self.value(node.operand)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                self.value(v)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise self.refuse(node, f"the comparison {type(op).__name__} is not allowed (use == != < <= > >=)")
            for v in (node.left, *node.comparators):
                self.value(v)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Attribute):
            self.name(node, node.attr, "attribute")
            if isinstance(node.value, ast.Name) and node.value.id in _MODULES:
                raise self.refuse(node, f"{node.value.id}.{node.attr} may only be called, as a function")
            self.value(node.value)
        elif isinstance(node, ast.Subscript):
            self.value(node.value)
            self.index(node.slice)
        else:
            what = _REFUSED_NAMES.get(type(node), f"{type(node).__name__}")
            raise self.refuse(node, f"{what} is not part of the expression language")

    def index(self, node: ast.AST) -> None:
        if isinstance(node, ast.Tuple):
            if not node.elts:
                raise self.refuse(node, "an empty subscript is not allowed")
            for element in node.elts:
                self.index_element(element)
        else:
            self.index_element(node)

    def index_element(self, node: ast.AST) -> None:
        if isinstance(node, ast.Slice):
            for part in (node.lower, node.upper, node.step):
                if part is not None and not _int_constant(part):
                    raise self.refuse(node, "slice bounds must be integers (x[:, :2], x[1:])")
        else:
            self.value(node)

    def call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self.name(func, func.id, "function")
            if func.id not in FUNCTIONS:
                raise self.refuse(func, f"{func.id!r} is not a function of the language (functions: "
                                        f"{', '.join(sorted(FUNCTIONS))})")
            name = func.id
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _MODULES:
            self.name(func, func.attr, "function")
            table = _MODULES[func.value.id]
            if func.attr not in table:
                raise self.refuse(func, f"{func.value.id}.{func.attr} is not a function of the language "
                                        f"({func.value.id}.: {', '.join(sorted(table))})")
            name = func.attr
        elif isinstance(func, ast.Attribute):
            self.name(func, func.attr, "method")
            if func.attr not in VECTOR_METHODS:
                raise self.refuse(func, f"the method {func.attr!r} is not a four-vector method of the language "
                                        f"({', '.join(sorted(VECTOR_METHODS))})")
            self.value(func.value)
            if node.keywords:
                raise self.refuse(node, "four-vector methods take positional arguments only")
            name = func.attr
        else:
            raise self.refuse(func, "only named functions can be called")
        for arg in node.args:
            if isinstance(arg, ast.Dict) and name == "zip":
                self.record(arg)
            else:
                self.value(arg)
        for keyword in node.keywords:
            self.keyword(keyword)

    def record(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.refuse(node, "'**' in a dict is not allowed")
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.isidentifier()):
                raise self.refuse(key, "dict keys must be field names in quotes ({'pt': Jet_pt, ...})")
            self.name(key, key.value, "field")
            self.value(value)

    def keyword(self, keyword: ast.keyword) -> None:
        if keyword.arg is None:
            raise self.refuse(keyword.value, "'**' arguments are not allowed")
        if keyword.arg not in KEYWORDS:
            raise self.refuse(keyword.value, f"the keyword {keyword.arg!r} is not allowed (keywords: "
                                             f"{', '.join(KEYWORDS)})")
        value = keyword.value
        if keyword.arg == "with_name":
            if not (isinstance(value, ast.Constant) and value.value in VECTOR_NAMES):
                raise self.refuse(value, f"with_name= must be {KEYWORDS['with_name']}")
        elif keyword.arg == "value":
            self.value(value)
        elif keyword.arg in ("axis", "target", "depth_limit"):
            if not (_int_constant(value) or (keyword.arg == "axis" and isinstance(value, ast.Constant)
                                             and value.value is None)):
                raise self.refuse(value, f"{keyword.arg}= must be {KEYWORDS[keyword.arg]}")
        elif not (isinstance(value, ast.Constant) and type(value.value) is bool):
            raise self.refuse(value, f"{keyword.arg}= must be True or False")


def _depth_and_size(tree: ast.AST) -> tuple[int, int]:
    deepest, count, todo = 0, 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        count += 1
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest, count


@functools.lru_cache(maxsize=4096)
def check(expression: str) -> ast.Expression:
    """Parse ``expression`` and check every part against the language; the checked tree.

    Raises
    ------
    ExpressionError
        Anything outside the language, naming the expression, the offending part and what is allowed.

    Examples
    --------
    >>> from torchsci_physics.expressions import check, ExpressionError
    >>> type(check("log(jet1P4.pt) * (jet1ID == 21)")).__name__
    'Expression'
    >>> try:
    ...     check("().__class__")
    ... except ExpressionError as exc:
    ...     print(str(exc)[:60])
    expression '().__class__': attribute '__class__' starts with
    """
    if not isinstance(expression, str):
        raise ExpressionError(f"expression {expression!r} must be a string, got {type(expression).__name__}.")
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"expression {expression[:60]!r}... is {len(expression)} characters long; at most "
                              f"{MAX_LENGTH} are allowed.")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression {expression!r} is not valid Python syntax: {exc.msg}.") from exc
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(f"expression {expression[:60]!r} is nested too deeply or too large to parse "
                              f"({type(exc).__name__}); at most {MAX_DEPTH} levels are allowed.") from exc
    depth, size = _depth_and_size(tree)
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression {expression[:60]!r} is nested {depth} levels deep; at most {MAX_DEPTH} "
                              "are allowed.")
    if size > MAX_NODES:
        raise ExpressionError(f"expression {expression[:60]!r} has {size} parts; at most {MAX_NODES} are allowed.")
    _Checker(expression.strip()).value(tree.body)
    return tree


def names_in(expression: str) -> set[str]:
    """The names an expression reads as values (branches, derived names, constants); checks it first.

    Examples
    --------
    >>> from torchsci_physics.expressions import names_in
    >>> sorted(names_in("log(jet1P4.pt) + np.sqrt(x[:, 0]) * pi"))
    ['jet1P4', 'pi', 'x']
    """
    tree = check(expression)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    qualifiers = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and id(n) in called}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called
            and not (id(n) in qualifiers and n.id in _MODULES)}


def is_known_name(name: str) -> bool:
    """Whether ``name`` is the language's own (a function or constant), not a branch."""
    return name in FUNCTIONS or name in CONSTANTS


# ---------------------------------------------------------------------------------------------- evaluation
def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, float, np.number, np.bool_))


class _Evaluator:
    def __init__(self, expression: str, namespace: Mapping[str, Any]) -> None:
        self.expression = expression
        self.namespace = namespace

    def refuse(self, node: ast.AST, why: str) -> ExpressionError:
        return _refuse(self.expression, node, why)

    def value(self, node: ast.AST) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per node kind
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.namespace:
                return self.namespace[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise DataError(f"expression {self.expression!r}: {node.id!r} is not a branch of this file.")
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            self.bounded(node, left, right)
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self.value(node.operand))
        if isinstance(node, ast.BoolOp):
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return functools.reduce(combine, (self.value(v) for v in node.values))
        if isinstance(node, ast.Compare):
            values = [self.value(v) for v in (node.left, *node.comparators)]
            results = [_COMPARE[type(op)](a, b) for op, a, b in zip(node.ops, values, values[1:], strict=False)]
            return functools.reduce(np.logical_and, results)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, self.value(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        raise self.refuse(node, f"{type(node).__name__} is not part of the expression language")  # checked before

    def bounded(self, node: ast.BinOp, left: Any, right: Any) -> None:
        """Refuse exponents and shifts that would take unbounded time or memory on Python integers."""
        if isinstance(node.op, ast.Pow) and _is_scalar(right):
            if abs(float(right)) > MAX_EXPONENT:
                raise self.refuse(node, f"the exponent {right} is larger than {MAX_EXPONENT}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * abs(right) > MAX_INT_BITS:
                raise self.refuse(node, f"the power would have more than {MAX_INT_BITS} bits")
        if isinstance(node.op, ast.LShift) and _is_scalar(right) and abs(float(right)) > MAX_SHIFT:
            raise self.refuse(node, f"the shift {right} is larger than {MAX_SHIFT}")
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise self.refuse(node, f"the product would have more than {MAX_INT_BITS} bits")

    def attribute(self, node: ast.AST, value: Any, name: str) -> Any:
        if isinstance(value, (ak.Array, ak.Record)) and name in ak.fields(value):
            return value[name]  # a record field: a lookup by name, never a Python attribute
        if name in VECTOR_PROPERTIES and isinstance(value, (ak.Array, ak.Record, vector.Vector)):
            return getattr(value, name)
        raise DataError(f"expression {self.expression!r}: {ast.get_source_segment(self.expression, node)!r} has no "
                        f"four-vector property or field {name!r} (fields: {', '.join(_fields(value)) or 'none'}).")

    def call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Name):
            fn = FUNCTIONS[func.id]
        elif isinstance(func.value, ast.Name) and func.value.id in _MODULES:  # type: ignore[attr-defined]
            fn = _MODULES[func.value.id][func.attr]  # type: ignore[attr-defined]
        else:
            target = self.value(func.value)  # type: ignore[attr-defined]
            if not isinstance(target, (ak.Array, ak.Record, vector.Vector)):
                raise DataError(f"expression {self.expression!r}: .{func.attr}() needs four-vectors, got "  # type: ignore[attr-defined]
                                f"{type(target).__name__}.")
            fn = getattr(target, func.attr)  # type: ignore[attr-defined]
        args = [self.record(a) if isinstance(a, ast.Dict) else self.value(a) for a in node.args]
        kwargs = {k.arg: self.value(k.value) for k in node.keywords}
        return fn(*args, **kwargs)

    def record(self, node: ast.Dict) -> dict[str, Any]:
        return {k.value: self.value(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[union-attr]

    def subscript(self, node: ast.Subscript) -> Any:
        value = self.value(node.value)
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        index = []
        for element in elements:
            if isinstance(element, ast.Slice):
                index.append(slice(*(None if p is None else ast.literal_eval(p)
                                     for p in (element.lower, element.upper, element.step))))
                continue
            item = self.value(element)
            if not (isinstance(item, (int, np.integer)) and not isinstance(item, bool)
                    or isinstance(item, (np.ndarray, ak.Array))):
                raise DataError(f"expression {self.expression!r}: the subscript "
                                f"{ast.get_source_segment(self.expression, element)!r} must give an integer, a mask "
                                f"or an index array, got {type(item).__name__}.")
            index.append(item)
        return value[tuple(index) if isinstance(node.slice, ast.Tuple) else index[0]]


def _fields(value: Any) -> list[str]:
    try:
        return list(ak.fields(value))
    except Exception:
        return []


def evaluate(expression: str, namespace: Mapping[str, Any], path: str = "<arrays>") -> Any:
    """Evaluate a checked ``expression`` over the arrays in ``namespace`` (branch name -> array).

    Raises
    ------
    ExpressionError
        The expression is outside the language (nothing is evaluated).
    DataError
        It is in the language but fails on these arrays (names ``path`` and the expression).

    Examples
    --------
    >>> import numpy as np
    >>> from torchsci_physics.expressions import evaluate
    >>> evaluate("where(x > 1, log(x), -1.0)", {"x": np.array([0.5, np.e])}).tolist()
    [-1.0, 1.0]
    """
    tree = check(expression)
    try:
        return _Evaluator(expression.strip(), namespace).value(tree.body)
    except ExpressionError as exc:
        if str(exc).startswith("expression "):
            raise
        raise ExpressionError(f"expression {expression!r}: {exc}") from None
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
    except Exception as exc:  # numpy and awkward raise many kinds for values that do not fit
        raise DataError(f"{path}: expression {expression!r} failed: {type(exc).__name__}: {exc}") from exc


def check_all(expressions: Iterable[str], where: str) -> None:
    """Check every expression of a spec; the error also names ``where`` (e.g. the checkpoint's file)."""
    for expression in expressions:
        try:
            check(expression)
        except ExpressionError as exc:
            raise ExpressionError(f"{where}: {exc}") from None
