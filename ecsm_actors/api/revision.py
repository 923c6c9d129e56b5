"""Template revisions: a stable hash that names one version of a service template.

Owns :func:`template_hash`. Pure; runs in every process (the service controller names its
ECSM services after it). Invariants: the hash is computed over the *defaulted* wire form
of the template with sorted keys, so key order, omitted defaults and ``[]``-vs-absent make
no difference, while any change of meaning gives a different hash.

Secrets: an inline ``vsoa.password`` is part of the template and so of the hash — a new
password must roll out as a new revision, since ECSM keeps a revision's image (VSOA
included) for its whole life; the hash of a template without a password is what it always
was. The hash is 40 bits of SHA-256: it is public (ECSM service names, annotation keys),
it names no value, but for a *guessable* password someone holding the rest of the template
could test guesses against it — use a random password (or ``passwordFile``). ECSM itself
stores and shows the password of each service. A ``vsoa.passwordFile`` is hashed as its
path; the service controller, which alone reads the file, passes its content as
``secret=`` so a changed file is a new revision too (the CLI cannot compute that hash:
:func:`ecsm_actors.controllers.service.history.current_revision`).
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


def template_hash(template: Mapping[str, Any], *, name: str | None = None,
                  secret: str | None = None) -> str:
    """10 hex chars of SHA-256 over the canonical JSON of the defaulted template.

    ``name`` (metadata.name) supplies the default hostname; it is only needed for a raw
    template without ``hostname`` — a stored (prepared) template already has one.
    ``secret`` is the content of the template's ``vsoa.passwordFile`` (service controller
    only): its SHA-256 is hashed with the template's hash. Raises ``Invalid`` for an
    invalid template."""
    walk = Walk(context={"name": name})
    defaulted = TEMPLATE.walk(template, "spec.template", walk)
    if walk.causes:
        raise Invalid("template is invalid", walk.causes)
    canonical = json.dumps(defaulted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = sha256(canonical.encode()).hexdigest()
    if secret is not None:
        digest = sha256(f"{digest}\0{sha256(secret.encode()).hexdigest()}".encode()).hexdigest()
    return digest[:10]
