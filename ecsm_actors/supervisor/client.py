"""Client of the supervisor's control socket (used by ``ecsm-operator``, tests, drills).

Runs in the calling process. One REQ socket per call (send, wait with a timeout, close
with linger 0), so a dead or stuck supervisor never leaves the client in a bad state.
Before sending, the instance lock in the run dir tells whether a supervisor runs at all:
a missing daemon is reported at once as one clear ``ControlError``, without waiting.
"""

from __future__ import annotations

import itertools
from typing import Any

import zmq

from ecsm_actors import protocol
from ecsm_actors.config import Config
from ecsm_actors.errors import ControlError, RegistryError
from ecsm_actors.protocol import ControlOp
from ecsm_actors.supervisor.rundir import running_supervisor

_ids = itertools.count(1)


class SupervisorClient:
    def __init__(self, cfg: Config, *, timeout: float = 5.0,
                 context: zmq.Context[Any] | None = None) -> None:
        self.cfg = cfg
        self.endpoint = cfg.control_endpoint
        self.timeout = timeout
        self._context = context or zmq.Context.instance()

    def _absent(self) -> ControlError:
        return ControlError(f"no supervisor running in {self.cfg.run_dir} "
                            f"(control socket {self.endpoint})")

    def supervisor_pid(self) -> int | None:
        """Pid of the running supervisor (from the locked pidfile), None if none."""
        return running_supervisor(self.cfg)

    def call(self, op: ControlOp, **fields: Any) -> Any:
        """Send one request; raise ControlError when absent, silent or refusing."""
        if self.supervisor_pid() is None:
            raise self._absent()
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(self.endpoint)
            sock.send(protocol.encode_control(op, next(_ids), **fields))
            if not sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                if self.supervisor_pid() is None:
                    raise self._absent()
                raise ControlError(f"the supervisor in {self.cfg.run_dir} did not answer "
                                   f"within {self.timeout:g}s (control socket {self.endpoint})")
            frame = sock.recv()
        except zmq.ZMQError as e:
            raise ControlError(f"control socket {self.endpoint}: {e}") from e
        finally:
            sock.close(linger=0)
        try:
            return protocol.decode_reply(frame).result
        except RegistryError as e:
            raise ControlError(str(e)) from e

    def ps(self) -> list[dict[str, Any]]:
        return list(self.call(ControlOp.PS))

    def kill(self, name: str, signal: str | int = "KILL") -> dict[str, Any]:
        return dict(self.call(ControlOp.KILL, name=name, signal=signal))

    def restart(self, name: str) -> dict[str, Any]:
        return dict(self.call(ControlOp.RESTART, name=name))

    def stop(self, name: str) -> dict[str, Any]:
        return dict(self.call(ControlOp.STOP, name=name))

    def start(self, name: str) -> dict[str, Any]:
        return dict(self.call(ControlOp.START, name=name))

    def stats(self, name: str | None = None) -> dict[str, Any]:
        return dict(self.call(ControlOp.STATS, name=name))

    def status(self) -> dict[str, Any]:
        return dict(self.call(ControlOp.STATUS))

    def shutdown(self) -> dict[str, Any]:
        return dict(self.call(ControlOp.SHUTDOWN))
