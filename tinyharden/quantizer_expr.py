"""Quantizer expressions (`quantized_relu(4, 2)`) parsed into a known quantizer and known arguments.

    >>> parse_quantizer("quantized_bits(4, 0, alpha=1)")
    QuantizerExpr(name='quantized_bits', args=(4, 0), kwargs={'alpha': 1})

QKeras evaluates these strings by looking the name up among its module's globals and
splitting the argument list on commas, which drops arguments after a nested call and
resolves names that are not quantizers. Here the string is parsed with Python's `ast`
(never evaluated): the call must name a quantizer in `SIGNATURES`, every argument must
be a literal (number, string, True/False/None) and every keyword a parameter of that
quantizer, with its range checked. Anything else is refused with a one-line error.
No TensorFlow: recipes are checked with this before anything is built.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from tinyharden.errors import UserError

# Parameter names, in positional order, of every quantizer a recipe or a model may name
# (QKeras 0.9's; tests/test_security.py checks them against the classes actually built).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "bernoulli": ("alpha", "temperature", "use_real_sigmoid"),
    "binary": ("use_01", "alpha", "use_stochastic_rounding"),
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha", "use_stochastic_rounding",
                       "scale_axis", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_hswish": ("bits", "integer", "symmetric", "alpha", "use_stochastic_rounding", "scale_axis",
                         "qnoise_factor", "var_name", "use_ste", "use_variables", "relu_shift", "relu_upper_bound"),
    "quantized_po2": ("bits", "max_value", "use_stochastic_rounding", "quadratic_approximation", "log2_rounding",
                      "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope", "use_stochastic_rounding",
                       "relu_upper_bound", "is_quantized_clip", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_relu_po2": ("bits", "max_value", "negative_slope", "use_stochastic_rounding", "quadratic_approximation",
                           "log2_rounding", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_sigmoid": ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding"),
    "quantized_tanh": ("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
    "quantized_ulaw": ("bits", "integer", "symmetric", "u"),
    "stochastic_binary": ("alpha", "temperature", "use_real_sigmoid"),
    "stochastic_ternary": ("alpha", "threshold", "temperature", "use_real_sigmoid", "number_of_unrolls"),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding", "number_of_unrolls"),
}

_MAX_LEN = 200
_ALPHA_WORDS = ("auto", "auto_po2")
# (low, high) inclusive; None = unbounded on that side.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "bits": (1, 32), "integer": (0, 32), "temperature": (1e-6, None), "threshold": (0, None),
    "number_of_unrolls": (1, 100), "negative_slope": (0, 1), "relu_upper_bound": (0, None),
    "max_value": (0, None), "qnoise_factor": (0, 1), "u": (0, None), "relu_shift": (0, None),
}


@dataclass(frozen=True)
class QuantizerExpr:
    name: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def bound(self) -> dict[str, Any]:
        """Every given argument by parameter name."""
        return {**dict(zip(SIGNATURES[self.name], self.args)), **self.kwargs}


def _hint() -> str:
    return "use a quantizer such as quantized_bits(8,0,1), quantized_relu(4,2) or stochastic_ternary(alpha='auto')"


def _literal(node: ast.AST, expr: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)) \
            and not isinstance(node.operand.value, bool):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    raise UserError(f"quantizer '{expr}': argument '{ast.unparse(node)}' is not a literal number, string, "
                    f"True/False or None; {_hint()}")


def _check_value(name: str, param: str, value: Any, expr: str) -> None:
    if param == "alpha":
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0) \
                or value in _ALPHA_WORDS:
            return
        raise UserError(f"quantizer '{expr}': alpha must be a positive number, None, 'auto' or 'auto_po2', got {value!r}")
    if param in _RANGES:
        lo, hi = _RANGES[param]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            span = f"[{lo}, {hi}]" if hi is not None else f"[{lo}, inf)"
            raise UserError(f"quantizer '{expr}': {param} must be a number in {span}, got {value!r}")
    elif param != "var_name" and isinstance(value, str):
        raise UserError(f"quantizer '{expr}': {param} takes a number or True/False, got the string {value!r}")


def parse_quantizer(expr: str) -> QuantizerExpr:
    """The quantizer `expr` names, with its arguments; a one-line `UserError` otherwise."""
    if not isinstance(expr, str) or not expr.strip():
        raise UserError(f"quantizer {expr!r} is empty; {_hint()}")
    if len(expr) > _MAX_LEN:
        raise UserError(f"quantizer expression longer than {_MAX_LEN} characters; {_hint()}")
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        raise UserError(f"quantizer '{expr}' is not an expression such as quantized_bits(8,0,1); {_hint()}") from None
    if isinstance(tree, ast.Name):  # `ternary` alone: the quantizer with its defaults
        tree = ast.Call(func=tree, args=[], keywords=[])
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise UserError(f"quantizer '{expr}' must be one call NAME(ARGS); {_hint()}")
    name = tree.func.id
    if name not in SIGNATURES:
        import difflib

        close = difflib.get_close_matches(name, SIGNATURES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known quantizers: {', '.join(sorted(SIGNATURES))}"
        raise UserError(f"'{name}' in quantizer '{expr}' is not a quantizer; {hint}")
    params = SIGNATURES[name]
    if len(tree.args) > len(params):
        raise UserError(f"quantizer '{expr}': {name} takes at most {len(params)} positional arguments ({', '.join(params)})")
    args = tuple(_literal(a, expr) for a in tree.args)
    kwargs: dict[str, Any] = {}
    for kw in tree.keywords:
        if kw.arg is None or kw.arg not in params:
            raise UserError(f"quantizer '{expr}': {name} has no argument '{kw.arg or '**'}' (it takes {', '.join(params)})")
        if kw.arg in kwargs or params.index(kw.arg) < len(args):
            raise UserError(f"quantizer '{expr}': argument '{kw.arg}' given twice")
        kwargs[kw.arg] = _literal(kw.value, expr)
    parsed = QuantizerExpr(name, args, kwargs)
    for param, value in parsed.bound().items():
        _check_value(name, param, value, expr)
    return parsed


def check_quantizer(expr: str | None) -> str | None:
    """`expr` unchanged if it parses (None, "float" and "none" pass); for pydantic validators."""
    if expr is not None and expr.strip().lower() not in ("float", "none", ""):
        try:
            parse_quantizer(expr)
        except UserError as exc:
            raise ValueError(str(exc)) from None
    return expr
