#!/usr/bin/env bash
# Builds the Debian package of rados-mail with dpkg-deb (no debhelper) and prints its path.
#
# Usage: ci/package.sh [--no-build] [--out DIR]
#        ci/package.sh --check-installed
#
# The package, rados-mail_<version>_<arch>.deb (version: the workspace's Cargo.toml),
# carries:
#   <dovecot_moduledir>/lib20_rados_plugin.so   the Dovecot plugin (make -C dovecot-glue
#                                              install; the Rust library linked in)
#   /usr/bin/rados-mail                        the operator command (cli/)
#   /usr/lib/<multiarch>/librados_mail.so.X.Y.Z the C library (the ffi cdylib), with its
#     soname symlink (librados_mail.so.0.MINOR before 1.0) and librados_mail.so
#   /usr/include/rados-mail/rados_mail.h       the header
#   /usr/lib/<multiarch>/pkgconfig/rados-mail.pc
#   /usr/share/doc/rados-mail/{copyright,changelog.md}
# Depends: the Dovecot ABI the plugin was built against (dovecot-abi-2.3.abivNN, which
# only the matching dovecot-core provides: Dovecot refuses a plugin of another ABI), and
# what dpkg-shlibdeps finds the binaries need (librados2, dovecot-core, libc6, libgcc-s1).
#
# Before printing the path it checks the package: `dpkg-deb -c` lists every file above,
# the soname is set, and a C program compiled with `pkg-config --cflags --libs rados-mail`
# against the package's files (unpacked in a temporary root) prints rm_version() equal to
# the package version.
#
# Options:
#   --no-build         use the binaries already in target/release and dovecot-glue/build
#                      (default: cargo build --release -p rados-mail-ffi -p rados-mail-cli,
#                      then make -C dovecot-glue)
#   --out DIR          where the .deb goes (default target/package)
#   --check-installed  build nothing: compile the C program with the system's pkg-config
#                      against the installed package (dpkg -i first) and run it
#   -h, --help         show this help
# Environment: DEBFULLNAME, DEBEMAIL (Maintainer; default: the rados-mail maintainers).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

log() { printf 'package: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

build=1
out="$root/target/package"
check_installed=0
while (($#)); do
	case "$1" in
	--no-build) build=0 ;;
	--out)
		(($# >= 2)) || die "--out needs a directory"
		out="$(realpath -m -- "$2")"
		shift
		;;
	--check-installed) check_installed=1 ;;
	-h | --help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

# A C program that prints rm_version() and checks it against the header it was compiled
# with: built with `pkg-config --cflags --libs rados-mail` only (plus what $1 adds).
# $1: extra cc flags (an rpath into an unpacked tree), $2: the version it must print.
run_pkgconfig_program() {
	local extra="$1" want="$2" tmp got flags
	tmp="$(mktemp -d)"
	cat >"$tmp/version.c" <<'C'
#include <stdio.h>
#include <rados_mail.h>

int main(void)
{
	if (rm_version_number() != RM_VERSION_NUMBER) {
		fprintf(stderr, "library %s does not match the header %d.%d.%d\n", rm_version(),
			RM_VERSION_MAJOR, RM_VERSION_MINOR, RM_VERSION_PATCH);
		return 1;
	}
	printf("%s\n", rm_version());
	return 0;
}
C
	flags="$(pkg-config --cflags --libs rados-mail)" || { rm -rf "$tmp"; die "pkg-config rados-mail failed"; }
	# shellcheck disable=SC2086 # flags are words
	cc -std=c11 -Wall -Wextra -Werror "$tmp/version.c" -o "$tmp/version" $flags $extra ||
		{ rm -rf "$tmp"; die "the pkg-config program did not build (flags: $flags)"; }
	got="$("$tmp/version")" || { rm -rf "$tmp"; die "the pkg-config program failed"; }
	rm -rf "$tmp"
	[ "$got" = "$want" ] || die "rm_version() says '$got', the package is $want"
	log "a C program built with pkg-config --cflags --libs rados-mail ($flags) runs: rm_version() = $got"
}

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "no version in Cargo.toml's [workspace.package]"

if [ $check_installed = 1 ]; then
	dpkg-query -W -f='${Status}\n' rados-mail 2>/dev/null | grep -q 'install ok installed' ||
		die "the rados-mail package is not installed (dpkg -i it first)"
	run_pkgconfig_program "" "$version"
	exit 0
fi

for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture pkg-config readelf cc; do
	command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install dpkg-dev pkg-config binutils gcc)"
done
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)"
moduledir="$(sed -n 's/^dovecot_moduledir=//p' /usr/lib/dovecot/dovecot-config 2>/dev/null)"
[ -n "$moduledir" ] || die "no dovecot_moduledir in /usr/lib/dovecot/dovecot-config (install dovecot-dev)"
# "2.3.ABIv19(2.3.19.1)" -> dovecot-abi-2.3.abiv19: the virtual package dovecot-core
# provides for exactly that ABI (Debian's own plugin packages depend on it the same way).
abi="$(sed -n 's/^#define DOVECOT_ABI_VERSION "\(.*\)"/\1/p' /usr/include/dovecot/config.h)"
[ -n "$abi" ] || die "no DOVECOT_ABI_VERSION in /usr/include/dovecot/config.h"
abi_pkg="dovecot-abi-$(printf '%s' "${abi%%(*}" | tr 'A-Z' 'a-z')"
if ! dpkg-query -W -f='${Provides}\n' dovecot-core 2>/dev/null | grep -qw -- "$abi_pkg"; then
	log "warning: the installed dovecot-core does not provide $abi_pkg (the plugin was built against $abi)"
fi

lib="$root/target/release/librados_mail.so"
cli="$root/target/release/rados-mail"
plugin="$root/dovecot-glue/build/lib20_rados_plugin.so"
if [ $build = 1 ]; then
	# Two runs: built together, the cli's features (serde) would reach the ffi library
	# and rebuild it (and the plugin) after every plain ffi build.
	cargo build --release -p rados-mail-ffi
	cargo build --release -p rados-mail-cli
	make -C dovecot-glue RADOS_MAIL_LIB="$root/target/release/librados_mail.a" >/dev/null
fi
for f in "$lib" "$cli" "$plugin"; do
	[ -f "$f" ] || die "$f missing (run without --no-build)"
done
soname="$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
[ -n "$soname" ] || die "$lib has no soname (ffi/build.rs sets one)"
case "$soname" in librados_mail.so.*) ;; *) die "unexpected soname '$soname'" ;; esac

name="rados-mail_${version}_${arch}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps expects the files under debian/<package>/ beside a debian/control.
stage="$work/debian/rados-mail"
libdir="/usr/lib/$multiarch"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage$libdir/pkgconfig" \
	"$stage/usr/include/rados-mail" "$stage/usr/share/doc/rados-mail"

make -s -C dovecot-glue RADOS_MAIL_LIB="$root/target/release/librados_mail.a" \
	DESTDIR="$stage" DOVECOT_MODULEDIR="$moduledir" install >/dev/null
install -m 0755 "$cli" "$stage/usr/bin/rados-mail"
install -m 0644 "$lib" "$stage$libdir/librados_mail.so.$version"
ln -s "librados_mail.so.$version" "$stage$libdir/$soname"
ln -s "$soname" "$stage$libdir/librados_mail.so"
install -m 0644 ffi/include/rados_mail.h "$stage/usr/include/rados-mail/rados_mail.h"
# librados-dev ships no .pc file, so librados is named in Libs.private, not
# Requires.private (pkg-config fails on a Requires.private it cannot find).
cat >"$stage$libdir/pkgconfig/rados-mail.pc" <<PC
prefix=/usr
libdir=\${prefix}/lib/$multiarch
includedir=\${prefix}/include

Name: rados-mail
Description: Mail storage natively in Ceph RADOS (C ABI)
Version: $version
Libs: -L\${libdir} -lrados_mail
Libs.private: -lrados -lgcc_s -lutil -lrt -lpthread -lm -ldl
Cflags: -I\${includedir}/rados-mail
PC
cat >"$stage/usr/share/doc/rados-mail/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rados-mail

Files: *
Copyright: the rados-mail authors
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0 (and in LICENSE in the source tree).
COPYRIGHT
install -m 0644 CHANGELOG.md "$stage/usr/share/doc/rados-mail/changelog.md"

# The dependencies of the ELF files, from the shlibs/symbols files of the installed
# libraries (librados2, libc6, libgcc-s1; dovecot-core for libdovecot*).
printf 'Source: rados-mail\n\nPackage: rados-mail\nArchitecture: any\n' >"$work/debian/control"
shlibs="$(cd "$work" && dpkg-shlibdeps -O --ignore-missing-info \
	"$stage$moduledir/lib20_rados_plugin.so" "$stage/usr/bin/rados-mail" \
	"$stage$libdir/librados_mail.so.$version" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
echo "$shlibs" | grep -q librados2 || die "dpkg-shlibdeps found no librados2 dependency: '$shlibs'"
depends="$abi_pkg, $shlibs"
size_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: rados-mail
Version: $version
Architecture: $arch
Maintainer: ${DEBFULLNAME:-rados-mail maintainers} <${DEBEMAIL:-maintainers@rados-mail.invalid}>
Installed-Size: $size_kb
Depends: $depends
Section: mail
Priority: optional
Description: mail storage natively in Ceph RADOS, with a Dovecot 2.3 plugin
 Mails are RADOS objects; mailbox indexes, mailbox lists and Dovecot dicts are
 omap key-values, so any Dovecot backend can serve any user at any moment.
 .
 This package carries the Dovecot plugin (mail storage and dict driver
 "rados"), built for Dovecot $abi;
 the rados-mail operator command; and the C library librados_mail with its
 header and pkg-config file (rados-mail).
CONTROL
# ldconfig after install and removal (the soname symlink and the cache).
echo "activate-noawait ldconfig" >"$stage/DEBIAN/triggers"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/"*

mkdir -p "$out"
deb="$out/$name.deb"
# zstd: ~1 s here for the ~65 MB of binaries, where xz took ~40 s of CPU (dpkg reads
# zstd since 1.21.18, bookworm has 1.21.22; the package is for bookworm's Dovecot ABI).
dpkg-deb --root-owner-group -Zzstd -z3 --build "$stage" "$deb" >/dev/null

# Every file, as dpkg-deb lists it.
listing="$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')"
for f in "$moduledir/lib20_rados_plugin.so" /usr/bin/rados-mail \
	"$libdir/librados_mail.so.$version" "$libdir/$soname" "$libdir/librados_mail.so" \
	/usr/include/rados-mail/rados_mail.h "$libdir/pkgconfig/rados-mail.pc" \
	/usr/share/doc/rados-mail/copyright /usr/share/doc/rados-mail/changelog.md; do
	grep -qxF -- "$f" <<<"$listing" || die "$deb lacks $f"
done
dpkg-deb -f "$deb" Depends | grep -qF "$abi_pkg" || die "Depends lacks $abi_pkg"

# The C program against the package's files, unpacked (no root, nothing installed).
unpacked="$work/root"
dpkg-deb -x "$deb" "$unpacked"
PKG_CONFIG_PATH="$unpacked$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$unpacked" \
	run_pkgconfig_program "-Wl,-rpath,$unpacked$libdir" "$version"

log "$(dpkg-deb -f "$deb" Package Version Architecture Depends | tr '\n' ' ')"
log "$(wc -l <<<"$listing") entries, $(du -h "$deb" | cut -f1) ($size_kb KiB installed)"
echo "$deb"
