#!/usr/bin/env bash
# Runs the Dovecot test suite (dovecot-glue/tests/test_*.py, Python 3 stdlib only)
# against Dovecot instances it starts itself with ci/dovecot-start.sh in a temporary
# directory (kept on failure) and stops at the end.
#
# Usage: dovecot-glue/tests/run.sh [NAME...]   (NAMEs select tests by substring)
# Environment:
#   DOVECOT_TEST_DRIVER      rados (default; needs the built plugin and the cluster of
#                            $CEPH_CONF, default target/ceph) or sdbox (Dovecot's own
#                            driver, to check the suite itself)
#   DOVECOT_TEST_PORT_BASE   first port (default 24100; uses P..P+310)
#   DOVECOT_TEST_PLUGIN_DIR  where lib20_rados_plugin.so is (default dovecot-glue/build)
#   DOVECOT_TEST_KEEP=1      keep the temporary directory
#   RADOS_MAIL_NS_PREFIX, RADOS_MAIL_TIMEOUT, RADOS_MAIL_POOL: see ci/dovecot-start.sh
# Must run as root (Dovecot's master); exits non-zero on any failure. The last line
# is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${DOVECOT_TEST_DRIVER:-rados}" == rados && -z "${CEPH_CONF:-}" && -r target/ceph/env.sh ]]; then
    # shellcheck disable=SC1091
    source target/ceph/env.sh
fi
# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
exec python3 dovecot-glue/tests/run.py "$@"
