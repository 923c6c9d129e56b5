"""The ``Configuration:`` block of ``ecsm-cli describe image`` (an EcsImageConfig, §3.1).

Runs in the ecsm-cli process; pure: wire dict in, text lines out. Each sub-block is
printed only when present, as the Go CLI did.
"""

from __future__ import annotations

from typing import Any

BASE_KERNEL = ("threadLimit", "threadPoolLimit", "eventLimit", "eventSetLimit",
               "partitionLimit", "regionLimit", "msgQueueLimit", "timerLimit")
OPTIONAL_KERNEL = ("rmsLimit", "threadVarLimit", "posixMqueueLimit", "dlopenLibraryLimit",
                   "xsiipcLimit", "socketLimit", "srtpLimit", "deviceLimit")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def config_lines(config: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if config.get("hostname"):
        out.append(f"  Hostname:     {config['hostname']}")
    root = _d(config.get("root"))
    if root:
        out += ["  Root Filesystem:", f"    Path:       {root.get('path', '')}",
                f"    Read Only:  {str(bool(root.get('readonly'))).lower()}"]
    process = _d(config.get("process"))
    if process:
        out += ["  Process:", f"    Command:    {' '.join(process.get('args') or [])}",
                f"    Working Dir: {process.get('cwd', '')}"]
        env = process.get("env") or []
        if env:
            out.append("    Environment:")
            out += [f"      {e}" for e in env]
    mounts = config.get("mounts") or []
    if mounts:
        out.append("  Mounts:")
        for m in mounts:
            m = _d(m)
            out += [f"    - Destination: {m.get('destination', '')}",
                    f"      Source:      {m.get('source', '')}",
                    f"      Options:     {','.join(m.get('options') or [])}"]
    sylixos = _d(config.get("sylixos"))
    if sylixos:
        out += _sylixos_lines(sylixos)
    return out


def _sylixos_lines(sylixos: dict[str, Any]) -> list[str]:
    out = ["  SylixOS:"]
    if sylixos.get("commands"):
        out.append(f"    Commands: ({', '.join(sylixos['commands'])})")
    devices = sylixos.get("devices") or []
    if devices:
        out.append("    Devices:")
        out += [f"      {_d(d).get('path', '')} (access: {_d(d).get('access', '')})"
                for d in devices]
    network = _d(sylixos.get("network"))
    if network:
        out += ["    Network:",
                f"      FTPD Enabled:    {str(bool(network.get('ftpdEnable'))).lower()}",
                f"      TelnetD Enabled: {str(bool(network.get('telnetdEnable'))).lower()}"]
    res = _d(sylixos.get("resources"))
    if res:
        out.append("    Resources:")
        memory, disk, cpu = _d(res.get("memory")), _d(res.get("disk")), _d(res.get("cpu"))
        if memory:
            out.append(f"      Memory Limit: {memory.get('memoryLimitMB', 0)} MB")
            out.append(f"      KHeap Limit:  {memory.get('kheapLimit', 0)}")
        if disk:
            out.append(f"      Disk Limit:   {disk.get('limitMB', 0)} MB")
        if cpu:
            out.append(f"      CPU Priority (High/Low): {cpu.get('highestPrio', 0)}/"
                       f"{cpu.get('lowestPrio', 0)}")
        kernel = _d(res.get("kernelObject"))
        if kernel:
            out.append("      Kernel Objects:")
            out += [f"        {k}: {kernel.get(k, 0)}" for k in BASE_KERNEL]
            out += [f"        {k}: {kernel[k]}" for k in OPTIONAL_KERNEL
                    if isinstance(kernel.get(k), int) and kernel[k] > 0]
    return out
