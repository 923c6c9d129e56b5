"""``python -m ecsm_actors <process> [options]``: how every process of the project starts.

The supervisor starts each child through this entry point: forked from the zygote (a
process that imported the children's code and holds no socket, thread or LMDB
environment; its forked children run this same ``main`` with the same argv), or as a
fresh interpreter while the zygote is down::

    python -m ecsm_actors registry    [--conf FILE]
    python -m ecsm_actors simulator   [--conf FILE] [--port N] [--nodes N] [--state FILE]
    python -m ecsm_actors controller service|hpa [--conf FILE]
    python -m ecsm_actors supervisor  [--conf FILE] [--simulate] [--apply DIR]
    python -m ecsm_actors zygote      [MODULE...]   (the supervisor starts it)
    python -m ecsm_actors link-agent  --dir DIR --name NAME --endpoint EP ...  (ecsm-cli starts it)

Each process module exposes ``main(argv: list[str]) -> int``; this module only dispatches.
"""

from __future__ import annotations

import importlib
import sys

PROCESSES = {
    "registry": "ecsm_actors.registry.server",
    "simulator": "ecsm_actors.ecsm.simulator.server",
    "controller": "ecsm_actors.controllers.main",
    "supervisor": "ecsm_actors.supervisor.daemon",
    "zygote": "ecsm_actors.supervisor.zygote.server",
    "link-agent": "ecsm_actors.link.agent",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in PROCESSES:
        names = "|".join(PROCESSES)
        print(f"usage: python -m ecsm_actors {{{names}}} [options]", file=sys.stderr)
        return 2
    from ecsm_actors import lifecycle

    with lifecycle.startup():
        module = importlib.import_module(PROCESSES[args[0]])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
