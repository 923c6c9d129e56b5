"""The systemd unit (conf/ecsm-operator.service) runs the daemon with least privilege."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "conf" / "ecsm-operator.service"


def service_section() -> dict[str, list[str]]:
    """Every ``Key=value`` of [Service], repeated keys in order (systemd's syntax allows
    them, so configparser does not fit)."""
    keys: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def test_the_daemon_runs_as_its_own_user_without_any_privilege() -> None:
    s = service_section()
    assert s["User"] == ["ecsm-actors"] and s["Group"] == ["ecsm-actors"]
    assert "DynamicUser" not in s  # the run dir keeps one owner across restarts
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]


def test_only_the_run_dir_is_writable_and_private() -> None:
    s = service_section()
    run_dir = "/var/lib/ecsm-actors"
    assert f"ECSM_ACTORS_RUN_DIR={run_dir}" in s["Environment"]
    assert s["StateDirectory"] == ["ecsm-actors"] and s["StateDirectoryMode"] == ["0700"]
    assert s["ReadWritePaths"] == [run_dir]
    assert s["UMask"] == ["0077"]
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectControlGroups", "LockPersonality",
                "RestrictSUIDSGID", "RestrictNamespaces", "RestrictRealtime"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]


def test_memory_is_capped_and_only_local_and_ip_sockets_are_allowed() -> None:
    s = service_section()
    assert s["MemoryMax"] == ["512M"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]


def test_no_system_call_filter_takes_pidfd_or_prctl_from_the_supervisor() -> None:
    assert "SystemCallFilter" not in service_section()
