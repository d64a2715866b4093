"""Code from a git repository at one commit, as Grid's GitHub integration ran it.

``grid run --repo URL --ref REF path/in/repo.py`` (or a GitHub file link as the
script) resolves REF to a full commit, fetches that commit alone where the server
allows it (``git fetch --depth 1 URL SHA``; servers that refuse unadvertised objects
get the branches and tags instead), and unpacks its tree once into
``GRID_HOME/cache/repos/<url key>/trees/<sha>``. The snapshot is then taken from that
tree with the usual ignore rules, so a sweep or a re-run of the same commit fetches
nothing and stores nothing twice.

Credentials stay the user's: git's own credential helpers and ``~/.ssh`` work as they
do for ``git clone``, and ``GIT_TOKEN`` is handed to git for HTTPS through
``GIT_CONFIG_*`` environment variables (never on a command line, where other users
could read it, and never written anywhere). URLs are shown without any user or
password they carry.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from gridrun.errors import ProjectError
from gridrun.fsutil import file_lock
from gridrun.home import GridHome

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_GITHUB_FILE = re.compile(r"^https://github\.com/([^/]+)/([^/]+)/blob/([^/]+)/(.+)$")
TIMEOUT = 600  # seconds for one git command: a big repository on a slow link


@dataclass(frozen=True)
class Checkout:
    """A repository's tree at one commit, ready to snapshot."""

    url: str  # as shown: no credentials
    commit: str
    tree: Path
    fetched: bool  # False when the tree was already in the cache

    @property
    def label(self) -> str:
        return f"{self.url}@{self.commit[:12]}"


def github_file_link(script: str) -> tuple[str, str, str] | None:
    """``(url, ref, path)`` of ``https://github.com/OWNER/REPO/blob/REF/path.py``."""
    found = _GITHUB_FILE.match(script)
    if not found:
        return None
    owner, repo, ref, path = found.groups()
    return f"https://github.com/{owner}/{repo}.git", ref, path


def shown_url(url: str) -> str:
    """The URL without a user or password in it (``https://tok@host/r`` -> ``https://host/r``)."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=host))
    return url


def _git_env() -> dict[str, str]:
    """git's environment: never prompts (a run must not hang on a password), and a
    ``GIT_TOKEN`` becomes an HTTP authorization header git sends, not an argument."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false")
    token = os.environ.get("GIT_TOKEN")
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        env[f"GIT_CONFIG_KEY_{count}"] = "http.extraHeader"
        env[f"GIT_CONFIG_VALUE_{count}"] = f"Authorization: Basic {basic}"
        env["GIT_CONFIG_COUNT"] = str(count + 1)
    return env


def _git(
    args: list[str], git_dir: Path | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    cmd = ["git", *(["--git-dir", str(git_dir)] if git_dir else []), *args]
    try:
        return subprocess.run(
            cmd, env=_git_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise ProjectError("git is not installed.", hint="Install git to run from a repository.")
    except subprocess.TimeoutExpired:
        raise ProjectError(f"git {args[0]} took more than {timeout:g} s.") from None


def _why(stderr: str, url: str) -> str:
    """git's complaint as one line naming the cause, without any credentials: its first
    fatal line and what follows it (``errno=Connection refused``)."""
    text = stderr.replace(url, shown_url(url))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = next(
        (i for i, ln in enumerate(lines) if ln.lower().startswith(("fatal:", "error:"))), None
    )
    picked = lines[first:] if first is not None else lines[-1:]
    picked = [ln.removeprefix("fatal: ").removeprefix("error: ") for ln in picked]
    line = "; ".join(dict.fromkeys(picked)) or "no reason given"
    return line if len(line) <= 240 else line[:237] + "..."


def _raise_unreachable(url: str, stderr: str) -> None:
    why = _why(stderr, url)
    low = why.lower()
    if ("not found" in low and "repository" in low) or "does not appear to be a git" in low:
        raise ProjectError(f"{shown_url(url)} is not a git repository ({why}).")
    if "authentication" in low or "could not read username" in low or "403" in low:
        raise ProjectError(
            f"{shown_url(url)} refused access ({why}).",
            hint="Set GIT_TOKEN for HTTPS, or use an SSH URL with your ~/.ssh key.",
        )
    raise ProjectError(f"Cannot fetch from {shown_url(url)} ({why}).")


def resolve_ref(url: str, ref: str | None) -> str:
    """The full commit ``ref`` names on the server (HEAD when none)."""
    if ref and _FULL_SHA.match(ref.lower()):
        return ref.lower()
    want = ref or "HEAD"
    out = _git(["ls-remote", url, want, f"refs/tags/{want}^{{}}"])
    if out.returncode != 0:
        _raise_unreachable(url, out.stderr)
    found: dict[str, str] = {}
    for line in out.stdout.splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    # A peeled tag (its commit) first, then the exact name, a branch, a tag.
    for name in (f"refs/tags/{want}^{{}}", want, f"refs/heads/{want}", f"refs/tags/{want}"):
        if name in found:
            return found[name]
    if ref and re.fullmatch(r"[0-9a-f]{7,39}", ref.lower()):
        return ref.lower()  # an abbreviated commit: resolved after a full fetch
    raise ProjectError(
        f"No branch, tag or commit '{want}' in {shown_url(url)}.",
        hint="Pass --ref with a branch, a tag or a full commit SHA.",
    )


def _repo_dir(cache: Path, url: str) -> Path:
    key = hashlib.sha256(shown_url(url).encode()).hexdigest()[:16]
    return cache / key


def _fetch(git_dir: Path, url: str, commit: str, timeout: float = TIMEOUT) -> str:
    """Fetch ``commit`` (or a prefix of one) into the bare cache; returns the full SHA."""
    if _git(["cat-file", "-e", f"{commit}^{{commit}}"], git_dir).returncode != 0:
        exact = _git(["fetch", "--quiet", "--depth", "1", url, commit], git_dir, timeout)
        if exact.returncode != 0:
            # The server refuses an unadvertised object (or the SHA is abbreviated):
            # take its branches and tags, which hold every reachable commit.
            every = _git(
                [
                    "fetch",
                    "--quiet",
                    url,
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                git_dir,
                timeout,
            )
            if every.returncode != 0:
                _raise_unreachable(url, every.stderr)
    full = _git(["rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], git_dir)
    if full.returncode != 0:
        raise ProjectError(
            f"No commit '{commit}' in {shown_url(url)}.",
            hint="Check the SHA, or pass a branch or tag with --ref.",
        )
    return full.stdout.strip()


def checkout(home: GridHome, url: str, ref: str | None) -> Checkout:
    """The tree of ``url`` at ``ref``, from the cache or fetched once (see module doc)."""
    return checkout_in(home.cache / "repos", url, ref)


def checkout_in(cache: Path, url: str, ref: str | None, timeout: float = TIMEOUT) -> Checkout:
    """:func:`checkout` into any cache folder: a Ray or Slurm node keeps its own
    (:mod:`gridrun.project.refetch`), with a shorter ``timeout`` since it has the
    run's snapshot to fall back on."""
    commit = resolve_ref(url, ref)
    root = _repo_dir(cache, url)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with file_lock(root / "lock"):
        if _FULL_SHA.match(commit) and (root / "trees" / commit).is_dir():
            os.utime(root / "trees" / commit)  # in use: `grid gc` keeps what was used lately
            return Checkout(shown_url(url), commit, root / "trees" / commit, fetched=False)
        git_dir = root / "git"
        if not (git_dir / "HEAD").is_file():
            init = _git(["init", "--quiet", "--bare", str(git_dir)])
            if init.returncode != 0:
                raise ProjectError(f"Cannot make a repository cache ({_why(init.stderr, url)}).")
        commit = _fetch(git_dir, url, commit, timeout)
        tree = root / "trees" / commit
        if not tree.is_dir():
            _unpack(git_dir, commit, tree)
        return Checkout(shown_url(url), commit, tree, fetched=True)


def _unpack(git_dir: Path, commit: str, tree: Path) -> None:
    """``git archive`` of the commit, unpacked beside and renamed into place."""
    tree.parent.mkdir(mode=0o700, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=tree.parent))
    try:
        archive = subprocess.Popen(
            ["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_git_env(),
        )
        unpack = subprocess.run(
            ["tar", "-x", "-C", str(staging)],
            stdin=archive.stdout,
            capture_output=True,
            check=False,
        )
        assert archive.stdout is not None and archive.stderr is not None
        archive.stdout.close()
        err = archive.stderr.read().decode(errors="replace")
        archive.stderr.close()
        if archive.wait() != 0 or unpack.returncode != 0:
            raise ProjectError(f"Cannot unpack commit {commit[:12]} ({err.strip() or 'tar'}).")
        os.rename(staging, tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
