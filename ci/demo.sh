#!/usr/bin/env bash
# The main job of rados-mail, on one machine: install what is missing, start a local
# single-node Ceph cluster and a Dovecot that stores mail in it through the `rados`
# plugin, deliver a mail over LMTP, read it back over IMAP, and show the objects and omap
# keys it became in RADOS.
#
# Usage: ./ci/demo.sh [--keep]
#   --keep   leave the cluster and Dovecot running (stop them with
#            ./ci/dovecot-stop.sh target/demo-dovecot and ./ci/ceph-stop.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = --keep ] && keep=1

./ci/install-deps.sh
cargo build --release -p rados-mail-ffi
make -C dovecot-glue RADOS_MAIL_LIB="$PWD/target/release/librados_mail.a"

ceph_dir="${RADOS_MAIL_CEPH_DIR:-$PWD/target/ceph}"
# Unix socket paths are short: a deep checkout gets its cluster under /tmp instead.
if [ ${#ceph_dir} -gt 80 ]; then
	ceph_dir="/tmp/rados-mail-ceph-$(printf '%s' "$PWD" | md5sum | cut -c1-8)"
fi
dovecot_dir="$PWD/target/demo-dovecot"
if [ $keep = 0 ]; then
	trap './ci/dovecot-stop.sh "$dovecot_dir" >/dev/null 2>&1 || true
	      ./ci/ceph-stop.sh "$ceph_dir" >/dev/null 2>&1 || true' EXIT
fi
./ci/ceph-start.sh "$ceph_dir"
# shellcheck disable=SC1091
source "$ceph_dir/env.sh"
./ci/dovecot-stop.sh "$dovecot_dir" >/dev/null 2>&1 || true
RADOS_MAIL_NS_PREFIX=demo- ./ci/dovecot-start.sh --driver rados --port-base 24300 "$dovecot_dir"
# shellcheck disable=SC1091
source "$dovecot_dir/env.sh"

user="alice-$(date +%s)@example.org"
python3 - "$user" "$DOVECOT_LMTP_PORT" "$DOVECOT_IMAP_PORT" <<'PY'
import imaplib, smtplib, sys
user, lmtp_port, imap_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mail = (b"From: Bob <bob@example.org>\r\nTo: " + user.encode() + b"\r\n"
        b"Subject: hello from RADOS\r\n\r\nThis mail lives in Ceph.\r\n")
with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
    refused = lmtp.sendmail("bob@example.org", [user], mail)
assert not refused, refused
print(f"delivered over LMTP to {user}")
imap = imaplib.IMAP4("127.0.0.1", imap_port)
imap.login(user, "pass")
typ, data = imap.select("INBOX")
print(f"IMAP SELECT INBOX: {data[0].decode()} message(s)")
typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY[])")
body = data[0][1]
print(f"IMAP FETCH: {data[0][0].decode()}")
print(body.decode().rstrip())
assert body.endswith(mail), "the mail read back differs from the one delivered"
imap.logout()
print("read back over IMAP: the delivered mail is there, byte for byte")
PY
echo
echo "The user's objects in RADOS (namespace demo-$user), with Ceph's own tool:"
rados -p "$RADOS_MAIL_POOL" -N "demo-$user" ls | sort
echo "omap keys of the mailbox list:"
rados -p "$RADOS_MAIL_POOL" -N "demo-$user" listomapkeys mailboxes 2>/dev/null || true
if [ $keep = 1 ]; then
	echo "left running: source $ceph_dir/env.sh; IMAP on 127.0.0.1:$DOVECOT_IMAP_PORT (any user, password 'pass')"
fi
