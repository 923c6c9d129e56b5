"""The zygote: a warm, supervised parent every Python child is forked from.

A fresh interpreter spends most of a restart importing; the zygote imports once. It is a
child of the supervisor like any other (``python -m ecsm_actors zygote MODULE...``, shown
in ``ps``, restarted when it dies), with one extra: a ``SOCK_SEQPACKET`` socket pair to the
supervisor, on which it says when it is ready and then takes fork orders.

* :mod:`.server` — the zygote process: preload, ``gc.freeze``, serve fork orders, fork
  twice so the child is reparented to the supervisor (a child subreaper); keep a spare
  forked in advance, so that an order costs no fork.
* :mod:`.child` — what a forked child does before it becomes the process it was asked to
  be: reset signals, fds, logging, environment and seeds (a spare all but the order's
  environment and log, before any order), then run its main exactly as
  ``python -m ...`` / ``python script.py`` would.
* :mod:`.link` — the supervisor's side: the socket pair, readiness, orders and replies.
* :mod:`.orders` — the messages on the socket (JSON, the log file passed with SCM_RIGHTS).

Invariants: the zygote never creates a ZeroMQ context, opens LMDB, starts a thread or
reads the configuration; every forked child is the supervisor's own child (so its
pidfd and ``waitpid`` reaping are those of any child, exactly once); while the zygote is
down, children start as fresh interpreters.
"""
