"""Template revisions: a stable hash that names one version of a service template.

Owns :func:`template_hash`. Pure; runs in every process (the service controller names its
ECSM services after it). Invariants: the hash is computed over the *defaulted* wire form
of the template with sorted keys, so key order, omitted defaults and ``[]``-vs-absent make
no difference, while any change of meaning gives a different hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ecsm_actors.api.schema import Walk
from ecsm_actors.api.service_schema import TEMPLATE
from ecsm_actors.errors import Invalid

try:  # CPython's own SHA-256, as random.py does: hashlib would map OpenSSL's libcrypto
    from _sha256 import sha256  # (3.5 MiB resident) into every controller for one hash
except ImportError:  # pragma: no cover - other interpreters / versions
    from hashlib import sha256


def template_hash(template: Mapping[str, Any], *, name: str | None = None) -> str:
    """10 hex chars of SHA-256 over the canonical JSON of the defaulted template.

    ``name`` (metadata.name) supplies the default hostname; it is only needed for a raw
    template without ``hostname`` — a stored (prepared) template already has one.
    Raises ``Invalid`` for an invalid template."""
    walk = Walk(context={"name": name})
    defaulted = TEMPLATE.walk(template, "spec.template", walk)
    if walk.causes:
        raise Invalid("template is invalid", walk.causes)
    canonical = json.dumps(defaulted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256(canonical.encode()).hexdigest()[:10]
