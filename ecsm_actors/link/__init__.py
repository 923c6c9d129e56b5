"""The ground-side link agent of ``ecsm-cli``, in the style of ssh's ControlPersist.

One agent per context (:mod:`.files` names its directory): a background process that
holds the CURVE connections to a remote registry's request and events endpoints and
serves them locally on ``ipc://`` sockets, so a command costs one round trip to the
device instead of a handshake and a round trip. :mod:`.agent` is the process
(``python -m ecsm_actors link-agent``); :mod:`.control` is what ``ecsm-cli`` uses to
start, query and stop it; :mod:`.settings` is what an agent serves.
"""
