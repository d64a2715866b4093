"""Recognise sweep syntax in one argument value, without ``eval``.

Three outcomes for a value:

- it is a sweep (a list literal or a known sweep function call): a ``Dimension``;
- it is plainly not a sweep (a path, ``1e-3``, ``foo(1, 2)``): ``None``, passed through;
- it was meant as a sweep but is malformed: ``ValueProblem``.

Lists are read by a small tokenizer rather than ``ast.literal_eval`` because the values
must reach the script *as written*: ``[1e-3, 0.10]`` gives ``1e-3`` and ``0.10``, not
``0.001`` and ``0.1``, and bare words (``[pizza, hotdog]``) need no quotes. Quoted
elements are unescaped with ``ast.literal_eval`` on the string literal alone, which
evaluates nothing.

The line between "malformed sweep" and "not a sweep" for text starting with ``[``:
a comma means the user wrote a list, so any defect is an error (``[1, 2`` is an
unclosed list); without a comma, text that does not parse passes through unchanged
(``[not closed``, ``[a] [b]``, ``[]``), because it is more likely a pattern than a
list, while text that does parse is a one-value list (``[32]`` gives ``32``).
"""

from __future__ import annotations

import re

from gridrun.sweep.functions import FUNCTION_NAMES, Dimension, Finite, Number, ValueProblem, build

_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_OPEN = "[({"
_CLOSE = {"]": "[", ")": "(", "}": "{"}


def parse_value(value: str) -> Dimension | None:
    """The sweep dimension ``value`` describes, ``None`` when it is not a sweep."""
    text = value.strip()
    if text.startswith("["):
        if "," not in text:
            try:
                return Finite(tuple(parse_list(text)))
            except ValueProblem:
                return None
        return Finite(tuple(parse_list(text)))
    match = _CALL.match(text)
    if match and match.group(1) in FUNCTION_NAMES:
        return _parse_call(match.group(1), text[match.end() :])
    return None


def parse_list(text: str) -> list[str]:
    """Elements of the list literal ``text`` (starting with ``[``), rendered as written."""
    items: list[str] = []
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
    start, stack = i, []
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


def _parse_call(name: str, rest: str) -> Dimension:
    """``rest`` is everything after ``name(``."""
    rest = rest.rstrip()
    if not rest.endswith(")"):
        raise ValueProblem(f"unclosed call (expected ')' to end {name}(...))")
    inner = rest[:-1]
    if any(ch in inner for ch in "()[]{}"):
        raise ValueProblem(f"{name}() arguments must be plain numbers")
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
    raise ValueProblem(f"{name}() argument {position} is not a number: {text!r}")
