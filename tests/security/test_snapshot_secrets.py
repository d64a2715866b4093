"""Reproductions 2 and 4 (snapshot half): secrets in snapshots, world-readable objects,
and a file swapped for a symlink between the walk and the read."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from gridrun.errors import ConfigError, ProjectError
from gridrun.home import GridHome
from gridrun.project import object_path, take_snapshot
from gridrun.project import snapshot as snapshot_mod

SA_KEY = json.dumps(
    {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        "client_email": "x@p.iam.gserviceaccount.com",
    }
)
# The probe's ten secret files, none of them named by an ignore file.
SECRETS = {
    ".env": "API_TOKEN=s3cr3t\n",
    ".env.production": "DB_PASSWORD=hunter2\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",
    ".ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
    ".aws/credentials": "[default]\naws_secret_access_key=abc\n",
    ".netrc": "machine example.com login me password pw\n",
    ".git-credentials": "https://me:token@github.com\n",
    ".pypirc": "[pypi]\npassword = pypi-token\n",
    "keys/gcp-sa.json": SA_KEY,  # a service-account key found by content, not by name
    "server.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
}
MORE_SECRETS = {
    ".npmrc": "//registry.npmjs.org/:_authToken=npm_x\n",
    "certs/tls.key": "k",
    "gcloud-credentials.json": "{}",
    "kubeconfig": "apiVersion: v1\n",
    ".kube/config": "apiVersion: v1\n",
}
HARMLESS = {
    "train.py": "print('hi')\n",
    ".env.example": "API_TOKEN=\n",  # a template, meant to be shared
    "id_rsa.pub": "ssh-ed25519 AAAA me\n",
    "data/config.json": json.dumps({"type": "model", "layers": 3}),
    "environment.py": "x = 1\n",
}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.unit
def test_secrets_never_enter_a_snapshot(tmp_path: Path, home: GridHome) -> None:
    root = _tree(tmp_path / "p", {**SECRETS, **MORE_SECRETS, **HARMLESS})
    snap = take_snapshot(root, home)
    assert snap.paths() == sorted(HARMLESS)
    left_out = {w.split(":", 1)[0] for w in snap.warnings if "looks like a secret" in w}
    expected = {p for p in {**SECRETS, **MORE_SECRETS} if "/" not in p or p.startswith("keys/")}
    expected |= {"certs/tls.key", ".ssh/", ".aws/", ".kube/"}
    assert left_out == expected
    # One line per file, naming it and the way to ship it anyway.
    for w in snap.warnings:
        assert "\n" not in w
    assert any(
        w.startswith(".env: looks like a secret") and "include_secrets" in w for w in snap.warnings
    )
    # No byte of any secret reached the object store.
    stored = b"".join(p.read_bytes() for p in home.objects.rglob("*") if p.is_file())
    for text in {**SECRETS, **MORE_SECRETS}.values():
        if len(text) > 3:
            assert text.encode() not in stored


@pytest.mark.unit
def test_include_secrets_ships_only_what_is_named(tmp_path: Path, home: GridHome) -> None:
    root = _tree(tmp_path / "p", {**SECRETS, **HARMLESS})
    snap = take_snapshot(root, home, include_secrets=[".env", ".ssh", "keys/gcp-sa.json"])
    assert {".env", ".ssh/id_ed25519", "keys/gcp-sa.json"} <= set(snap.paths())
    assert ".env.production" not in snap.files and "server.pem" not in snap.files
    assert not any(w.startswith((".env:", ".ssh/")) for w in snap.warnings)


def test_include_secrets_through_the_cli_config(grid, tmp_path: Path) -> None:
    """``snapshot.include_secrets`` in a run's --config ships that file, and only it, to the
    experiment; every other secret is named in a warning and is not in its working copy."""
    root = _tree(tmp_path / "proj", SECRETS)
    (root / "ls.py").write_text(
        textwrap.dedent(
            """\
            import os
            for d, _, fs in os.walk("."):
                for f in fs:
                    print("FILE", os.path.relpath(os.path.join(d, f)))
            """
        )
    )
    (root / "grid.yaml").write_text("snapshot:\n  include_secrets: [.env]\n")
    out = grid("run", "--config", "grid.yaml", "--name", "sec-run", "--follow", "ls.py", cwd=root)
    shipped = {
        line.split("FILE ", 1)[1].strip() for line in out.stdout.splitlines() if "FILE " in line
    }
    assert ".env" in shipped and "ls.py" in shipped
    assert not shipped & (set(SECRETS) - {".env"})
    err = " ".join(out.stderr.split())
    for rel in set(SECRETS) - {".env", ".ssh/id_ed25519", ".aws/credentials"}:
        assert f"{rel}: looks like a secret" in err, rel
    assert ".ssh/: looks like a secret" in err and ".aws/: looks like a secret" in err


@pytest.mark.unit
def test_bad_include_secrets_is_a_config_error(tmp_path: Path) -> None:
    from gridrun.config import load_run_config

    path = tmp_path / "c.yaml"
    path.write_text("snapshot:\n  include_secret: [.env]\n")
    with pytest.raises(ConfigError, match="Valid keys: include_secrets"):
        load_run_config(path)
    path.write_text("snapshot:\n  include_secrets: {a: 1}\n")
    with pytest.raises(ConfigError, match="must be a list of paths"):
        load_run_config(path)


@pytest.mark.unit
def test_objects_and_folders_are_owner_only(tmp_path: Path, home: GridHome) -> None:
    root = _tree(tmp_path / "p", {"train.py": "x", "weights.bin": "w"})
    (root / "weights.bin").chmod(0o644)
    snap = take_snapshot(root, home)
    for entry in snap.files.values():
        assert stat.S_IMODE(object_path(home.objects, entry.sha256).stat().st_mode) == 0o400
    assert stat.S_IMODE(home.root.stat().st_mode) == 0o700
    for sub in ("objects", "snapshots", "envs", "runs", "experiments", "datastores"):
        assert stat.S_IMODE((home.root / sub).stat().st_mode) == 0o700


@pytest.mark.unit
def test_an_existing_open_grid_home_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "gh"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    GridHome(root).ensure()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_nobody_cannot_read_a_private_key_from_grid_home(nobody) -> None:
    """The probe's unprivileged user read a 0600 key from GRID_HOME/objects, even after
    ``grid delete``. Now the folder is 0700 and the object 0400, owned by root."""
    home = GridHome(nobody.base / "home").ensure()
    project = _tree(nobody.base / "proj", {"deploy_key.txt": "-----BEGIN KEY----- top secret"})
    (project / "deploy_key.txt").chmod(0o600)
    snap = take_snapshot(project, home)
    obj = object_path(home.objects, snap.files["deploy_key.txt"].sha256)
    code = (
        "import sys, os\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        open(p, 'rb').read(); print('READ', p)\n"
        "    except OSError as exc:\n"
        "        print('DENIED', exc.errno)\n"
        "try:\n"
        "    os.listdir(sys.argv[2]); print('LISTED')\n"
        "except OSError:\n"
        "    print('NOLIST')\n"
    )
    proc = nobody.run(code, str(obj), str(home.objects))
    assert proc.returncode == 0, proc.stderr
    assert "READ" not in proc.stdout and "LISTED" not in proc.stdout
    assert proc.stdout.count("DENIED") == 2
    # The same object with the old mode and an open folder *would* have been readable:
    # the test can fail.
    home.root.chmod(0o755)
    home.objects.chmod(0o755)
    obj.parent.chmod(0o755)
    obj.chmod(0o444)
    assert "READ" in nobody.run(code, str(obj), str(home.objects)).stdout


@pytest.mark.unit
@pytest.mark.parametrize("swap", ["symlink", "other-file", "folder-symlink"])
def test_file_swapped_after_the_walk_is_refused(
    swap: str, tmp_path: Path, home: GridHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproduction 4 for snapshots: the file is replaced between the walk and the read."""
    outside = tmp_path / "shadow"
    outside.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    root = _tree(tmp_path / "p", {"train.py": "x", "data/notes.txt": "harmless"})
    walk_run = snapshot_mod._Walk.run

    def run_then_swap(self: snapshot_mod._Walk) -> None:
        walk_run(self)
        target = root / "data" / "notes.txt"
        target.unlink()
        if swap == "symlink":
            target.symlink_to(outside)
        elif swap == "other-file":  # another inode renamed into its place
            os.link(outside, tmp_path / "hardlink")
            os.replace(tmp_path / "hardlink", target)
        else:  # the folder on the way becomes a symlink to one holding the same name
            (root / "data").rmdir()
            decoy = tmp_path / "decoy"
            decoy.mkdir()
            os.link(outside, decoy / "notes.txt")
            (root / "data").symlink_to(decoy)

    monkeypatch.setattr(snapshot_mod._Walk, "run", run_then_swap)
    before = sorted(p.name for p in home.objects.rglob("*"))
    with pytest.raises(ProjectError) as info:
        take_snapshot(root, home)
    assert "data/notes.txt changed while the snapshot was taken" in info.value.message
    assert "\n" not in str(info.value)
    stored = [p for p in home.objects.rglob("*") if p.is_file()]
    assert not any(b"secret-hash" in p.read_bytes() for p in stored)
    # Nothing half-taken stays behind: the objects this snapshot added are gone again.
    assert sorted(p.name for p in home.objects.rglob("*")) == before
