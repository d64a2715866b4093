"""Reproduction 2 of issue 21: one experiment read and wrote another's working copy.

Root experiments share credentials, so the kernel's ptrace check let one open another's
``/proc/PID/cwd`` and ``/proc/PID/root``: a victim wrote ``victim_secret.txt`` and slept,
and an attacker's ``glob("/proc/*/cwd/victim_secret.txt")`` read it and appended to it.
Now every local experiment runs in a PID namespace of its own, with its own ``/proc``:
it sees its own processes only. Through the real ``grid`` CLI as root, and with the
same two pieces (``nsexec --pidns`` and the witness's init) as ``nobody``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridrun.datastores import isolation_mode

VICTIM = """\
import os, sys, time
open("victim_secret.txt", "w").write("the victim's secret")
print("VICTIM ready", os.getpid(), flush=True)
deadline = time.time() + 120
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
print("VICTIM kept", open("victim_secret.txt").read(), flush=True)
"""

ATTACKER = """\
import glob, json, os, sys
seen = {"pid": os.getpid(), "ppid": os.getppid()}
seen["procs"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
found = [p for p in glob.glob("/proc/*/cwd/victim_secret.txt") + glob.glob(
    "/proc/*/root" + sys.argv[2] + "/*/workdir/victim_secret.txt") if "/self/" not in p]
seen["found"] = found
for path in found:
    try:
        with open(path, "a") as fh:
            fh.write(" TAMPERED")
    except OSError as exc:
        seen.setdefault("errors", []).append(exc.strerror)
seen["init"] = open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode(errors="replace")
open(sys.argv[1], "w").write("done")  # the victim may end now
print("ATTACKER " + json.dumps(seen), flush=True)
"""


def _wait_for(grid, run: str, text: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while text not in grid("logs", run).stdout:
        assert time.monotonic() < deadline, f"{run} never printed {text!r}"
        time.sleep(0.1)


def test_an_experiment_cannot_reach_another_through_proc(grid, tmp_path: Path) -> None:
    if isolation_mode() == "none":
        pytest.fail("no private namespace here: the guarantee under test is absent")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "victim.py").write_text(VICTIM)
    (project / "attacker.py").write_text(ATTACKER)
    release = tmp_path / "release"
    grid("run", "--name", "victim", "victim.py", str(release), cwd=project)
    _wait_for(grid, "victim", "VICTIM ready")
    out = grid(
        "run", "--name", "attacker", "--follow", "attacker.py", str(release),
        str(grid.home / "experiments"), cwd=project,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if "ATTACKER " in x)
    seen = json.loads(line.split("ATTACKER ", 1)[1])
    assert seen["found"] == [], seen
    # Its own namespace: its init is pid 1, the script pid 2, and nothing else is seen
    # (a leftover child of the script would be; this script starts none).
    assert (seen["pid"], seen["ppid"]) == (2, 1), seen
    assert seen["procs"] == [1, 2], seen
    grid.wait("victim")
    victim = grid("logs", "victim").stdout
    assert "VICTIM kept the victim's secret" in victim, victim
    assert "TAMPERED" not in victim


def test_the_experiments_leftovers_end_with_it_and_its_exit_status_is_its_own(
    grid, tmp_path: Path
) -> None:
    """The init ends what the script left behind; exit codes and signals are recorded
    as the script's own, not the init's."""
    if isolation_mode() == "none":
        pytest.fail("no private namespace here: the guarantee under test is absent")
    project = tmp_path / "proj"
    project.mkdir()
    marker = tmp_path / "leftover-alive"
    (project / "leaves.py").write_text(
        "import os, signal, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time, sys\\n"
        'open(sys.argv[1], "w").write("x")\\ntime.sleep(300)\', sys.argv[1]],\n'
        "                 start_new_session=True)\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.02)\n"
        "if sys.argv[2] == 'signal':\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
        "sys.exit(int(sys.argv[2]))\n"
    )
    grid("run", "--name", "code", "--follow", "leaves.py", str(marker), "3", cwd=project,
         check=False)  # fmt: skip
    exp = grid.json("status", "code")["experiments"][0]
    assert (exp["status"], exp["exit_code"]) == ("failed", 3), exp
    grid("run", "--name", "sig", "--follow", "leaves.py", str(marker), "signal", cwd=project,
         check=False)  # fmt: skip
    exp = grid.json("status", "sig")["experiments"][0]
    assert exp["exit_code"] == -11, exp
    # The leftover, in a session of its own, was ended with the experiment.
    alive = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True)
    assert alive.stdout.strip() == "", alive.stdout


NOBODY_PAIR = """\
import os, subprocess, sys, tempfile, time
src, python = sys.argv[1], sys.argv[2]
local = os.path.join(src, "gridrun", "backends", "local")
datastores = os.path.join(src, "gridrun", "datastores")
witness = [python, "-S", "-I", "-c",
           f"import sys; sys.path += [{local!r}, {datastores!r}]; import witness; "
           "sys.exit(witness.main(sys.argv[1:]))"]
nsexec = [python, "-S", "-I", "-c",
          f"import sys; sys.path.append({datastores!r}); import nsexec; "
          "sys.exit(nsexec.main(sys.argv[1:]))"]
work = tempfile.mkdtemp()
victim_dir = os.path.join(work, "victim")
os.mkdir(victim_dir)
record = os.open(os.path.join(work, "record"), os.O_RDWR | os.O_CREAT, 0o600)
os.write(record, b" " * 512)
def confined(code, cwd):
    return subprocess.Popen(
        [*nsexec, "--mode", "user", "--pidns", "--", *witness, str(record), str(os.getpid()),
         "--init", "--", python, "-c", code], cwd=cwd, pass_fds=(record,),
        stdout=subprocess.PIPE, text=True)
victim = confined("import time; open('victim_secret.txt', 'w').write('s'); print('ready', "
                  "flush=True); time.sleep(60)", victim_dir)
assert victim.stdout.readline().strip() == "ready"
probe = "import glob; print(sorted(p for p in glob.glob('/proc/*/cwd/victim_secret.txt') " \\
        "if '/self/' not in p))"
confined_sees = confined(probe, work).communicate()[0].strip()
plain_sees = subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.strip()
victim.kill()
print("CONFINED", confined_sees)
print("PLAIN", plain_sees)
"""


def test_as_nobody_an_experiment_sees_only_its_own_processes(nobody) -> None:
    if isolation_mode() == "none":
        pytest.fail("no private namespace here: the guarantee under test is absent")
    out = nobody.run(NOBODY_PAIR, str(nobody.src), nobody.python)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["CONFINED"] == "[]", out.stdout
    # Without the namespace, the same probe as the same user finds the victim's file:
    # the test can fail.
    assert "victim_secret.txt" in lines["PLAIN"], out.stdout
    assert sys.executable  # the interpreter the test suite runs on is not nobody's
