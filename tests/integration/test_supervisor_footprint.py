"""What the supervisor process loads: only what it needs. It records Event records about
its children (a kill, an exit), one small request now and then to the local registry:
sending them must not pull the registry client's stack (asyncio, ssl, hashlib, secrets:
3 MiB of private memory and 80 ms of imports, at the moment a child restarts) into it.
Its children's RSS and CPU time come from /proc, without psutil.
A fresh interpreter builds the supervisor, records an event and flushes it (to a registry
that does not answer), and reports its modules. (With a zygote in its table the supervisor
imports the zygote's modules on purpose, before its first fork: pages it then shares with
the zygote and every child, see ``supervisor/zygote/template.py``; not its own needs.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import json, sys
    import ecsm_actors.__main__
    from ecsm_actors.config import load_config
    from ecsm_actors.runtime.events import object_ref
    from ecsm_actors.supervisor.loop import Supervisor
    sup = Supervisor(load_config(), [])
    recorder = sup.tree.recorder
    recorder.warning(object_ref("Child", "", "registry"), "Restarting", "pid 1 exited")
    recorder.flush()
    print(json.dumps({"modules": sorted(sys.modules), "stats": recorder.stats()}))
""")

#: The registry client's stack, which the supervisor has no use for, and psutil (1.4 MiB
#: for four figures of its children, read from /proc instead).
FORBIDDEN = ("asyncio", "ssl", "_ssl", "_hashlib", "hashlib", "secrets", "hmac",
             "zmq.asyncio", "zmq.auth", "ecsm_actors.registry.client", "ecsm_actors.curve",
             "psutil")


def test_the_supervisor_loads_neither_the_registry_client_nor_psutil(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update({"ECSM_ACTORS_RUN_DIR": str(tmp_path), "ECSM_ACTORS_CONF": "",
                "ECSM_ACTORS_REGISTRY_REQUEST_TIMEOUT": "0.05"})
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True, env=env).stdout
    report = json.loads(out)
    assert report["stats"]["droppedUnsent"] == 1  # the flush was attempted, nobody answered
    loaded = set(report["modules"])
    assert sorted(m for m in loaded if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN) == []
