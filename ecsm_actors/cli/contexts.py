"""Named contexts of ``ecsm-cli`` in ``~/.ecsm-cli.yaml``, in the style of kubeconfig.

Runs in the ecsm-cli process. The file keeps its older top-level keys (``host``,
``port``, ``protocol``: the ECSM address read by :mod:`.platform_conn`) and gains::

    current-context: sat1
    contexts:
    - name: sat1
      registry: tcp://10.0.0.5:7700       # the registry's remote request endpoint
      events: tcp://10.0.0.5:7701         # its remote events endpoint
      server-key: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   # ecsm-operator keys show
      client-key: /home/crew/.ecsm-cli.d/keys/client.key_secret  # ecsm-cli keys generate
      ecsm: http://10.0.0.5:3001          # ECSM, for the platform verbs
      request-timeout: 30                 # overall deadline of a request, seconds

A context is read only when it is used, and checked then: a malformed one is a
:class:`~ecsm_actors.errors.ConfigError` of one line naming the file, the context and the
field; another context's mistakes do not stop it. Writing (``set-context``,
``use-context``) keeps every other key of the file, replaces it atomically (a temporary
file renamed over it) and leaves it mode 0600: it names key files.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ecsm_actors.api.echo import clip
from ecsm_actors.curve import check_public_key
from ecsm_actors.errors import ConfigError
from ecsm_actors.files import replace_atomically

CONFIG_NAME = ".ecsm-cli.yaml"
#: The fields of a context as written in the file, in order.
FIELDS = ("registry", "events", "server-key", "client-key", "ecsm", "request-timeout")
#: A context name is also a directory name (the link agent's): no slash, no dot first.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: The most of the file read: it is the user's own, but a mistake should not hang us.
MAX_BYTES = 1 << 20


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"context name {clip(name)}: expected 1-63 letters, digits, '.', "
                          f"'_' or '-', starting with a letter or digit")
    return name


def check_endpoint(value: str, what: str) -> str:
    """``tcp://HOST:PORT``, ``ipc://PATH`` or ``unix://PATH`` (the registry's local stream
    endpoint), or ConfigError naming ``what``."""
    text = value.strip()
    if text.startswith(("ipc://", "unix://")) and len(text.partition("://")[2]) > 0:
        return text
    if text.startswith("tcp://"):
        host, _, port = text[len("tcp://"):].rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return text
    raise ConfigError(f"{what}: expected tcp://HOST:PORT or ipc://PATH, got {clip(value)}")


def is_loopback(endpoint: str) -> bool:
    """Whether a ``tcp://`` endpoint names this machine (plain TCP is allowed there)."""
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_ecsm_url(value: str, what: str) -> dict[str, Any]:
    """``http(s)://HOST[:PORT]`` as ``{protocol, host, port}`` (the platform default port
    3001 when none is given), or ConfigError naming ``what``."""
    try:
        url = urlsplit(value.strip())
        port = url.port
    except ValueError:
        url, port = None, None
    if url is None or url.scheme not in ("http", "https") or not url.hostname \
            or url.path not in ("", "/") or url.query:
        raise ConfigError(f"{what}: expected http://HOST:PORT or https://HOST:PORT, "
                          f"got {clip(value)}")
    return {"protocol": url.scheme, "host": url.hostname, "port": port or 3001}


@dataclass(frozen=True, kw_only=True)
class Context:
    """One checked context. Empty strings are fields the context does not set."""

    name: str
    registry: str = ""
    events: str = ""
    server_key: str = ""
    client_key: str = ""
    ecsm: str = ""
    request_timeout: float | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any], where: str) -> Context:
        name = check_name(str(doc.get("name", "")))
        what = f"{where}: context {name}"
        values: dict[str, Any] = {}
        for key in FIELDS:
            value = doc.get(key)
            if value is None or value == "":
                continue
            if key == "request-timeout":
                if isinstance(value, bool) or not isinstance(value, int | float) \
                        or not math.isfinite(value) or value <= 0:
                    raise ConfigError(f"{what}: request-timeout: expected a number of "
                                      f"seconds > 0, got {clip(str(value))}")
                values["request_timeout"] = float(value)
                continue
            if not isinstance(value, str):
                raise ConfigError(f"{what}: {key}: expected a string")
            if key in ("registry", "events"):
                check_endpoint(value, f"{what}: {key}")
            elif key == "server-key":
                check_public_key(value, f"{what}: server-key")
            elif key == "ecsm":
                parse_ecsm_url(value, f"{what}: ecsm")
            values[key.replace("-", "_")] = value.strip()
        return cls(name=name, **values)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name}
        for key in FIELDS:
            value = getattr(self, key.replace("-", "_"))
            if value not in (None, ""):
                doc[key] = value
        return doc


@dataclass(frozen=True, kw_only=True)
class ContextFile:
    """The file as read: the whole document (other keys kept for writing it back)."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> str:
        value = self.doc.get("current-context")
        return value if isinstance(value, str) else ""

    def entries(self) -> list[dict[str, Any]]:
        """The raw context maps (unchecked), for listing."""
        raw = self.doc.get("contexts")
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            raise ConfigError(f"{self.path}: contexts: expected a list of maps "
                              f"(- name: NAME ...)")
        return raw

    def names(self) -> list[str]:
        return [str(e.get("name", "")) for e in self.entries()]

    def get(self, name: str) -> Context:
        for entry in self.entries():
            if entry.get("name") == name:
                return Context.from_doc(entry, str(self.path))
        raise ConfigError(f"no context {clip(name)} in {self.path} "
                          f"(see ecsm-cli config get-contexts)")

    def current_context(self) -> Context | None:
        """The current context, checked; None when the file sets none."""
        if not self.current:
            return None
        return self.get(self.current)


def config_path(home: Path) -> Path:
    return home / CONFIG_NAME


def load(path: Path) -> ContextFile:
    """The file at ``path`` (empty when missing); a file that cannot be read or is not a
    YAML map is a ConfigError of one line."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return ContextFile(path=path)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB")
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a map of keys at the top")
    return ContextFile(path=path, doc=doc)


def save(cf: ContextFile, doc: dict[str, Any]) -> None:
    """Replace the file with ``doc`` atomically, mode 0600 (through a symlink: its
    target)."""
    target = Path(os.path.realpath(cf.path))
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
    try:
        replace_atomically(target, text.encode())
    except OSError as e:
        raise ConfigError(f"cannot write {cf.path}: {e.strerror}") from None


def set_context(path: Path, name: str, changes: dict[str, Any]) -> tuple[Context, bool]:
    """Create context ``name`` or change the given fields of it (``changes`` maps file
    field names to values; None leaves a field as it is, "" removes it). Returns the
    context and whether it was created."""
    check_name(name)
    cf = load(path)
    entries = [dict(e) for e in cf.entries()]
    where = next((i for i, e in enumerate(entries) if e.get("name") == name), None)
    entry = {"name": name} if where is None else entries[where]
    for key, value in changes.items():
        if value is None:
            continue
        if value == "":
            entry.pop(key, None)
        else:
            entry[key] = value
    context = Context.from_doc(entry, str(path))
    if where is None:
        entries.append(context.to_doc())
    else:
        entries[where] = {**entry, **context.to_doc()}
    save(cf, {**cf.doc, "contexts": entries})
    return context, where is None


def use_context(path: Path, name: str) -> Context:
    cf = load(path)
    context = cf.get(name)
    save(cf, {**cf.doc, "current-context": name})
    return context
