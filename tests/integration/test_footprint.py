"""What a controller process loads: only what it needs to run, so it starts fast and stays
small (issue 5's targets). A fresh interpreter imports the controller the way
``python -m ecsm_actors controller <name>`` does and reports its modules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import json, sys
    import ecsm_actors.__main__
    from ecsm_actors.config import load_config
    from ecsm_actors.controllers.main import load_spec
    load_spec(sys.argv[1], load_config(environ={}))
    print(json.dumps(sorted(sys.modules)))
""")

#: Heavy and not needed by a controller: the CLI stack, the HTTP stack of ``requests``
#: (ECSM over plain HTTP uses the lean transport), OpenSSL (hashlib/ssl), the idna codec,
#: the registry's validation and store, psutil, the conf-file parser, argparse, the
#: Prometheus exposition (about 12 MB of RSS; only the supervisor and the CLI render it).
FORBIDDEN = ("click", "yaml", "requests", "urllib3", "charset_normalizer", "ssl", "_ssl",
             "_hashlib", "http.client", "email", "encodings.idna", "stringprep", "lmdb",
             "psutil", "tomllib", "argparse", "ecsm_actors.cli", "ecsm_actors.store",
             "ecsm_actors.api.validation", "ecsm_actors.api.hpa", "ecsm_actors.api.service",
             "prometheus_client", "ecsm_actors.supervisor.metrics")


@pytest.mark.parametrize("controller", ["service", "hpa"])
def test_a_controller_process_loads_no_heavy_module_it_does_not_use(controller: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, controller], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    loaded = set(json.loads(out))
    assert f"ecsm_actors.controllers.{controller}" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN
                   or any(m.startswith(f + ".") for f in FORBIDDEN))
    assert heavy == []
