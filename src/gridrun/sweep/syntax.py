r"""Recognise sweep syntax in one argument value, without ``eval``.

Three outcomes for a value:

- it is a sweep (a list literal or a known sweep function call): a ``Dimension``;
- it is plainly not a sweep (a path, ``1e-3``, ``foo(1, 2)``): ``None``, passed through;
- it was meant as a sweep but is malformed: ``ValueProblem``.

Lists are read by a small tokenizer rather than ``ast.literal_eval`` because the values
must reach the script *as written*: ``[1e-3, 0.10]`` gives ``1e-3`` and ``0.10``, not
``0.001`` and ``0.1``, and bare words (``[pizza, hotdog]``) need no quotes. Quoted
elements are unescaped with ``ast.literal_eval`` on the string literal alone, which
evaluates nothing.

The line between "malformed sweep" and "not a sweep" is drawn so that a typo never
becomes one experiment whose argument is the literal text, failing later inside the
script:

- text in ``[...]`` must be a list: ``[]``, ``[0.1 0.01]`` (no comma) and ``[a] [b]``
  are errors; ``[32]`` is a one-value list;
- text starting with ``[`` with a comma, or with unbalanced brackets (``[1, 2``,
  ``[[1]``), is an error; balanced text that merely starts with a bracket class
  (``[abc]*.txt``) passes through;
- ``{...}`` is an error: a dict is no sweep;
- a call of a sweep function must parse (``range(1, 10``, ``uniform(0, 1)``), and a
  near-miss of one (``rnage(1, 5)``) is an error naming the function meant.

A value that should reach the script literally is escaped with one leading backslash:
``--pattern '\[a-z]+'`` passes ``[a-z]+`` (``unescape``); ``\\[`` gives ``\[``.
"""

from __future__ import annotations

import difflib
import re

from gridrun.sweep.functions import FUNCTION_NAMES, Dimension, Finite, Number, ValueProblem, build

_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_OPEN = "[({"
_CLOSE = {"]": "[", ")": "(", "}": "{"}


_CALL_LIKE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(.*\)\s*\Z", re.DOTALL)
_PLAIN_WORDS = re.compile(r"[^\s\[\]{}()'\"]+(?:\s+[^\s\[\]{}()'\"]+)+\Z")


def unescape(value: str) -> str | None:
    """The literal text of a backslash-escaped value, ``None`` when not escaped."""
    if not value.startswith("\\"):
        return None
    rest = value[1:]
    core = rest.lstrip("\\")  # \\[ gives \[: escaping the escape, for that one case
    if core[:1] in ("[", "{") or _CALL.match(core):
        return rest
    return None


def parse_value(value: str) -> Dimension | None:
    """The sweep dimension ``value`` describes, ``None`` when it is not a sweep."""
    if unescape(value) is not None:
        return None
    text = value.strip()
    if text.startswith("["):
        if text.endswith("]") or "," in text or not _balanced(text):
            return Finite(tuple(parse_list(text)))
        return None  # a pattern such as [abc]*.txt
    if text.startswith("{") and text.endswith("}"):
        raise ValueProblem("a dict is not a sweep value; sweep a list such as [1, 2]")
    if text.startswith("{") and not _balanced(text):
        raise ValueProblem("unbalanced braces")
    match = _CALL.match(text)
    if match and match.group(1) in FUNCTION_NAMES:
        return _parse_call(match.group(1), text[match.end() :])
    call = _CALL_LIKE.match(text)
    if call:
        meant = difflib.get_close_matches(call.group(1), sorted(FUNCTION_NAMES), n=1, cutoff=0.8)
        if meant:
            raise ValueProblem(f"unknown sweep function {call.group(1)}() (not {meant[0]}())")
    return None


def _balanced(text: str) -> bool:
    return all(text.count(o) == text.count(c) for c, o in _CLOSE.items())


def parse_list(text: str) -> list[str]:
    """Elements of the list literal ``text`` (starting with ``[``), rendered as written."""
    items: list[str] = []
    bare: list[str] = []
    i, n = 1, len(text)
    while True:
        i = _skip_space(text, i)
        if i >= n:
            raise ValueProblem("unclosed list (expected ']')")
        if text[i] == "]":
            if not items:
                raise ValueProblem("empty list; give at least one value")
            break
        if text[i] == ",":
            raise ValueProblem(f"empty element at position {len(items) + 1}")
        if text[i] in "'\"":
            item, i = _quoted(text, i)
        else:
            item, i = _bare(text, i)
            bare.append(item)
        items.append(item)
        i = _skip_space(text, i)
        if i >= n:
            raise ValueProblem("unclosed list (expected ']')")
        if text[i] == "]":
            break
        if text[i] != ",":
            raise ValueProblem(f"unexpected {text[i]!r} after element {len(items)}")
        i += 1
    if i != n - 1:
        raise ValueProblem(f"unexpected text after the closing ']': {text[i + 1 :]!r}")
    for item in bare:
        _check_commas(item, only=len(items) == 1)
    return items


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """Index of the quote closing the string literal that opens at ``text[i]``."""
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j
        j += 1
    raise ValueProblem(f"unterminated string starting at {text[i:]!r}")


def _quoted(text: str, i: int) -> tuple[str, int]:
    import ast  # lazily: only quoted list elements need unescaping

    end = _string_end(text, i)
    try:
        value = ast.literal_eval(text[i : end + 1])
    except (ValueError, SyntaxError) as exc:
        raise ValueProblem(f"invalid string {text[i : end + 1]}") from exc
    return str(value), end + 1


def _bare(text: str, i: int) -> tuple[str, int]:
    """A bare element: up to a top-level ``,`` or ``]``; nested brackets kept as written."""
    start, stack = i, list[str]()
    while i < len(text):
        ch = text[i]
        if stack and ch in "'\"":
            i = _string_end(text, i) + 1
            continue
        if ch in _OPEN:
            stack.append(ch)
        elif ch in _CLOSE:
            if not stack:
                if ch == "]":
                    break
                raise ValueProblem(f"unbalanced {ch!r} in element {text[start : i + 1]!r}")
            if stack.pop() != _CLOSE[ch]:
                raise ValueProblem(f"mismatched {ch!r} in element {text[start : i + 1]!r}")
        elif ch == "," and not stack:
            break
        i += 1
    if stack:
        raise ValueProblem("unclosed list (expected ']')")
    return text[start:i].strip(), i


def _check_commas(item: str, only: bool) -> None:
    """``[0.1 0.01]`` is two values with the comma forgotten, not one value with a space.

    Bare words with spaces are kept where the commas show the user meant them
    (``[hot dog, pizza]``); numbers separated by spaces never are.
    """
    if not _PLAIN_WORDS.match(item):
        return
    words = item.split()
    if only or all(_FLOAT.match(w) for w in words):
        raise ValueProblem(
            f"missing comma between {words[0]!r} and {words[1]!r}; write "
            f"[{', '.join(words)}], or quote a value that has spaces"
        )


def _parse_call(name: str, rest: str) -> Dimension:
    """``rest`` is everything after ``name(``."""
    rest = rest.rstrip()
    if not rest.endswith(")"):
        raise ValueProblem(f"unclosed call (expected ')' to end {name}(...))")
    inner = rest[:-1]
    if any(ch in inner for ch in "()[]{}"):
        raise ValueProblem(f"{name}() arguments must be numbers (10**6 and 1e-3 work)")
    parts = [p.strip() for p in inner.split(",")]
    if parts == [""]:
        parts = []
    elif len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing comma, as Python allows
    args: list[Number] = []
    for position, part in enumerate(parts, start=1):
        if not part:
            raise ValueProblem(f"{name}() argument {position} is empty")
        if "=" in part:
            raise ValueProblem(
                f"{name}() takes positional arguments only, got {part!r}; give the values in order"
            )
        args.append(_number(name, position, part))
    return build(name, args)


def _number(name: str, position: int, text: str) -> Number:
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    value = _arithmetic(text)
    if value is None:
        raise ValueProblem(f"{name}() argument {position} is not a number: {text!r}")
    return value


def _arithmetic(text: str) -> Number | None:
    """``10**12``, ``2*3``, ``1/8``: constant arithmetic, evaluated on the syntax tree only.

    Exponents are bounded so that no value (``9**9**9``) can take long to compute.
    """
    import ast
    import operator

    ops = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod,
        ast.Pow: operator.pow,
    }

    def value(node: ast.AST) -> Number:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            if isinstance(node.value, bool):
                raise ValueError("not a number")
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            operand = value(node.operand)
            return operand if isinstance(node.op, ast.UAdd) else -operand
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 128 or abs(left) > 10**6):
                raise ValueError("exponent too large")
            return ops[type(node.op)](left, right)  # type: ignore[no-any-return]
        raise ValueError("not arithmetic")

    try:
        result = value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return result if isinstance(result, (int, float)) else None
