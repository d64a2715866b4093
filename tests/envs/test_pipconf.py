"""Reading pip's configuration: file order, sections, variables, and the uv mapping.

The precedence tests are checked twice: against the rules written down, and against
pip itself (its own option parser, run in a subprocess with the same files and
environment), so a difference from real pip behaviour fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from envhelpers import PipDirs

from gridrun.envs.pipconf import PYPI, PipConfig, config_files, load_pip_config
from gridrun.errors import ConfigError


def load(dirs: PipDirs) -> PipConfig:
    return load_pip_config(etc=dirs.etc)


# ------------------------------------------------------------------ file order
@pytest.mark.unit
def test_files_in_pip_order(pip_dirs: PipDirs) -> None:
    files = config_files(etc=pip_dirs.etc)
    assert files == [
        pip_dirs.xdg_dirs / "pip" / "pip.conf",
        pip_dirs.etc / "pip.conf",
        pip_dirs.home / ".pip" / "pip.conf",
        pip_dirs.xdg_home / "pip" / "pip.conf",
        pip_dirs.site / "pip.conf",
    ]


@pytest.mark.unit
def test_later_files_override_earlier(pip_dirs: PipDirs) -> None:
    order = ["xdg", "etc", "legacy", "user", "site"]
    for i, kind in enumerate(order):
        pip_dirs.write(
            kind, f"[global]\nindex-url = https://{kind}.example/simple\ntimeout = {i}\n"
        )
    assert load(pip_dirs).index_url == "https://site.example/simple"
    assert load(pip_dirs).timeout == 4
    (pip_dirs.site / "pip.conf").unlink()
    assert load(pip_dirs).index_url == "https://user.example/simple"
    (pip_dirs.xdg_home / "pip" / "pip.conf").unlink()
    assert load(pip_dirs).index_url == "https://legacy.example/simple"
    (pip_dirs.home / ".pip" / "pip.conf").unlink()
    assert load(pip_dirs).index_url == "https://etc.example/simple"
    (pip_dirs.etc / "pip.conf").unlink()
    assert load(pip_dirs).index_url == "https://xdg.example/simple"


@pytest.mark.unit
def test_xdg_config_dirs_is_a_search_path(
    pip_dirs: PipDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = tmp_path / "second"
    (second / "pip").mkdir(parents=True)
    (second / "pip" / "pip.conf").write_text("[global]\nfind-links = /second\n")
    pip_dirs.write("xdg", "[global]\nfind-links = /first\ntimeout = 7\n")
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{pip_dirs.xdg_dirs}{os.pathsep}{second}")
    cfg = load(pip_dirs)
    assert cfg.find_links == ("/second",)
    assert cfg.timeout == 7


@pytest.mark.unit
def test_pip_config_file_overrides_and_hides_user_files(
    pip_dirs: PipDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pip_dirs.write("etc", "[global]\ntrusted-host = etc.example\n")
    pip_dirs.write("user", "[global]\nindex-url = https://user.example/simple\n")
    pip_dirs.write("site", "[global]\ntimeout = 9\nproxy = http://site:3128\n")
    env_file = tmp_path / "env.conf"
    env_file.write_text("[global]\nproxy = http://env:3128\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(env_file))
    cfg = load(pip_dirs)
    assert cfg.index_url is None  # the user file is skipped
    assert cfg.trusted_hosts == ("etc.example",)  # global and site files still apply
    assert cfg.timeout == 9
    assert cfg.proxy == "http://env:3128"  # PIP_CONFIG_FILE is read last
    # A PIP_CONFIG_FILE that does not exist hides nothing.
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "absent.conf"))
    assert load(pip_dirs).index_url == "https://user.example/simple"


@pytest.mark.unit
def test_devnull_disables_files_but_not_variables(
    pip_dirs: PipDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    for kind in ("xdg", "etc", "user", "site"):
        pip_dirs.write(kind, "[global]\nindex-url = https://file.example/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_TRUSTED_HOST", "a.example b.example")
    cfg = load(pip_dirs)
    assert cfg.index_url is None
    assert cfg.trusted_hosts == ("a.example", "b.example")
    assert cfg.sources == ()


# ------------------------------------------------------------ sections and keys
@pytest.mark.unit
def test_install_section_beats_global_and_variables_beat_both(
    pip_dirs: PipDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # [install] in a low-priority file still beats [global] in a high-priority one.
    pip_dirs.write("etc", "[install]\nextra-index-url = https://install.example/simple\n")
    pip_dirs.write(
        "user",
        "[global]\nextra-index-url = https://global.example/simple\n"
        "[freeze]\nindex-url = https://ignored.example/simple\n",
    )
    cfg = load(pip_dirs)
    assert cfg.extra_index_urls == ("https://install.example/simple",)
    assert cfg.index_url is None  # other commands' sections do not apply
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://e1.example/simple https://e2.example/simple")
    assert load(pip_dirs).extra_index_urls == (
        "https://e1.example/simple",
        "https://e2.example/simple",
    )


@pytest.mark.unit
def test_keys_are_normalised_and_lists_split_on_whitespace(pip_dirs: PipDirs) -> None:
    pip_dirs.write(
        "user",
        "[GLOBAL]\nindex-url = https://not-a-section-we-read/simple\n"
        "[global]\nExtra_Index_URL =\n    https://a.example/simple\n    https://b.example/simple\n"
        "Trusted_Host = a.example\n  b.example:8080\nNO_INDEX = yes\n",
    )
    cfg = load(pip_dirs)
    assert cfg.index_url is None  # section names are case-sensitive in pip
    assert cfg.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert cfg.trusted_hosts == ("a.example", "b.example:8080")
    assert cfg.no_index is True


@pytest.mark.unit
def test_every_pip_variable(
    pip_dirs: PipDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pip_dirs.write("user", "[global]\nindex-url = https://file.example/simple\ntimeout = 3\n")
    variables = {
        "PIP_INDEX_URL": "https://idx.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://x1.example/simple https://x2.example/simple",
        "PIP_TRUSTED_HOST": "idx.example",
        "PIP_CERT": "certs/ca.pem",
        "PIP_CLIENT_CERT": "/keys/client.pem",
        "PIP_FIND_LINKS": "wheels https://links.example/",
        "PIP_CONSTRAINT": "c1.txt /abs/c2.txt",
        "PIP_NO_INDEX": "off",
        "PIP_DEFAULT_TIMEOUT": "42.5",
        "PIP_PROXY": "http://proxy.example:3128",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    cfg = load(pip_dirs)
    assert cfg == PipConfig(
        index_url="https://idx.example/simple",
        extra_index_urls=("https://x1.example/simple", "https://x2.example/simple"),
        find_links=(str(tmp_path / "wheels"), "https://links.example/"),  # paths made absolute
        trusted_hosts=("idx.example",),
        cert=str(tmp_path / "certs/ca.pem"),
        client_cert="/keys/client.pem",
        constraints=(str(tmp_path / "c1.txt"), "/abs/c2.txt"),
        no_index=False,
        timeout=42.5,
        proxy="http://proxy.example:3128",
    )
    monkeypatch.delenv("PIP_DEFAULT_TIMEOUT")
    monkeypatch.setenv("PIP_TIMEOUT", "11")
    assert load(pip_dirs).timeout == 11


@pytest.mark.unit
def test_standard_tls_and_proxy_variables_are_fallbacks(
    pip_dirs: PipDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/ssl.pem")
    monkeypatch.setenv("HTTP_PROXY", "http://plain:1")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    cfg = load(pip_dirs)
    assert (cfg.cert, cfg.proxy, cfg.no_proxy) == (
        "/ssl.pem",
        "http://plain:1",
        "localhost,.internal",
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:2")
    cfg = load(pip_dirs)
    assert (cfg.cert, cfg.proxy) == ("/requests.pem", "http://secure:2")
    pip_dirs.write("user", "[global]\ncert = /pip.pem\nproxy = http://pip:3\n")
    cfg = load(pip_dirs)
    assert (cfg.cert, cfg.proxy) == ("/pip.pem", "http://pip:3")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[global]\nno-index = maybe\n", "not a boolean"),
        ("[global]\ntimeout = soon\n", "not a number"),
        ("index-url = https://no-section.example\n", "cannot be parsed"),
    ],
)
def test_bad_values_are_config_errors(pip_dirs: PipDirs, text: str, needle: str) -> None:
    path = pip_dirs.write("user", text)
    with pytest.raises(ConfigError) as info:
        load(pip_dirs)
    assert needle in info.value.message
    if needle == "cannot be parsed":
        assert str(path) in info.value.message


# -------------------------------------------------------------- against real pip
_PIP_ORACLE = """
import json
from pip._internal.commands import create_command
o, _ = create_command("install").parse_args([])
print(json.dumps({k: getattr(o, k) for k in (
    "index_url", "extra_index_urls", "find_links", "trusted_hosts", "cert", "client_cert",
    "constraints", "no_index", "timeout", "proxy")}))
"""


def pip_view() -> dict[str, object]:
    """What pip's own option parser makes of the current environment and files."""
    pytest.importorskip("pip")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", _PIP_ORACLE], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def our_view() -> dict[str, object]:
    cfg = load_pip_config()  # the real /etc, as pip reads it
    return {
        "index_url": cfg.index_url or PYPI,
        "extra_index_urls": list(cfg.extra_index_urls),
        "find_links": list(cfg.find_links),
        "trusted_hosts": list(cfg.trusted_hosts),
        "cert": cfg.cert,
        "client_cert": cfg.client_cert,
        "constraints": list(cfg.constraints),
        "no_index": cfg.no_index,
        "timeout": cfg.timeout if cfg.timeout is not None else 15.0,
        "proxy": cfg.proxy or "",
    }


@pytest.mark.parametrize(
    "scenario",
    ["files", "pip_config_file", "devnull", "variables", "install_section"],
)
def test_same_result_as_pip(
    scenario: str, pip_dirs: PipDirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV")  # pip's site file is sys.prefix: use the same
    pip_dirs.write(
        "xdg",
        "[global]\nfind-links = /x/wheels\ntimeout = 30\nextra-index-url = https://g.example\n",
    )
    pip_dirs.write(
        "legacy", "[global]\nindex-url = https://legacy.example/simple\ntrusted-host = legacy\n"
    )
    pip_dirs.write(
        "user",
        "[global]\nindex_url = https://user.example/simple\nconstraint = /c/one.txt /c/two.txt\n"
        "[install]\nno-index = true\n",
    )
    env_file = tmp_path / "env.conf"
    env_file.write_text("[global]\nclient-cert = /k/client.pem\ntimeout = 60\n")
    if scenario == "pip_config_file":
        monkeypatch.setenv("PIP_CONFIG_FILE", str(env_file))
    elif scenario == "devnull":
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_FIND_LINKS", "/env/wheels")
    elif scenario == "variables":
        monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://e1.example https://e2.example")
        monkeypatch.setenv("PIP_NO_INDEX", "0")
        monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "12")
        monkeypatch.setenv("PIP_PROXY", "http://proxy.example:3128")
        monkeypatch.setenv("PIP_CERT", "/env/ca.pem")
    elif scenario == "install_section":
        pip_dirs.write("site", "")  # unused: VIRTUAL_ENV is not set
        pip_dirs.write("legacy", "[install]\ntrusted-host = install-host\ntimeout = 5\n")
    ours, pips = our_view(), pip_view()
    assert ours == pips


# ------------------------------------------------------------- mapping to uv
@pytest.mark.unit
def test_uv_env_maps_every_setting(tmp_path: Path, pip_dirs: PipDirs) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    index = tmp_path / "index"
    index.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("cert")
    client = tmp_path / "client.pem"
    client.write_text("key")
    c1, c2 = tmp_path / "c1.txt", tmp_path / "c2.txt"
    c1.write_text("six<2\n")
    c2.write_text("")
    cfg = PipConfig(
        index_url="https://idx.example/simple",
        extra_index_urls=(index.as_uri(), "https://x.example/simple"),
        find_links=(str(wheels), "https://links.example/"),
        trusted_hosts=("idx.example", "x.example:8080"),
        cert=str(ca),
        client_cert=str(client),
        constraints=(str(c1), str(c2)),
        timeout=2.5,
        proxy="http://proxy:3128",
        no_proxy="localhost",
    )
    assert cfg.uv_env() == {
        "UV_DEFAULT_INDEX": "https://idx.example/simple",
        "UV_EXTRA_INDEX_URL": f"{index.as_uri()} https://x.example/simple",
        "UV_INDEX_STRATEGY": "unsafe-best-match",
        "UV_FIND_LINKS": f"{wheels},https://links.example/",
        "UV_INSECURE_HOST": "idx.example x.example:8080",
        "SSL_CERT_FILE": str(ca),
        "SSL_CLIENT_CERT": str(client),
        "UV_CONSTRAINT": f"{c1} {c2}",
        "UV_HTTP_TIMEOUT": "3",  # uv wants whole seconds
        "HTTPS_PROXY": "http://proxy:3128",
        "HTTP_PROXY": "http://proxy:3128",
        "https_proxy": "http://proxy:3128",
        "http_proxy": "http://proxy:3128",
        "NO_PROXY": "localhost",
        "no_proxy": "localhost",
    }
    assert cfg.uv_args() == []
    assert PipConfig().uv_env() == {}


@pytest.mark.unit
def test_user_index_strategy_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_INDEX_STRATEGY", "first-index")
    env = PipConfig(extra_index_urls=("https://x.example/simple",)).uv_env()
    assert "UV_INDEX_STRATEGY" not in env


@pytest.mark.unit
def test_missing_local_entries_are_dropped_with_a_note(tmp_path: Path) -> None:
    present = tmp_path / "wheels"
    present.mkdir()
    gone = tmp_path / "gone"
    cfg = PipConfig(
        index_url=(gone / "simple").as_uri(),
        extra_index_urls=((gone / "more").as_uri(), "https://x.example/simple"),
        find_links=(str(present), str(gone / "wheels"), (gone / "links").as_uri()),
        cert=str(gone / "ca.pem"),
        client_cert=str(gone / "client.pem"),
        constraints=(str(gone / "c.txt"),),
    )
    notes: list[str] = []
    env = cfg.uv_env(note=notes.append)
    assert env == {
        "UV_EXTRA_INDEX_URL": "https://x.example/simple",
        "UV_INDEX_STRATEGY": "unsafe-best-match",
        "UV_FIND_LINKS": str(present),
    }
    assert len(notes) == 7
    assert all("does not exist; ignoring it" in n for n in notes)
    assert any(str(gone / "wheels") in n and "find-links" in n for n in notes)
    assert cfg.missing() == notes
    assert cfg.files() == []


@pytest.mark.unit
def test_what_env_vars_cannot_carry_goes_to_args(tmp_path: Path) -> None:
    spaced = tmp_path / "my constraints.txt"
    spaced.write_text("six<2\n")
    plain = tmp_path / "c.txt"
    plain.write_text("")
    comma = tmp_path / "a,b"
    comma.mkdir()
    cfg = PipConfig(constraints=(str(spaced), str(plain)), find_links=(str(comma),), no_index=True)
    assert cfg.uv_env() == {"UV_CONSTRAINT": str(plain)}
    assert cfg.uv_args() == ["--no-index", "--find-links", str(comma), "--constraint", str(spaced)]


# ---------------------------------------------------------------- fingerprint
@pytest.mark.unit
def test_fingerprint_tracks_what_changes_installs(tmp_path: Path) -> None:
    cons = tmp_path / "constraints.txt"
    cons.write_text("six<2\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    base = PipConfig(
        extra_index_urls=("https://x.example/simple",),
        find_links=(str(wheels),),
        constraints=(str(cons),),
    )
    fp = base.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert PipConfig(**{**base.__dict__}).fingerprint() == fp  # stable, not identity-based
    # Settings that do not change what is installed do not change it...
    same = PipConfig(
        **{
            **base.__dict__,
            "cert": "/ca.pem",
            "timeout": 3.0,
            "trusted_hosts": ("x.example",),
            "proxy": "http://p:1",
        }
    )
    assert same.fingerprint() == fp
    # ...while indexes, find-links contents and constraint contents do.
    assert PipConfig(**{**base.__dict__, "extra_index_urls": ()}).fingerprint() != fp
    assert PipConfig(**{**base.__dict__, "index_url": "https://i.example"}).fingerprint() != fp
    assert PipConfig(**{**base.__dict__, "no_index": True}).fingerprint() != fp
    cons.write_text("six<1.16\n")
    assert base.fingerprint() != fp
    cons.write_text("six<2\n")
    assert base.fingerprint() == fp
    (wheels / "new-1.0-py3-none-any.whl").write_bytes(b"")
    assert base.fingerprint() != fp


@pytest.mark.unit
def test_fingerprint_ignores_missing_entries(tmp_path: Path) -> None:
    base = PipConfig(extra_index_urls=("https://x.example/simple",))
    stale = PipConfig(
        extra_index_urls=("https://x.example/simple",), find_links=(str(tmp_path / "gone"),)
    )
    assert stale.fingerprint() == base.fingerprint()


# -------------------------------------------------------- pip.conf and files
@pytest.mark.unit
def test_pip_conf_text_round_trips(
    tmp_path: Path, pip_dirs: PipDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("cert")
    cons = tmp_path / "c.txt"
    cons.write_text("six<2\n")
    cfg = PipConfig(
        index_url="https://idx.example/simple",
        extra_index_urls=("https://a.example/simple", "https://b.example/simple"),
        find_links=("https://links.example/",),
        trusted_hosts=("idx.example",),
        cert=str(ca),
        constraints=(str(cons),),
        no_index=True,
        timeout=12.5,
        proxy="http://proxy:3128",
    )
    conf = tmp_path / "rendered.conf"
    conf.write_text(cfg.pip_conf_text())
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert load(pip_dirs) == cfg
    assert cfg.files() == [ca, cons]
    mapped = cfg.pip_conf_text(path_map={str(ca): "/run/ca.pem", str(cons): "/run/c.txt"})
    assert "cert = /run/ca.pem" in mapped and "constraint = /run/c.txt" in mapped
    assert str(tmp_path) not in mapped


@pytest.mark.unit
def test_this_machines_configuration_loads() -> None:
    """Whatever pip configuration this machine has must load and map without error."""
    cfg = load_pip_config()
    env = cfg.uv_env()
    for value in env.values():
        assert isinstance(value, str) and value
    assert len(cfg.fingerprint()) == 16
