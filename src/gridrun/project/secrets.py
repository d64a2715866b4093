"""The built-in deny-list: files that look like credentials never enter a snapshot.

A snapshot is copied into every experiment's working copy, into Docker build contexts
and image layers, and kept in ``GRID_HOME/objects``; a key or token that slips in is
exposed to every piece of code the run executes and outlives the run. So, on top of
``.gridignore`` / ``.gitignore`` / ``.dockerignore``, these are always left out, each
with a one-line warning naming it (ignore files often forget them: the probe behind
this module found 10 of 10 common secret files shipped from a project without one):

* environment files ``.env``, ``.env.*`` (but not ``.env.example``/``.sample``/
  ``.template``/``.dist``, which are meant to be shared);
* private keys: ``id_rsa``/``id_dsa``/``id_ecdsa``/``id_ed25519`` (not ``.pub``),
  ``*.pem``, ``*.key``, ``*.p12``, ``*.pfx``, ``*.jks``, ``*.keystore``;
* credential folders ``.ssh/``, ``.aws/``, ``.gnupg/``, ``.kube/``, ``.azure/``,
  ``.docker/`` (its ``config.json`` holds registry logins);
* token files ``.netrc``, ``_netrc``, ``.git-credentials``, ``.pypirc``, ``.npmrc``,
  ``.pgpass``, ``.htpasswd``, ``kubeconfig``, ``*credentials*.json``, ``*.tfvars``;
* JSON files that are Google service-account keys (``"type": "service_account"`` with
  a ``"private_key"``), whatever their name: the only check that reads content, and
  only the first 64 KiB of ``.json`` files.

A user who really means to ship one lists it under ``snapshot.include_secrets`` in the
run's ``--config`` YAML or in ``GRID_HOME/config.yaml`` (paths relative to the project
root; a folder entry covers what is inside it).
"""

from __future__ import annotations

import fnmatch
import json
import os

SECRET_DIRS = frozenset({".ssh", ".aws", ".gnupg", ".kube", ".azure", ".docker"})
SECRET_NAMES = frozenset(
    {
        ".env",
        ".netrc",
        "_netrc",
        ".git-credentials",
        ".pypirc",
        ".npmrc",
        ".pgpass",
        ".htpasswd",
        "kubeconfig",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ecdsa_sk",
        "id_ed25519_sk",
    }
)
SECRET_GLOBS = (
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.tfvars",
    "*credentials*.json",
    "kubeconfig*",
)
# Templates of .env files are written to be committed and shared.
SHAREABLE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults")
SNIFF_BYTES = 64 * 1024


def secret_dir(name: str) -> bool:
    """Whether a folder of this name holds credentials (left out with its content)."""
    return name in SECRET_DIRS


def secret_name(name: str) -> bool:
    """Whether a file of this name is a credential, judged by its name alone."""
    if name.endswith(SHAREABLE_SUFFIXES):
        return False
    lower = name.lower()
    if name in SECRET_NAMES or lower in SECRET_NAMES:
        return True
    return any(fnmatch.fnmatchcase(lower, pattern) for pattern in SECRET_GLOBS)


def service_account_key(fd: int, size: int) -> bool:
    """Whether an open ``.json`` file is a cloud service-account key (reads its head)."""
    if size > SNIFF_BYTES:
        return False
    head = os.pread(fd, SNIFF_BYTES, 0)
    if b"private_key" not in head:
        return False
    try:
        doc = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "service_account" and "private_key" in doc


class SecretFilter:
    """Decides, path by path, what the deny-list keeps out and what the user let in."""

    def __init__(self, include: list[str] | None = None) -> None:
        self.include = [p.strip("/") for p in include or [] if p.strip("/")]
        self.left_out: list[str] = []  # relative paths, folders ending in "/"

    def allowed(self, rel: str) -> bool:
        """Whether ``snapshot.include_secrets`` names ``rel`` (or a folder above it)."""
        return any(rel == p or rel.startswith(p + "/") for p in self.include)

    def _inside_allowed(self, rel: str) -> bool:
        """A folder on the way to an included path must be entered, not left out."""
        return any(p.startswith(rel + "/") for p in self.include)

    def denies_dir(self, rel: str, name: str) -> bool:
        if not secret_dir(name) or self.allowed(rel) or self._inside_allowed(rel):
            return False
        self.left_out.append(rel + "/")
        return True

    def denies_file(self, rel: str, name: str) -> bool:
        if not secret_name(name) or self.allowed(rel):
            return False
        self.left_out.append(rel)
        return True

    def denies_content(self, rel: str, name: str, fd: int, size: int) -> bool:
        """The content check, for files that passed the name check (``.json`` only)."""
        if not name.lower().endswith(".json") or self.allowed(rel):
            return False
        if not service_account_key(fd, size):
            return False
        self.left_out.append(rel)
        return True

    def warnings(self) -> list[str]:
        return [
            f"{rel}: looks like a secret and was left out of the snapshot "
            "(list it under snapshot.include_secrets in the config to ship it)."
            for rel in sorted(self.left_out)
        ]
