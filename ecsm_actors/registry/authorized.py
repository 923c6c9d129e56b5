"""Who may reach the registry's remote endpoints: the server key pair and the
authorized-keys file, both under ``<run dir>/keys/`` (directory 0700, files 0600).

Runs in the registry (which reads the file and notices its changes) and in
``ecsm-operator keys …`` (which edits it). The file, ``<run dir>/keys/authorized_keys``,
holds one client per line::

    # NAME ROLE PUBLICKEY
    ground-1 write rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
    viewer   read  Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID

``NAME`` is 1–64 characters of ``[A-Za-z0-9._@-]`` starting with a letter or a digit
(it becomes the connection's ZAP User-Id and is named in logs and ``Forbidden``
answers); ``ROLE`` is ``read`` (PING, GET, LIST, WATCH_SINCE and events) or ``write``
(everything); ``PUBLICKEY`` is the client's CURVE public key in Z85 (40 characters). A line
whose first non-blank character is ``#`` is a comment (only whole lines: ``#`` is a Z85
character). Names and keys are unique: a later line repeating either is an invalid line.
An invalid line is skipped with one warning; the others still apply.

The file is only ever replaced atomically (written aside, fsynced, renamed over), under
an advisory lock held by the writer, so the registry never reads half a file and two
``ecsm-operator keys`` commands never lose each other's change. A file writable by group
or others is not trusted: it authorizes nobody (and says so), as sshd's StrictModes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ecsm_actors import curve
from ecsm_actors.errors import PREVIEW, ConfigError, clip_text
from ecsm_actors.files import replace_atomically

#: Directory of the key files, under the run dir.
KEYS_DIR = "keys"
#: Base name of the registry's key pair (``registry.key``, ``registry.key_secret``).
SERVER_KEY_NAME = "registry"
#: The authorized-keys file, in the keys directory.
AUTHORIZED_KEYS = "authorized_keys"
#: A larger file is not read (it is not an authorized-keys file).
MAX_FILE_BYTES = 1 << 20
#: Invalid lines named in one warning; the rest are counted.
MAX_PROBLEMS_SHOWN = 5

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

HEADER = ("# ecsm-actors authorized keys: NAME ROLE PUBLICKEY (ROLE read or write).\n"
          "# Edit with: ecsm-operator keys authorize|revoke|list\n")


class Role(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, kw_only=True)
class AuthorizedKey:
    name: str
    role: Role
    key: str  # Z85 public key
    line: int = field(default=0, compare=False)  # where it is in the file (1-based)


@dataclass(frozen=True, kw_only=True)
class AuthorizedKeys:
    """One reading of the file: the valid entries, by name and by key, and what was
    wrong with the other lines."""

    entries: tuple[AuthorizedKey, ...] = ()
    problems: tuple[str, ...] = ()
    by_name: dict[str, AuthorizedKey] = field(default_factory=dict, compare=False)
    by_key: dict[str, AuthorizedKey] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, entries: list[AuthorizedKey], problems: list[str]) -> AuthorizedKeys:
        return cls(entries=tuple(entries), problems=tuple(problems),
                   by_name={e.name: e for e in entries}, by_key={e.key: e for e in entries})

    def warning(self, path: Path | str) -> str | None:
        """One line naming the invalid lines, or None when there are none."""
        if not self.problems:
            return None
        shown = "; ".join(self.problems[:MAX_PROBLEMS_SHOWN])
        more = len(self.problems) - MAX_PROBLEMS_SHOWN
        if more > 0:
            shown += f"; and {more} more"
        return (f"{path}: {len(self.problems)} invalid line(s) ignored ({shown}); "
                f"the other {len(self.entries)} key(s) apply")

    def removed_from(self, before: AuthorizedKeys) -> list[AuthorizedKey]:
        """Entries of ``before`` whose key no longer authorizes the same name: revoked,
        or their name now has another key (connections made with them must go)."""
        return [e for e in before.entries
                if (now := self.by_key.get(e.key)) is None or now.name != e.name]


def _quoted(text: str) -> str:
    return f"'{clip_text(text, PREVIEW)}'"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"invalid key name {_quoted(name)}: 1-64 characters of "
                          "letters, digits, '.', '_', '@', '-', starting with a letter "
                          "or a digit")
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ConfigError(f"invalid role {_quoted(role)}: expected read or write"
                          ) from None


def parse(text: str) -> AuthorizedKeys:
    """The entries of an authorized-keys file; invalid lines are listed in ``problems``."""
    entries: list[AuthorizedKey] = []
    problems: list[str] = []
    names: set[str] = set()
    keys: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        try:
            if len(fields) != 3:
                raise ConfigError(f"expected NAME ROLE PUBLICKEY, got {len(fields)} field(s)")
            name, role, key = check_name(fields[0]), check_role(fields[1]), fields[2]
            curve.check_public_key(key, "PUBLICKEY")
            if name in names:
                raise ConfigError(f"name {name} already used above")
            if key in keys:
                raise ConfigError(f"the key of {name} is already authorized above")
        except ConfigError as e:
            problems.append(f"line {number}: {e}")
            continue
        names.add(name)
        keys.add(key)
        entries.append(AuthorizedKey(name=name, role=role, key=key, line=number))
    return AuthorizedKeys.of(entries, problems)


# -- locations -------------------------------------------------------------------------


def keys_dir(run_dir: Path) -> Path:
    return run_dir / KEYS_DIR


def authorized_keys_path(run_dir: Path) -> Path:
    return keys_dir(run_dir) / AUTHORIZED_KEYS


def server_pair(run_dir: Path) -> curve.KeyPair:
    """The registry's CURVE key pair, created (0600 in a 0700 directory) if absent."""
    _, secret = curve.generate(keys_dir(run_dir), SERVER_KEY_NAME)
    return curve.load_pair(secret)


# -- reading ---------------------------------------------------------------------------


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None), (None, None) when the file is missing, or (None, why not)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_mode & 0o022:
                return None, (f"writable by group or others (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}): trusted by nobody; "
                              f"chmod 600 {path}")
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"cannot read it: {e.strerror}"
    if len(data) > MAX_FILE_BYTES:
        return None, f"larger than {MAX_FILE_BYTES} bytes: not read"
    return data.decode("utf-8", "replace"), None


def read(path: Path) -> AuthorizedKeys:
    """The file's entries; a missing file authorizes nobody. A file that cannot be
    trusted or read authorizes nobody either, its reason in ``problems``."""
    text, problem = _read_text(path)
    if problem is not None:
        return AuthorizedKeys.of([], [problem])
    return parse(text or "")


@dataclass
class KeysFile:
    """The authorized-keys file as the registry follows it: :meth:`refresh` re-reads it
    when its inode, size or modification time changed (a ``stat``, cheap enough to run
    at every heartbeat and every ZAP request)."""

    path: Path
    current: AuthorizedKeys = field(default_factory=AuthorizedKeys)
    _signature: tuple[int, int, int] | None = None

    def refresh(self) -> AuthorizedKeys | None:
        """The previous reading when the file changed (``current`` is then the new
        one), else None."""
        try:
            st = os.stat(self.path)
            signature: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            signature = None
        if signature == self._signature:
            return None
        self._signature = signature
        before, self.current = self.current, read(self.path)
        return before


# -- writing (ecsm-operator keys) ------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the advisory lock of ``path``'s writers (a ``.lock`` file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write(path: Path, text: str) -> None:
    """Replace the file atomically with ``text`` (mode 0600)."""
    replace_atomically(path, text.encode(), sync_dir=True)


def _edit(path: Path) -> tuple[list[str], AuthorizedKeys]:
    """The file's lines (a header for a new file) and their reading, for an edit that
    keeps every other line as it is: comments, and invalid lines too (nothing lost)."""
    text, problem = _read_text(path)
    if problem is not None and text is None and path.exists():
        if "writable by group" not in problem:
            raise ConfigError(f"{path}: {problem}")
        text = path.read_text(errors="replace")  # ours to rewrite 0600
    if text is None:
        text = HEADER
    return text.splitlines(keepends=True), parse(text)


def _line(entry: AuthorizedKey) -> str:
    return f"{entry.name} {entry.role.value} {entry.key}\n"


def authorize(path: Path, name: str, key: str, role: Role) -> tuple[AuthorizedKey, bool]:
    """Add ``name``, or replace its line; returns the entry and whether it replaced one.
    A key already authorized under another name is a ConfigError (one key, one name)."""
    entry = AuthorizedKey(name=check_name(name), role=role,
                          key=curve.check_public_key(key).decode("ascii"))
    with locked(path):
        lines, current = _edit(path)
        other = current.by_key.get(entry.key)
        if other is not None and other.name != entry.name:
            raise ConfigError(f"this key is already authorized as {other.name} "
                              f"(ecsm-operator keys revoke {other.name} first)")
        old = current.by_name.get(entry.name)
        if old is not None:
            lines[old.line - 1] = _line(entry)
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(_line(entry))
        write(path, "".join(lines))
    return entry, old is not None


def revoke(path: Path, name: str) -> AuthorizedKey:
    """Remove ``name``'s line; a name that is not there is a ConfigError."""
    with locked(path):
        lines, current = _edit(path)
        entry = current.by_name.get(name)
        if entry is None:
            raise ConfigError(f"no authorized key named {_quoted(name)} "
                              "(see ecsm-operator keys list)")
        del lines[entry.line - 1]
        write(path, "".join(lines))
    return entry
