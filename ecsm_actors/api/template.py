"""Typed view of an ECSMService template (``spec.template``) and its parts.

Owns :class:`Template` — image, pull policy, hostname, command, env, resource limits,
volume mounts, VSOA and the SylixOS platform block — with helpers the service controller
uses to build ECSM bodies (``image_ref``, ``limits.memory_mib``, ``revision``). Runs in
controllers and the CLI. Built only from prepared (defaulted, valid) wire dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecsm_actors.api.enums import ImageAction, PullPolicy
from ecsm_actors.api.image import ImageRef, parse_image
from ecsm_actors.api.quantity import to_mib
from ecsm_actors.api.revision import template_hash
from ecsm_actors.api.wire import WireObject, wire


@dataclass(frozen=True, kw_only=True)
class EnvVar(WireObject):
    name: str
    value: str = ""


@dataclass(frozen=True, kw_only=True)
class ResourceLimits(WireObject):
    memory: str | None = None
    disk: str | None = None

    @property
    def memory_mib(self) -> int | None:
        """Memory limit in whole MiB (rounded up): ECSM's ``memoryLimitMB``."""
        return to_mib(self.memory) if self.memory is not None else None

    @property
    def disk_mib(self) -> int | None:
        """Disk limit in whole MiB (rounded up): ECSM's ``disk.limitMB``."""
        return to_mib(self.disk) if self.disk is not None else None


@dataclass(frozen=True, kw_only=True)
class Resources(WireObject):
    limits: ResourceLimits | None = None


@dataclass(frozen=True, kw_only=True)
class VolumeMount(WireObject):
    name: str
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class HealthCheck(WireObject):
    timeout_seconds: int | None = None
    failure_threshold: int | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None


@dataclass(frozen=True, kw_only=True)
class Vsoa(WireObject):
    password: str | None = None
    password_file: str | None = None  # read by the service controller, never stored
    port: int | None = None  # 0: ECSM picks one
    health_check: HealthCheck | None = None


@dataclass(frozen=True, kw_only=True)
class Root(WireObject):
    path: str
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class Platform(WireObject):
    os: str | None = None
    arch: str | None = None


@dataclass(frozen=True, kw_only=True)
class Device(WireObject):
    path: str
    access: str | None = None


@dataclass(frozen=True, kw_only=True)
class Network(WireObject):
    ftpd: bool | None = None
    telnetd: bool | None = None


@dataclass(frozen=True, kw_only=True)
class CpuPriority(WireObject):
    highest_prio: int | None = None
    lowest_prio: int | None = None


@dataclass(frozen=True, kw_only=True)
class KernelMemory(WireObject):
    kheap_limit: int | None = None  # bytes


@dataclass(frozen=True, kw_only=True)
class SylixOS(WireObject):
    devices: tuple[Device, ...] = wire(omit_empty=True, default=())
    network: Network | None = None
    cpu: CpuPriority | None = None
    memory: KernelMemory | None = None


@dataclass(frozen=True, kw_only=True)
class PlatformSpecific(WireObject):
    action: ImageAction = ImageAction.RUN
    root: Root | None = None
    platform: Platform | None = None
    sylixos: SylixOS | None = None


@dataclass(frozen=True, kw_only=True)
class Template(WireObject):
    image: str
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    prepull: bool = False
    hostname: str
    command: tuple[str, ...] = wire(omit_empty=True, default=())
    env: tuple[EnvVar, ...] = wire(omit_empty=True, default=())
    resources: Resources | None = None
    volume_mounts: tuple[VolumeMount, ...] = wire(omit_empty=True, default=())
    vsoa: Vsoa | None = None
    platform_specific: PlatformSpecific = wire(default_factory=PlatformSpecific)

    @property
    def image_ref(self) -> ImageRef:
        return parse_image(self.image)

    @property
    def limits(self) -> ResourceLimits:
        """The resource limits (empty when none are set)."""
        if self.resources is None or self.resources.limits is None:
            return ResourceLimits()
        return self.resources.limits

    @property
    def revision(self) -> str:
        """The template hash naming this revision (with ``vsoa.passwordFile``, the service
        controller's revision also covers the file's content: ``template_hash(secret=)``)."""
        return template_hash(self.to_wire())
