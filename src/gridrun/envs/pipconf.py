"""The user's pip configuration, read the way pip reads it, and turned into uv settings.

Why: uv ignores ``pip.conf`` and ``PIP_*`` variables. A user whose ``pip install``
works (a private index, a CA bundle, a constraints file) expects ``grid run`` to
install the same things, so we read that configuration ourselves, without spawning
pip, and hand it to uv as environment variables.

pip's rules, reproduced here (pip 23-25, ``pip/_internal/configuration.py``):

* files, later overriding earlier: global (``$XDG_CONFIG_DIRS/pip/pip.conf``, default
  ``/etc/xdg/pip/pip.conf``, then ``/etc/pip.conf``), user (``~/.pip/pip.conf``, then
  ``$XDG_CONFIG_HOME/pip/pip.conf``), site (``$VIRTUAL_ENV/pip.conf``, else
  ``sys.prefix``), then ``PIP_CONFIG_FILE``. User files are skipped when
  ``PIP_CONFIG_FILE`` names an existing file; ``PIP_CONFIG_FILE=os.devnull`` skips all.
* sections: ``[install]`` overrides ``[global]``; ``PIP_*`` variables override both.
* keys are case-insensitive, ``_`` equals ``-``; list options split on whitespace and
  a later value replaces an earlier list (no merging); booleans use ``strtobool``.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from gridrun.errors import ConfigError

PYPI = "https://pypi.org/simple"
SECTIONS = ("global", "install")  # pip's override order for the install command
_LIST_KEYS = {
    "extra-index-url": "extra_index_urls",
    "find-links": "find_links",
    "trusted-host": "trusted_hosts",
    "constraint": "constraints",
}
_SCALAR_KEYS = {
    "index-url": "index_url",
    "cert": "cert",
    "client-cert": "client_cert",
    "no-index": "no_index",
    "timeout": "timeout",
    "default-timeout": "timeout",
    "proxy": "proxy",
}
_TRUE = {"y", "yes", "t", "true", "on", "1"}
_FALSE = {"n", "no", "f", "false", "off", "0"}

Note = Callable[[str], None]


@dataclass(frozen=True)
class PipConfig:
    """The settings of ``pip install`` that matter to building an environment.

    ``index_url`` None means pip's default (PyPI). Local paths are made absolute when
    read, so the result does not depend on the directory it is later used from.
    """

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None
    client_cert: str | None = None
    constraints: tuple[str, ...] = ()
    no_index: bool = False
    timeout: float | None = None
    proxy: str | None = None
    no_proxy: str | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)  # files that were read

    # ------------------------------------------------------------ missing entries
    def missing(self) -> list[str]:
        """One note per configured location that is not on this machine's disk."""
        notes = []
        for what, value in self._locations():
            if not _exists(value):
                notes.append(f"pip config: {what} {value} does not exist; ignoring it.")
        return notes

    def effective(self) -> PipConfig:
        """This configuration without the local entries that do not exist.

        A missing find-links folder or ``file://`` index would make uv fail (or, for
        a cert, refuse every connection); pip users with a stale entry expect the
        rest of their configuration to keep working.
        """

        def keep(v: str | None) -> str | None:
            return v if v is None or _exists(v) else None

        def keep_all(vs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(v for v in vs if _exists(v))

        return replace(
            self,
            index_url=keep(self.index_url),
            extra_index_urls=keep_all(self.extra_index_urls),
            find_links=keep_all(self.find_links),
            cert=keep(self.cert),
            client_cert=keep(self.client_cert),
            constraints=keep_all(self.constraints),
        )

    def _locations(self) -> list[tuple[str, str]]:
        out = [("index-url", self.index_url)] if self.index_url else []
        out += [("extra-index-url", u) for u in self.extra_index_urls]
        out += [("find-links", u) for u in self.find_links]
        out += [("cert", c) for c in (self.cert, self.client_cert) if c]
        out += [("constraint", c) for c in self.constraints]
        return out

    # ------------------------------------------------------------------- for uv
    def uv_env(self, note: Note | None = None) -> dict[str, str]:
        """Environment variables that make ``uv pip install`` honour this configuration.

        Names checked against uv 0.13 (``uv pip install --help``). uv has no variable
        for ``--no-index``, and its list variables cannot hold a constraint path with
        whitespace or a find-links entry with a comma: those go through
        :meth:`uv_args`. ``note`` receives one line per dropped (missing) entry.
        """
        if note:
            for line in self.missing():
                note(line)
        eff = self.effective()
        env: dict[str, str] = {}
        if eff.index_url:
            env["UV_DEFAULT_INDEX"] = eff.index_url
        if eff.extra_index_urls:
            env["UV_EXTRA_INDEX_URL"] = " ".join(eff.extra_index_urls)
            # pip picks the best version across all indexes; uv's default stops at
            # the first index that has the package, which installs different versions.
            if "UV_INDEX_STRATEGY" not in os.environ:
                env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
        links = [f for f in eff.find_links if "," not in f]
        if links:
            env["UV_FIND_LINKS"] = ",".join(links)
        if eff.trusted_hosts:
            env["UV_INSECURE_HOST"] = " ".join(eff.trusted_hosts)
        if eff.cert:
            env["SSL_CERT_FILE"] = eff.cert
        if eff.client_cert:
            env["SSL_CLIENT_CERT"] = eff.client_cert
        constraints = [c for c in eff.constraints if not any(ch.isspace() for ch in c)]
        if constraints:
            env["UV_CONSTRAINT"] = " ".join(constraints)
        if eff.timeout is not None:
            env["UV_HTTP_TIMEOUT"] = str(max(1, math.ceil(eff.timeout)))
        if eff.proxy:
            for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
                env[var] = eff.proxy
        if eff.no_proxy:
            env["NO_PROXY"] = env["no_proxy"] = eff.no_proxy
        return env

    def uv_args(self) -> list[str]:
        """Command-line options for what :meth:`uv_env` cannot carry."""
        eff = self.effective()
        args = ["--no-index"] if eff.no_index else []
        for f in eff.find_links:
            if "," in f:
                args += ["--find-links", f]
        for c in eff.constraints:
            if any(ch.isspace() for ch in c):
                args += ["--constraint", c]
        return args

    # ---------------------------------------------------------------- identity
    def fingerprint(self) -> str:
        """A short stable hash of what changes the installed packages.

        Index URLs, find-links (with the file names a local folder offers) and the
        contents of constraint files; not certs, hosts, timeouts or proxies.
        """
        eff = self.effective()
        data = {
            "index_url": eff.index_url or PYPI,
            "extra_index_urls": list(eff.extra_index_urls),
            "find_links": [[f, _listing(f)] for f in eff.find_links],
            "constraints": [_content_hash(c) for c in eff.constraints],
            "no_index": eff.no_index,
        }
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # ------------------------------------------------------------- for Docker
    def files(self) -> list[Path]:
        """Local files the configuration points at (cert, client cert, constraints)."""
        eff = self.effective()
        found = [eff.cert, eff.client_cert, *eff.constraints]
        return [Path(p) for p in found if p and _local_path(p) is not None]

    def pip_conf_text(self, path_map: Mapping[str, str] | None = None) -> str:
        """A ``pip.conf`` with the same effect, for a Docker build.

        ``path_map`` replaces local file paths (keys as in :meth:`files`, as strings)
        by the paths the build will see them at. pip splits list values on
        whitespace, so a path containing a space cannot be written here: map it.
        """
        eff = self.effective()
        paths = {str(k): v for k, v in (path_map or {}).items()}

        def p(value: str) -> str:
            return paths.get(value, value)

        lines = ["[global]"]

        def put(key: str, values: list[str]) -> None:
            if len(values) == 1:
                lines.append(f"{key} = {values[0]}")
            elif values:
                lines.append(f"{key} =")
                lines.extend(f"    {v}" for v in values)

        if eff.index_url:
            put("index-url", [eff.index_url])
        put("extra-index-url", list(eff.extra_index_urls))
        put("find-links", list(eff.find_links))
        put("trusted-host", list(eff.trusted_hosts))
        if eff.cert:
            put("cert", [p(eff.cert)])
        if eff.client_cert:
            put("client-cert", [p(eff.client_cert)])
        put("constraint", [p(c) for c in eff.constraints])
        if eff.no_index:
            put("no-index", ["true"])
        if eff.timeout is not None:
            put("timeout", [f"{eff.timeout:g}"])
        if eff.proxy:
            put("proxy", [eff.proxy])
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ reading
def config_files(environ: Mapping[str, str] | None = None, etc: Path = Path("/etc")) -> list[Path]:
    """pip's configuration files for ``environ``, lowest priority first.

    ``etc`` is pip's hard-coded ``/etc``; a parameter only so tests can replace it.
    """
    env = os.environ if environ is None else environ
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    xdg_dirs = env.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg"
    files = [
        Path(os.path.expanduser(d)) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d
    ]
    files.append(etc / "pip.conf")
    if not (env_file and os.path.exists(env_file)):
        xdg_home = env.get("XDG_CONFIG_HOME", "").strip() or str(home / ".config")
        files += [home / ".pip" / "pip.conf", Path(xdg_home) / "pip" / "pip.conf"]
    files.append(Path(env.get("VIRTUAL_ENV") or sys.prefix) / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


def load_pip_config(
    environ: Mapping[str, str] | None = None,
    *,
    etc: Path = Path("/etc"),
    cwd: Path | None = None,
) -> PipConfig:
    """Read the configuration ``pip install`` would use in ``environ`` (default: ours).

    Raises :class:`ConfigError` for a file pip itself could not parse, or a value
    it would reject (a non-boolean ``no-index``, a non-numeric timeout).
    """
    env = os.environ if environ is None else environ
    base = cwd or Path.cwd()
    merged: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    read: list[str] = []
    for path in config_files(env, etc):
        if not path.is_file():
            continue
        for section, key, value in _parse_file(path):
            if section in merged:
                merged[section][key] = value
        read.append(str(path))
    values: dict[str, tuple[str, str]] = {}  # field -> (raw value, where it came from)
    for section in SECTIONS:
        for key, value in merged[section].items():
            _assign(values, key, value, f"[{section}] {key}")
    for name, value in env.items():
        if name.startswith("PIP_"):
            _assign(values, _normalize(name[4:]), value, name)
    return _build(values, env, base, tuple(read))


def _parse_file(path: Path) -> list[tuple[str, str, str]]:
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh, source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"pip configuration file {path} cannot be parsed: {first}",
            hint="Fix or remove it (pip cannot read it either).",
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"pip configuration file {path} cannot be read ({exc.strerror or exc})."
        ) from exc
    return [(s, _normalize(k), v) for s in parser.sections() for k, v in parser.items(s)]


def _normalize(key: str) -> str:
    key = key.lower().replace("_", "-")
    return key[2:] if key.startswith("--") else key


def _assign(values: dict[str, tuple[str, str]], key: str, value: str, origin: str) -> None:
    dest = _LIST_KEYS.get(key) or _SCALAR_KEYS.get(key)
    if dest:
        values[dest] = (value, origin)


def _build(
    values: dict[str, tuple[str, str]], env: Mapping[str, str], base: Path, read: tuple[str, ...]
) -> PipConfig:
    def get(name: str) -> str | None:
        return values[name][0] if name in values else None

    def listed(name: str) -> tuple[str, ...]:
        return tuple(values[name][0].split()) if name in values else ()

    no_index = False
    if "no_index" in values:
        raw, origin = values["no_index"]
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise ConfigError(
                f"pip setting {origin} = {raw!r} is not a boolean.",
                hint="Use true or false.",
            )
        no_index = raw.strip().lower() in _TRUE
    timeout = None
    if "timeout" in values:
        raw, origin = values["timeout"]
        try:
            timeout = float(raw)
        except ValueError:
            raise ConfigError(
                f"pip setting {origin} = {raw!r} is not a number of seconds."
            ) from None

    cert = get("cert") or _first(env, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
    proxy = get("proxy") or _first(env, "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
    return PipConfig(
        index_url=get("index_url") or None,
        extra_index_urls=listed("extra_index_urls"),
        find_links=tuple(_absolute(f, base) for f in listed("find_links")),
        trusted_hosts=listed("trusted_hosts"),
        cert=_absolute(cert, base) if cert else None,
        client_cert=_absolute(c, base) if (c := get("client_cert")) else None,
        constraints=tuple(_absolute(c, base) for c in listed("constraints")),
        no_index=no_index,
        timeout=timeout,
        proxy=proxy or None,
        no_proxy=_first(env, "NO_PROXY", "no_proxy"),
        sources=read,
    )


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if env.get(name):
            return env[name]
    return None


# ------------------------------------------------------------------ locations
def _is_url(value: str) -> bool:
    scheme = urlparse(value).scheme
    return len(scheme) > 1  # "c:" is a Windows drive, not a scheme


def _local_path(value: str) -> Path | None:
    """The local path a location names, or None for a remote URL."""
    if value.startswith("file:"):
        return Path(url2pathname(unquote(urlparse(value).path)))
    if _is_url(value):
        return None
    return Path(os.path.expanduser(value))


def _absolute(value: str, base: Path) -> str:
    if value.startswith("file:") or _is_url(value):
        return value
    return str(base / os.path.expanduser(value))


def _exists(value: str) -> bool:
    path = _local_path(value)
    return path is None or path.exists()


def _listing(location: str) -> list[str] | str:
    """What a local find-links entry offers: file names of a folder, or a file's hash."""
    path = _local_path(location)
    if path is None:
        return ""
    if path.is_dir():
        try:
            return sorted(e.name for e in os.scandir(path))
        except OSError:
            return ""
    return _content_hash(location)


def _content_hash(location: str) -> str:
    path = _local_path(location)
    if path is None:
        return location
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return location
