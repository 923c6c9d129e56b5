"""Everything about ECSM, the SylixOS container platform's REST API.

``rest`` (transport, envelope rule, typed errors) → ``resources`` (one client per resource)
→ ``clientset`` (the entry point, ``Clientset.from_config(cfg)``); ``types`` are the typed
answers, ``wire`` decodes them. ``simulator`` plays the platform for tests and demos.
"""
