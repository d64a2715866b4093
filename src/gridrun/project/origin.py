"""The name a run's project is shown under: ``owner/repo`` of its git remote, else the folder.

Grid showed ``robert-s-lee/argecho`` in its Project column because it cloned from
GitHub. gridrun snapshots a local folder, so it reads the folder's git remote when
there is one (``origin`` first), straight from the repository's config file: no
``git`` binary is needed and nothing is run. Worktrees and submodules (a ``.git``
*file* pointing elsewhere) are followed. A remote that is a local path says nothing
about an owner, so the folder name is used then.
"""

from __future__ import annotations

import re
from pathlib import Path

_SECTION = re.compile(r'^\s*\[\s*remote\s+"([^"]+)"\s*\]\s*$')
_URL = re.compile(r"^\s*url\s*=\s*(.+?)\s*$")
_SCP = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)(.+)$")  # git@github.com:owner/repo.git


def project_label(folder: Path) -> str:
    """``owner/repo`` from the git remote of ``folder`` (or a parent), else its name."""
    folder = folder.absolute()
    url = _remote_url(folder)
    slug = _owner_repo(url) if url else None
    return slug or folder.name


def _git_dir(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            try:
                text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                return None
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:") :].strip())
                return target if target.is_absolute() else (candidate / target).resolve()
            return None
    return None


def _remote_url(folder: Path) -> str | None:
    git_dir = _git_dir(folder)
    if git_dir is None:
        return None
    common = git_dir / "commondir"  # a worktree keeps its config in the main repository
    if common.is_file():
        try:
            git_dir = (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
        except OSError:
            return None
    try:
        lines = (git_dir / "config").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    remotes: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        section = _SECTION.match(line)
        if section:
            current = section.group(1)
            continue
        if line.lstrip().startswith("["):
            current = None
            continue
        url = _URL.match(line)
        if current and url and current not in remotes:
            remotes[current] = url.group(1).strip('"')
    return remotes.get("origin") or next(iter(remotes.values()), None)


def owner_repo(url: str) -> str | None:
    """``owner/repo`` of a remote URL, None for a local path or ``file://``."""
    return _owner_repo(url)


def _owner_repo(url: str) -> str | None:
    """``https://github.com/o/r.git``, ``git@github.com:o/r``, ``ssh://git@h/o/r`` -> ``o/r``."""
    if url.startswith("file://"):
        return None
    scp = _SCP.match(url)
    if scp:
        path = scp.group(1)
    elif "://" in url:
        path = url.split("://", 1)[1].split("/", 1)[1] if "/" in url.split("://", 1)[1] else ""
    else:
        return None  # a local path: no owner to show
    parts = [p for p in path.rstrip("/").split("/") if p]
    if len(parts) < 2:
        return None
    owner, repo = parts[-2], parts[-1]
    repo = repo[: -len(".git")] if repo.endswith(".git") else repo
    return f"{owner}/{repo}" if owner and repo else None


__all__ = ["project_label"]
