"""Reading Python 2 source with Python 2: imports of files Python 3 cannot parse.

``print "x"`` or ``except E, e`` make a file unreadable to Python 3's parser, yet the
file is the evidence that the code needs Python 2 and lists what it imports. When a
2.7 interpreter is installed, its own ``ast`` module reads the file; without one, the
file stays skipped as before.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

# Runs under Python 2.7: absolute imports with whether an ImportError handler guards them.
_SCANNER = r"""
import ast, json, sys
tree = ast.parse(open(sys.argv[1], 'rb').read(), sys.argv[1])
found = {}
def add(name, optional):
    if name:
        found[name] = found.get(name, True) and optional
def catches(h):
    if h.type is None:
        return True
    items = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
    for i in items:
        n = getattr(i, 'id', None) or getattr(i, 'attr', None)
        if n in ('ImportError', 'Exception', 'BaseException'):
            return True
    return False
def visit(nodes, optional):
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, optional)
        elif isinstance(node, ast.ImportFrom):
            if not node.level and node.module:
                for a in node.names:
                    add(node.module if a.name == '*' else node.module + '.' + a.name, optional)
        elif isinstance(node, ast.TryExcept):
            guard = any(catches(h) for h in node.handlers)
            visit(node.body, optional or guard)
            for h in node.handlers:
                visit(h.body, optional or catches(h))
            visit(node.orelse, optional)
        else:
            for attr in ('body', 'orelse', 'finalbody'):
                visit(getattr(node, attr, None) or [], optional)
visit(tree.body, False)
print(json.dumps(sorted(found.items())))
"""


def python2_imports(path: Path) -> list[tuple[str, bool]] | None:
    """``(dotted name, optional)`` of a Python 2 file, or None (no 2.7, or not Python 2)."""
    from gridrun.envs.pyselect import python_path

    exe = python_path("2.7")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [str(exe), "-c", _SCANNER, str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        return [(str(n), bool(o)) for n, o in json.loads(proc.stdout)]
    except (ValueError, TypeError):
        return None
