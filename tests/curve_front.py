"""A CURVE front to a local registry, for tests of remote clients: ``python -m
tests.curve_front --port N --events-port M --registry EP --events EP --server-secret FILE
--authorized DIR``.

Serves ``tcp://127.0.0.1:N`` (ROUTER) and ``:M`` (XPUB) with CURVE, clients authenticated
by ZAP against the public key files in ``--authorized``, and relays them to the registry's
ipc endpoints as plain ``zmq.proxy`` pairs: requests keep their clients' routing frames
(the registry's ROUTER answers through them), subscriptions go upstream. Killing it is a
registry outage as a remote client sees it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import zmq
from zmq.auth.thread import ThreadAuthenticator

from ecsm_actors.curve import apply_server, load_pair


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    for name in ("port", "events-port"):
        parser.add_argument(f"--{name}", type=int, required=True)
    for name in ("registry", "events", "server-secret", "authorized"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args(argv)
    ctx = zmq.Context()
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=args.authorized)
    pair = load_pair(args.server_secret)

    front = ctx.socket(zmq.ROUTER)
    apply_server(front, pair)
    front.bind(f"tcp://127.0.0.1:{args.port}")
    back = ctx.socket(zmq.DEALER)
    back.connect(args.registry)

    xpub = ctx.socket(zmq.XPUB)
    apply_server(xpub, pair)
    xpub.bind(f"tcp://127.0.0.1:{args.events_port}")
    xsub = ctx.socket(zmq.XSUB)
    xsub.connect(args.events)

    threading.Thread(target=zmq.proxy, args=(xpub, xsub), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("front ready", flush=True)
    try:
        zmq.proxy(front, back)
    except zmq.ContextTerminated:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
