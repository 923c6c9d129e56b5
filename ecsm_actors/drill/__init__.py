"""``ecsm-operator drill``: a seeded fault campaign that proves the whole system heals.

Runs in the drill process only (the ``ecsm-operator`` CLI); it starts and drives a
complete instance as a user and an adversary would, through public interfaces only
(registry client, supervisor control socket, ECSM REST and the simulator's admin API).

Pure parts (unit-tested): :mod:`.workload` and :mod:`.schedule` (what happens, from a
seed), :mod:`.ledger` (acknowledged writes), :mod:`.snapshot` types and
:mod:`.invariants` (the verdict), :mod:`.report`. Impure parts: :mod:`.system` (the
instance), :mod:`.writer`, :mod:`.changes`, :mod:`.faults`, :mod:`.monitor`,
:mod:`.recovery`, :mod:`.runner`, :mod:`.cli`.
"""
