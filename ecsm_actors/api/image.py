"""Image references of a service template: ``name@tag`` or ``name@tag#os``.

Owns the syntax (ECSM refs are ``name@tag#os``; the CRD comment says ``name@tag``) and
:class:`ImageRef`. Pure; runs in every process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ecsm_actors.api.names import remembered
from ecsm_actors.errors import Cause, Invalid

_IMAGE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._/:-]*)@(?P<tag>[A-Za-z0-9][A-Za-z0-9._+-]*)"
    r"(?:#(?P<os>[A-Za-z0-9][A-Za-z0-9._-]*))?$"
)

IMAGE_HINT = 'must be "name@tag" or "name@tag#os" (e.g. "app@1.0#sylixos")'


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    name: str
    tag: str
    os: str | None = None

    def ref(self, default_os: str | None = None) -> str:
        """``name@tag#os``; ``default_os`` fills a missing os (ECSM wants one)."""
        os_ = self.os or default_os
        return f"{self.name}@{self.tag}" + (f"#{os_}" if os_ else "")

    def __str__(self) -> str:
        return self.ref()


def parse_image(ref: str) -> ImageRef:
    match = _IMAGE.match(ref) if isinstance(ref, str) else None
    if not match:
        raise Invalid(f"invalid image {ref!r}", [Cause(field="", message=IMAGE_HINT)])
    return ImageRef(name=match["name"], tag=match["tag"], os=match["os"])


@remembered
def image_check(value: str) -> str | None:
    return None if _IMAGE.match(value) else IMAGE_HINT
