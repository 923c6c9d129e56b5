"""CURVE key pairs: files, loading, and applying them to a ZeroMQ socket.

Used on both sides of the ground link: the registry's server pair (``<run dir>/keys/``)
and a crew's client pair (``ecsm-cli keys generate``). Keys are Z85 text (40
characters); a key file is pyzmq's certificate format (``zmq.auth``): the public key in
``NAME.key``, public and secret in ``NAME.key_secret`` (mode 0600, directory 0700).

A file that is missing, unreadable, or does not hold a well-formed key is a
:class:`~ecsm_actors.errors.ConfigError` naming it — never the secret itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from ecsm_actors.errors import ConfigError

_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def looks_like_key(text: str) -> bool:
    """Whether ``text`` is shaped like a Z85 key (40 characters of its alphabet)."""
    return bool(_Z85_KEY.match(text))


def check_public_key(text: str, what: str = "public key") -> bytes:
    """A Z85 public key as bytes, or ConfigError."""
    key = text.strip()
    if not _Z85_KEY.match(key):
        raise ConfigError(f"{what} is not a CURVE public key (40 Z85 characters)")
    return key.encode("ascii")


@dataclass(frozen=True)
class KeyPair:
    public: bytes
    secret: bytes


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Create ``NAME.key`` (public) and ``NAME.key_secret`` (0600) in ``directory``
    (created 0700); an existing pair is kept. Returns (public file, secret file)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not secret.exists():
        umask = os.umask(0o177)
        try:
            zmq.auth.create_certificates(directory, name)
        finally:
            os.umask(umask)
        os.chmod(secret, 0o600)
    return public, secret


def load_pair(secret_file: str | os.PathLike[str]) -> KeyPair:
    """The key pair in a ``.key_secret`` file."""
    path = Path(secret_file).expanduser()
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the key file {path}: {type(e).__name__}") from None
    if secret is None:
        raise ConfigError(f"{path} holds no secret key (a .key_secret file is needed)")
    check_public_key(public.decode("ascii", "replace"), f"the public key in {path}")
    return KeyPair(public=public, secret=secret)


def load_public(public_file: str | os.PathLike[str]) -> bytes:
    path = Path(public_file).expanduser()
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the key file {path}: {type(e).__name__}") from None
    return check_public_key(public.decode("ascii", "replace"), f"the public key in {path}")


@dataclass(frozen=True)
class ClientKeys:
    """What a client socket needs to reach a CURVE server."""

    server_key: bytes
    pair: KeyPair

    @classmethod
    def load(cls, server_key: str, client_key_file: str | os.PathLike[str]) -> ClientKeys:
        return cls(server_key=check_public_key(server_key, "the server key"),
                   pair=load_pair(client_key_file))

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` (before connect) a CURVE client of the server."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.pair.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.pair.secret)


def apply_server(sock: zmq.Socket[Any], pair: KeyPair) -> None:
    """Make ``sock`` (before bind) a CURVE server with ``pair``; clients are then
    authenticated through ZAP."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret)
