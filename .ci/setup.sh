#!/usr/bin/env bash
# Idempotent set-up of everything pinrec needs on a fresh machine (Python 3.11, Java 17, Maven):
#   1. a virtual environment with the pipeline, airflow and dev extras (cached: skipped when
#      setup.cfg has not changed since the last successful install);
#   2. the project itself, editable, pointing at this checkout;
#   3. redis-server (Debian package) for the feature-store tests, when missing;
#   4. the Delta Lake jars, resolved with the machine's Maven client into var/jars, so that Spark
#      starts without network access.
# Environment: PINREC_VENV (default ~/.cache/pinrec/venv), PYTHON (default python3),
#              PINREC_GPU=1 to swap faiss-cpu for faiss-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PINREC_VENV:-$HOME/.cache/pinrec/venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q -U pip setuptools wheel
fi
stamp="$VENV/.pinrec-deps-$(sha256sum setup.cfg | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing dependencies (first run: several minutes; torch is large)"
  "$VENV/bin/pip" install -q -e ".[pipeline,airflow,dev]"
  if [ "${PINREC_GPU:-0}" = "1" ]; then
    "$VENV/bin/pip" uninstall -y -q faiss-cpu
    "$VENV/bin/pip" install -q "faiss-gpu==1.15.1"
  fi
  rm -f "$VENV"/.pinrec-deps-*
  touch "$stamp"
fi
# Cheap, and keeps the editable install pointing at this checkout.
if ! out=$("$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . 2>&1); then
  echo "$out" >&2; exit 1
fi

# Test services from Debian's packages (the Redis feature-store tests start a real redis-server).
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing redis-server (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "[setup] redis-server not found and cannot apt-get: the Redis tests will be skipped" >&2
  fi
fi
# PostgreSQL for the real-scheduler Airflow test (tests/dags/test_scheduler.py runs initdb/pg_ctl
# itself, on 127.0.0.1; Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH).
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing postgresql (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "[setup] PostgreSQL not found and cannot apt-get: the real-scheduler Airflow test will be skipped" >&2
  fi
fi
# Chromium, headless, for the run report's browser test (tests/jobs/report/test_report_browser.py).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[setup] chromium not found and cannot apt-get: the run report's browser test will be skipped" >&2
  fi
fi

"$VENV/bin/python" -m pinrec.jobs.io.jars --pom config/jvm/pom.xml --dest var/jars
echo "[setup] ready: $VENV"
