#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use answers; start the local cluster when it is
# installed but down. RETENTIOND_TEST_DATABASE_URL overrides the server (admin URL).
set -euo pipefail
url="${RETENTIOND_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

answers() { pg_isready -q -d "$url" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "ensure-postgres: pg_isready not found: install PostgreSQL (Debian: apt-get install postgresql) or set RETENTIOND_TEST_DATABASE_URL" >&2
  exit 1
fi
answers && exit 0
if [ -z "${RETENTIOND_TEST_DATABASE_URL:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "ensure-postgres: starting local cluster $version/main" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do answers && exit 0; sleep 1; done
fi
echo "ensure-postgres: PostgreSQL does not answer at $url; the tests need a real server (start it, or set RETENTIOND_TEST_DATABASE_URL)" >&2
exit 1
