"""Template revisions: a stable hash that names one version of a service template."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def template_hash(template: dict[str, Any]) -> str:
    """10 hex chars of SHA-256 over the canonical JSON of a (defaulted) template."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]
