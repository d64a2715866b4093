"""Grid's CLI reference (gridai/grid-docs ``docs/cli.md``), command by command and
option by option, with what gridrun does with each: the data behind
``test_grid_cli_reference.py``.

Every row is one command of the reference (``option`` None) or one of its options,
spelled as the reference spells it (``-l/--localdir``: both spellings). Its
disposition is one of:

- ``implemented``: gridrun accepts it and does what the reference says;
- ``mapped: NOTE``: gridrun accepts it and does the nearest thing it can, as NOTE says;
- ``refused: WHY``: gridrun answers in one line, exiting non-zero; ``says`` is a piece
  of that line, and ``argv`` (below) how a Grid user would type it.

``argv`` is a Grid-style invocation of the row (without ``grid``): for implemented and
mapped options it must parse; for refused rows it must be refused in one line. Each
command's ``--help`` (listed by the reference for every command) is checked for every
command row, and the root's ``--debug`` and ``-o/--output`` are rows of their own.

Left out on purpose: nothing. A reference option that is missing here is a gap in the
table, and one gridrun neither accepts nor refuses fails the test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    command: str  # "" for the root, else the words after ``grid``: "datastore create"
    option: str | None  # None: the command itself; else its spellings, "-m/--match_regex"
    disposition: str  # implemented | mapped: NOTE | refused: WHY
    argv: tuple[str, ...] = ()  # a Grid user's invocation; for options: it uses the option
    says: str = ""  # refused: a piece of the one line that says why

    @property
    def kind(self) -> str:
        return self.disposition.split(":")[0]

    @property
    def spellings(self) -> list[str]:
        return self.option.split("/") if self.option else []

    @property
    def label(self) -> str:
        words = " ".join(w for w in ("grid", self.command, self.option or "") if w)
        return words.replace("  ", " ")


IMPL = "implemented"


def _refused(why: str) -> str:
    return f"refused: {why}"


CLUSTER_AWS = _refused("a self-hosted gridrun creates no cloud clusters; `grid clusters add`")
CLUSTER_LOGS = _refused("gridrun keeps no cluster logs; the engine's own logs")
CREDENTIALS = _refused("no cloud credentials; engines use their own")
NO_LOCAL_CHANGE = _refused("a session's instance type only sizes it on this machine")
DS_CLUSTER = "mapped: datastores live in GRID_HOME, one set for every cluster; the name is checked"
GLOBAL = "mapped: a GRID_HOME has one user, so everything is listed anyway"

ROWS: list[Row] = [
    # ------------------------------------------------------------------ grid
    Row("", "--debug", IMPL, ("--debug", "version")),
    Row("", "-o/--output", IMPL, ("-o", "json", "version")),
    # ------------------------------------------------------------------ artifacts
    Row("artifacts", None, IMPL),
    Row("artifacts", "--download_dir", IMPL, ("artifacts", "--download_dir", "out", "r")),
    Row("artifacts", "-m/--match_regex", IMPL, ("artifacts", "-m", ".*\\.pt", "r")),
    # ------------------------------------------------------------------ clusters
    Row(
        "clusters",
        None,
        "mapped: lists local, the Docker engine and each named Ray/Slurm "
        "cluster with state and capacity; `clusters add|rm` name them",
    ),
    Row("clusters aws", None, CLUSTER_AWS, ("clusters", "aws", "lab"), "creates no cloud clusters"),
    *[
        Row(
            "clusters aws",
            opt,
            CLUSTER_AWS,
            ("clusters", "aws", "lab", *args),
            "creates no cloud clusters",
        )
        for opt, args in [
            ("--external-id", ("--external-id", "x")),
            ("--role-arn", ("--role-arn", "arn:aws:iam::1:role/r")),
            ("--region", ("--region", "us-east-1")),
            ("--instance-types", ("--instance-types", "t2.large")),
            ("--cost-savings", ("--cost-savings",)),
            ("--wait", ("--wait",)),
            ("--edit-before-creation", ("--edit-before-creation",)),
        ]
    ],
    Row("clusters logs", None, CLUSTER_LOGS, ("clusters", "logs", "lab"), "keeps no cluster logs"),
    *[
        Row(
            "clusters logs",
            opt,
            CLUSTER_LOGS,
            ("clusters", "logs", "lab", *args),
            "keeps no cluster logs",
        )
        for opt, args in [
            ("-t/--tail", ("--tail",)),
            ("--from", ("--from", "24 hours ago")),
            ("--to", ("--to", "0 seconds ago")),
            ("--limit", ("--limit", "10")),
            ("--time-format", ("--time-format", "human")),
        ]
    ],
    # ------------------------------------------------------------------ credentials
    Row("credentials", None, CREDENTIALS, ("credentials",), "no cloud credentials"),
    Row(
        "credentials",
        "--set_default",
        CREDENTIALS,
        ("credentials", "--set_default", "a"),
        "no cloud credentials",
    ),
    Row("credentials add", None, CREDENTIALS, ("credentials", "add"), "no cloud credentials"),
    *[
        Row(
            "credentials add",
            opt,
            CREDENTIALS,
            ("credentials", "add", opt, value),
            "no cloud credentials",
        )
        for opt, value in [
            ("--provider", "aws"),
            ("--file", "creds.json"),
            ("--alias", "mine"),
            ("--description", "my keys"),
        ]
    ],
    # ------------------------------------------------------------------ datastore
    Row("datastore", None, IMPL),
    Row("datastore", "--global", GLOBAL, ("datastore", "--global")),
    Row("datastore", "--cluster", DS_CLUSTER, ("datastore", "--cluster", "local")),
    Row(
        "datastore",
        "--show-incomplete",
        "mapped: interrupted versions are always listed, marked failed",
        ("datastore", "--show-incomplete"),
    ),
    Row("datastore clearcache", None, IMPL),
    Row("datastore create", None, IMPL),
    Row("datastore create", "--source", IMPL, ("datastore", "create", "--source", "data/")),
    Row("datastore create", "--name", IMPL, ("datastore", "create", "--name", "d", "data/")),
    Row(
        "datastore create",
        "--cluster",
        DS_CLUSTER,
        ("datastore", "create", "--cluster", "local", "data/"),
    ),
    Row("datastore delete", None, IMPL),
    Row(
        "datastore delete", "--name", IMPL, ("datastore", "delete", "--name", "d", "--version", "1")
    ),
    Row(
        "datastore delete",
        "--version",
        IMPL,
        ("datastore", "delete", "--name", "d", "--version", "1"),
    ),
    Row(
        "datastore delete",
        "--cluster",
        DS_CLUSTER,
        ("datastore", "delete", "--name", "d", "--version", "1", "--cluster", "local"),
    ),
    Row("datastore resume", None, "implemented: without --name, the one interrupted create"),
    # ------------------------------------------------------------------ delete
    Row("delete", None, IMPL),
    Row(
        "delete cluster",
        None,
        "mapped: `grid clusters rm`: forgets the name, stops nothing "
        "(gridrun created none of its machines)",
        ("delete", "cluster", "lab"),
    ),
    Row(
        "delete cluster",
        "--force",
        "mapped: always what it does (Grid's --force: forget the entry only)",
        ("delete", "cluster", "lab", "--force"),
    ),
    Row(
        "delete cluster",
        "--wait",
        "mapped: forgetting a cluster is immediate",
        ("delete", "cluster", "lab", "--wait"),
    ),
    Row("delete experiment", None, IMPL, ("delete", "experiment", "r-exp0")),
    Row("delete run", None, IMPL, ("delete", "run", "r")),
    # ------------------------------------------------------------------ docs
    Row("docs", None, "mapped: prints where the documentation is (README, docs/, --help)"),
    # ------------------------------------------------------------------ edit
    Row(
        "edit",
        None,
        _refused("creates no clusters; configure the engine"),
        ("edit",),
        "creates no clusters",
    ),
    Row(
        "edit cluster",
        None,
        _refused("creates no clusters; configure the engine"),
        ("edit", "cluster", "prod-2"),
        "creates no clusters",
    ),
    # ------------------------------------------------------------------ history
    Row("history", None, IMPL),
    Row("history", "--global", GLOBAL, ("history", "--global")),
    # ------------------------------------------------------------------ instance-types
    Row(
        "instance-types",
        None,
        "mapped: Grid's instance-type table, and whether each fits the cluster's largest node",
    ),
    Row("instance-types", "--cluster", IMPL, ("instance-types", "--cluster", "local")),
    # ------------------------------------------------------------------ login
    Row("login", None, "mapped: exits 0 saying gridrun needs no login and where runs are kept"),
    Row("login", "--key", "mapped: accepted and unused (no API keys)", ("login", "--key", "k")),
    Row(
        "login",
        "--username",
        "mapped: accepted and unused (no accounts)",
        ("login", "--username", "me"),
    ),
    # ------------------------------------------------------------------ logs
    Row("logs", None, IMPL),
    Row("logs", "--show-build-logs", IMPL, ("logs", "--show-build-logs", "r-exp0")),
    Row("logs", "-l/--tail-lines", IMPL, ("logs", "-l", "20", "r-exp0")),
    # ------------------------------------------------------------------ run
    Row("run", None, IMPL),
    Row("run", "--config", IMPL, ("run", "--config", "grid.yml", "train.py")),
    Row("run", "--name", IMPL, ("run", "--name", "my-run", "train.py")),
    Row(
        "run",
        "--cluster",
        "implemented: a cluster from `grid clusters`",
        ("run", "--cluster", "local", "train.py"),
    ),
    Row("run", "--strategy", IMPL, ("run", "--strategy", "random_search", "train.py")),
    Row("run", "--num_trials", IMPL, ("run", "--num_trials", "4", "train.py")),
    Row("run", "--seed", IMPL, ("run", "--seed", "7", "train.py")),
    Row(
        "run",
        "--instance_type",
        "mapped: sizes each experiment by that machine's CPUs, memory and GPUs",
        ("run", "--instance_type", "t2.medium", "train.py"),
    ),
    Row("run", "--gpus", IMPL, ("run", "--gpus", "2", "train.py")),
    Row(
        "run",
        "--gpus 0",
        _refused("Grid's default; leaving --gpus out already means no GPU"),
        ("run", "--gpus", "0", "train.py"),
        "Leave it out to run on CPUs only",
    ),
    Row("run", "--cpus", IMPL, ("run", "--cpus", "1", "train.py")),
    Row(
        "run",
        "--memory",
        "mapped: memory (RAM) per experiment, as the older reference says; disk is --disk_size",
        ("run", "--memory", "100", "train.py"),
    ),
    Row("run", "--datastore_name", IMPL, ("run", "--datastore_name", "d", "train.py")),
    Row(
        "run",
        "--datastore_version",
        IMPL,
        ("run", "--datastore_name", "d", "--datastore_version", "2", "train.py"),
    ),
    Row(
        "run",
        "--datastore_mount_dir",
        IMPL,
        ("run", "--datastore_name", "d", "--datastore_mount_dir", "/data", "train.py"),
    ),
    Row(
        "run",
        "--framework",
        "mapped: the Docker base image (julia:VERSION: that tag of Julia's image); elsewhere noted",
        ("run", "--framework", "julia:1.6.1", "train.jl"),
    ),
    Row(
        "run",
        "--framework torchelastic",
        _refused("each experiment is one process tree; torch and torchrun"),
        ("run", "--dry_run", "--framework", "torchelastic", "train.py"),
        "--framework torchelastic",
    ),
    Row(
        "run",
        "--use_spot",
        "mapped: preemptible with auto-resume (no spot machines here)",
        ("run", "--use_spot", "train.py"),
    ),
    Row("run", "--ignore_warnings", IMPL, ("run", "--ignore_warnings", "train.py")),
    Row("run", "--scratch_size", IMPL, ("run", "--scratch_size", "1", "train.py")),
    Row(
        "run",
        "--scratch_mount_path",
        IMPL,
        ("run", "--scratch_size", "1", "--scratch_mount_path", "/tmp/s", "train.py"),
    ),
    Row(
        "run",
        "-l/--localdir",
        "mapped: Grid's flag is accepted (gridrun always snapshots "
        "the local folder); -l FOLDER names another",
        ("run", "-l", "train.py"),
    ),
    Row("run", "-d/--dockerfile", IMPL, ("run", "-d", "Dockerfile", "train.py")),
    Row(
        "run",
        "--dependency_file",
        "implemented: requirements.txt, environment.yml, "
        "pyproject.toml; Project.toml for a Julia script on Docker",
        ("run", "--dependency_file", "Project.toml", "train.jl"),
    ),
    Row("run", "--auto_resume", IMPL, ("run", "--auto_resume", "train.py")),
    # ------------------------------------------------------------------ session
    Row("session", None, "implemented: lists sessions, as `grid session list`"),
    Row("session", "--global", GLOBAL, ("session", "--global")),
    Row(
        "session change-instance-type",
        None,
        NO_LOCAL_CHANGE,
        ("session", "change-instance-type", "s", "t2.large"),
        "only sizes it on this machine",
    ),
    Row(
        "session change-instance-type",
        "--spot",
        NO_LOCAL_CHANGE,
        ("session", "change-instance-type", "s", "t2.large", "--spot"),
        "only sizes it on this machine",
    ),
    Row(
        "session change-instance-type",
        "--on_demand/--on-demand",
        NO_LOCAL_CHANGE,
        ("session", "change-instance-type", "s", "t2.large", "--on_demand"),
        "only sizes it on this machine",
    ),
    Row("session create", None, IMPL),
    Row(
        "session create",
        "--cluster",
        "implemented: local or docker; a Ray or Slurm cluster is refused in one line",
        ("session", "create", "--cluster", "local"),
    ),
    Row(
        "session create",
        "--instance_type",
        "mapped: a label, and the session's size",
        ("session", "create", "--instance_type", "t2.medium"),
    ),
    Row(
        "session create",
        "--use_spot",
        _refused("a session runs on this machine, which no one reclaims"),
        ("session", "create", "--use_spot"),
        "no one reclaims",
    ),
    Row(
        "session create",
        "--disk_size",
        "mapped: noted; the session uses this machine's disk",
        ("session", "create", "--disk_size", "200"),
    ),
    Row("session create", "--datastore_name", IMPL, ("session", "create", "--datastore_name", "d")),
    Row(
        "session create",
        "--datastore_version",
        IMPL,
        ("session", "create", "--datastore_name", "d", "--datastore_version", "1"),
    ),
    Row(
        "session create",
        "--datastore_mount_dir",
        IMPL,
        ("session", "create", "--datastore_name", "d", "--datastore_mount_dir", "/data"),
    ),
    Row(
        "session create",
        "--config",
        _refused("reads no Grid YAML; its settings are options"),
        ("session", "create", "--config", "grid.yml"),
        "reads no Grid YAML",
    ),
    Row("session create", "--name", IMPL, ("session", "create", "--name", "dev")),
    Row("session delete", None, IMPL, ("session", "delete", "dev")),
    Row(
        "session mount",
        None,
        _refused("sessions run on this machine: nothing to mount"),
        ("session", "mount", "dev", "./data"),
        "nothing to mount",
    ),
    Row("session pause", None, IMPL, ("session", "pause", "dev")),
    Row("session resume", None, IMPL, ("session", "resume", "dev")),
    Row(
        "session ssh",
        None,
        "mapped: a shell (or a command) on this machine, no sshd; ssh "
        "options are refused in one line",
        ("session", "ssh", "dev"),
    ),
    # ------------------------------------------------------------------ ssh-keys
    Row(
        "ssh-keys",
        None,
        "mapped: sessions use no SSH keys (a direct shell, a per-session "
        "JupyterLab token); every subcommand says so",
    ),
    Row(
        "ssh-keys add",
        None,
        _refused("sessions use no SSH keys"),
        ("ssh-keys", "add", "laptop", "id.pub"),
        "use no SSH keys",
    ),
    Row("ssh-keys authorized_keys", None, "mapped: says there are none, and why (exit 0)"),
    Row(
        "ssh-keys authorized_keys",
        "--limit",
        "mapped: accepted; nothing to limit",
        ("ssh-keys", "authorized_keys", "--limit", "5"),
    ),
    Row("ssh-keys list", None, "mapped: says there are none, and why (exit 0)"),
    Row(
        "ssh-keys list",
        "--limit",
        "mapped: accepted; nothing to limit",
        ("ssh-keys", "list", "--limit", "5"),
    ),
    Row(
        "ssh-keys rm",
        None,
        _refused("sessions use no SSH keys"),
        ("ssh-keys", "rm", "k1"),
        "use no SSH keys",
    ),
    # ------------------------------------------------------------------ status
    Row("status", None, IMPL),
    Row("status", "--global", GLOBAL, ("status", "--global")),
    # ------------------------------------------------------------------ stop
    Row("stop", None, IMPL),
    Row("stop experiment", None, IMPL, ("stop", "experiment", "r-exp0")),
    Row("stop run", None, IMPL, ("stop", "run", "r")),
    # ------------------------------------------------------------------ sync-env
    Row("sync-env", None, IMPL),
    Row(
        "sync-env",
        "--config",
        "implemented: its compute.train.dependency_file is the file written",
        ("sync-env", "--config", "grid.yml"),
    ),
    Row(
        "sync-env",
        "--dependency_file",
        "implemented: the requirements file written "
        "(YAML and TOML files are refused: they are the user's)",
        ("sync-env", "--dependency_file", "reqs.txt"),
    ),
    # ------------------------------------------------------------------ team
    Row("team", None, _refused("it has no teams"), ("team", "my-team"), "has no teams"),
    # ------------------------------------------------------------------ user
    Row("user", None, "mapped: the local user, GRID_HOME, the default cluster"),
    Row("user set-cluster-context", None, IMPL, ("user", "set-cluster-context", "local")),
    Row("user set-default-cluster", None, IMPL, ("user", "set-default-cluster", "local")),
    # ------------------------------------------------------------------ version, view
    Row("version", None, IMPL),
    Row(
        "view",
        None,
        "implemented: prints (with a desktop, opens) the dashboard's URL, starting the dashboard",
        ("view", "r"),
    ),
]
