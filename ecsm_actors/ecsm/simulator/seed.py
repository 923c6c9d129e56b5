"""The simulator's seed: nodes ``node-1..node-N`` and the images of registry ``local``.

Runs inside the simulator process at start (when no state file is loaded). Ids are
deterministic, so a restarted simulator and the tests agree on them. Every image carries a
realistic EcsImageConfig (platform, process, root, mounts, sylixos devices/resources/
network/commands) with ``memoryLimitMB``, which the usage model uses as memory limit.
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.ecsm.simulator.model import GIB, ImageRec, NodeRec, stable_id

#: (name, tag, os, size MB, memoryLimitMB, author, description)
IMAGES: tuple[tuple[str, str, str, float, int, str | None, str], ...] = (
    ("app", "1.0", "sylixos", 12.5, 256, "acoinfo", "demo application"),
    ("app", "1.1", "sylixos", 12.75, 256, "acoinfo", "demo application"),
    ("app", "2.0", "sylixos", 14.0, 384, "acoinfo", "demo application, v2"),
    ("web", "1.0", "sylixos", 8.25, 128, "acoinfo", "web front end"),
    ("db", "1.0", "sylixos", 40.5, 1024, None, "embedded database"),
    ("test-service", "1.0.0", "sylixos", 5.0, 512, None, "integration test service"),
    ("busybox", "1.36", "linux", 1.5, 64, None, "linux toolbox"),
)

_KERNEL_OBJECTS = {"threadLimit": 100, "threadPoolLimit": 10, "eventLimit": 100,
                   "eventSetLimit": 10, "partitionLimit": 10, "regionLimit": 10,
                   "msgQueueLimit": 10, "timerLimit": 10}


def image_config(name: str, os: str, arch: str, memory_mb: int) -> dict[str, Any]:
    """A realistic EcsImageConfig (ecsm-api.md §3.1)."""
    config: dict[str, Any] = {
        "platform": {"os": os, "arch": arch},
        "process": {"args": [f"/apps/{name}/{name}"], "env": ["PATH=/bin:/usr/bin",
                                                              f"APP_NAME={name}"], "cwd": "/"},
        "root": {"path": f"/var/ecsm/rootfs/{name}", "readonly": False},
        "hostname": name,
        "mounts": [{"destination": "/var/log", "source": f"/data/{name}/log",
                    "options": ["rw"]}],
    }
    if os == "sylixos":
        config["sylixos"] = {
            "devices": [{"path": "/dev/ttyS0", "access": "rw"}],
            "resources": {"cpu": {"highestPrio": 200, "lowestPrio": 255},
                          "memory": {"kheapLimit": 1 << 20, "memoryLimitMB": memory_mb},
                          "disk": {"limitMB": 1024},
                          "kernelObject": dict(_KERNEL_OBJECTS)},
            "network": {"ftpdEnable": False, "telnetdEnable": False},
            "commands": [],
        }
    return config


def seed_nodes(count: int, now: float, memory: int = 4 * GIB) -> list[NodeRec]:
    """``node-1..node-count``, each with ``memory`` bytes for its containers."""
    return [NodeRec(id=stable_id("node", f"node-{i}"), name=f"node-{i}",
                    address=f"10.0.0.{i}:5050", password=f"pw-node-{i}",
                    arch="arm64", cpu_cores=4, memory_bytes=memory,
                    created_at=now, boot_at=now)
            for i in range(1, count + 1)]


def seed_images(now: float) -> list[ImageRec]:
    out = []
    for i, (name, tag, os, size, memory_mb, author, description) in enumerate(IMAGES):
        arch = "arm64"
        out.append(ImageRec(
            id=stable_id("image", f"{name}@{tag}#{os}"), name=name, tag=tag, os=os, arch=arch,
            created_at=now - 86400 * (len(IMAGES) - i), size=size, author=author,
            description=description, path=f"/var/ecsm/images/{name}/{tag}",
            config=image_config(name, os, arch, memory_mb), hostname=name))
    return out
