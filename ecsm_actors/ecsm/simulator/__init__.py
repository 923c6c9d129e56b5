"""The ECSM simulator: a stateful HTTP fake of the ECSM REST API (ecsm-api.md).

Process main: :mod:`.server` (``python -m ecsm_actors simulator``). Layers, top down:
``server`` → ``httpd`` (HTTP/1.1 front) → ``app`` (faults, dispatch, envelopes) →
``routes``/``admin_routes`` → ``api_workloads``/``api_platform`` (handlers) →
``deploy``/``actions`` (rules of §11) → ``views`` (derived wire views) → ``state``/
``model``/``seed`` (records). ``admin`` is the Python client of the ``/_sim/`` API.
Imports only api, errors, config and the project's process helpers.
"""
