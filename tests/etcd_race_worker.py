"""A client process that updates one object through a registry, for the tests of several
registries on one etcd store: run as ``python tests/etcd_race_worker.py ENDPOINT CLIENT
COUNT OUT``.

Each of its ``COUNT`` rounds reads ``ECSMService default/<name>`` and updates it with the
resourceVersion it read (optimistic concurrency): a new image (a spec change, unique to
the round) and the round's token appended to the annotation ``log``; every other round
it also writes the status without a resourceVersion (unconditional). Each outcome is one
JSON line in ``OUT``: ``{token, base, rv}`` for an acknowledged update, ``{token, base,
error}`` for a refused one, ``{status: true, rv | error}`` for a status write.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ecsm_actors.errors import RegistryError
from ecsm_actors.registry.client import RegistryClient

NAME = "occ"


def main(endpoint: str, client_id: int, count: int, out: str) -> int:
    client = RegistryClient(endpoint, timeout=2.0, deadline=8.0)
    lines: list[dict[str, Any]] = []
    try:
        for i in range(count):
            obj = client.get("ECSMService", "default", NAME)
            base = obj["metadata"]["resourceVersion"]
            token = f"{client_id}.{i}"
            meta = obj["metadata"]
            changed = {**obj, "spec": {**obj["spec"], "template": {
                **obj["spec"]["template"], "image": f"app@{token}#sylixos"}},
                "metadata": {**meta, "annotations": {
                    **meta.get("annotations", {}),
                    "log": f"{meta.get('annotations', {}).get('log', '')} {token}".strip()}}}
            try:
                lines.append({"token": token, "base": base,
                              "rv": client.update(changed)["metadata"]["resourceVersion"]})
            except RegistryError as e:
                lines.append({"token": token, "base": base, "error": e.code,
                              "message": e.message})
            if i % 2:
                status = {**obj, "status": {**obj["status"],
                                            "observedGeneration": client_id * 1000 + i}}
                status["metadata"] = {**obj["metadata"], "resourceVersion": None}
                try:
                    written = client.update_status(status)
                    lines.append({"status": True, "rv": written["metadata"]["resourceVersion"]})
                except RegistryError as e:
                    lines.append({"status": True, "error": e.code, "message": e.message})
    finally:
        client.close()
        with open(out, "w") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
