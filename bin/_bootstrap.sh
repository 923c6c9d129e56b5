# Sourced by the launchers in bin/: create .venv and install the project on first use.
# A stamp records the hash of the packaging files, so a change to them reinstalls.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.ecsm-actors-installed"
want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "ecsm-actors: preparing $VENV (first use)..." >&2
    PY="${PYTHON:-python3}"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]" >&2
    # Bytecode once, validated by hash (never stale): every process start skips compiling.
    "$VENV/bin/python" -m compileall -q --invalidation-mode checked-hash "$ROOT/ecsm_actors" >&2
    echo "$want" > "$STAMP"
fi
