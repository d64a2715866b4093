"""``python -m gridrun.sessions.monitor NAME``: pause a session once it is idle.

Started detached with a session that has ``--idle``; it lives as long as the
session runs. Idle means what dstack's ``inactivity_duration`` and SkyPilot's
autostop mean: no kernel activity and no open connection (a browser tab holds a
websocket) for that long, as JupyterLab's own ``/api/status`` reports. A separate
process rather than the agent's loop: the agent exits when no run is active, and a
session is no run.
"""

from __future__ import annotations

import sys
import time

POLL = 15.0  # seconds between looks; --idle is minutes or hours in practice


def main(argv: list[str]) -> int:
    from gridrun.home import GridHome
    from gridrun.sessions.lifecycle import idle_for, pause
    from gridrun.sessions.reconcile import server_alive
    from gridrun.store import sessions as table
    from gridrun.store.db import Store
    from gridrun.store.models import SessionStatus

    name = argv[0]
    home = GridHome.from_env()
    while True:
        store = Store(home.db_path)
        try:
            session = table.find(store, name)
            if session is None or session.status != SessionStatus.RUNNING:
                return 0
            if server_alive(home.root, session) is False:
                return 0  # died on its own: `grid session list` records it as paused
            limit = session.idle_seconds or 0
            idle = idle_for(session)
            if limit and idle is not None and idle >= limit:
                pause(store, home, name, reason=f"idle for {int(idle)}s")
                return 0
            wait = POLL if idle is None else max(1.0, min(POLL, limit - idle))
        finally:
            store.close()
        time.sleep(wait)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
