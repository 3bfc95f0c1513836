#!/usr/bin/env bash
# Usage: ci/install-deps.sh [--dry-run] [--no-rust]
#
# Installs what building and testing rados-mail needs on Debian 12 (bookworm),
# skipping whatever is already there, and prints what it installed:
#   Debian packages: ceph-mon ceph-osd librados-dev libclang-dev
#                    protobuf-compiler valgrind pkg-config gcc libasan8 libubsan1
#                    dovecot-core dovecot-dev dovecot-imapd dovecot-lmtpd dovecot-pop3d
#                    dpkg-dev (ci/package.sh: dpkg-shlibdeps, dpkg-architecture)
#   cargo tools:       cbindgen 0.29.0 (the C header's drift check pins it)
#   rustup components: rustfmt, clippy (needs a rustup-managed toolchain;
#                      get one from https://rustup.rs)
#   rustup toolchain:  the MSRV, `rust-version` of Cargo.toml (minimal profile), for
#                      ci/test.sh's `cargo +MSRV check`
# Runs apt-get as root (directly, or through sudo when not root).
#
# Options:
#   --dry-run    only report what is missing (apt-get -s, no changes)
#   --no-rust    skip the rustfmt/clippy check
#   -h, --help   show this help
set -euo pipefail

PACKAGES=(ceph-mon ceph-osd librados-dev libclang-dev protobuf-compiler valgrind pkg-config gcc libasan8 libubsan1
    dovecot-core dovecot-dev dovecot-imapd dovecot-lmtpd dovecot-pop3d dpkg-dev)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

dry_run=0
rust=1
while (($#)); do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --no-rust) rust=0 ;;
        -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

installed=()

# --- Debian packages -------------------------------------------------------
for tool in dpkg-query apt-get; do
    command -v "$tool" >/dev/null || die "$tool not found: this script supports Debian (12) only"
done

missing=()
for pkg in "${PACKAGES[@]}"; do
    # "ii" = installed; "rc" (removed, config left) and unknown count as missing.
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" == ii* ]] || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
    log "missing Debian packages: ${missing[*]}"
    as_root=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "not root and no sudo: run as root"
        as_root=(sudo)
    fi
    # env: sudo drops DEBIAN_FRONTEND. The lock timeout makes apt-get wait for a
    # concurrent apt/dpkg run instead of failing.
    apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
    if ((dry_run)); then
        "${apt[@]}" -s -y --no-install-recommends install "${missing[@]}" >/dev/null ||
            log "apt-get -s failed (package lists may need 'apt-get update')"
        log "dry run: would install ${missing[*]}"
    else
        "${apt[@]}" update
        # Installing dovecot-core (or ceph) must not start system services: the tests
        # run their own instances on high ports. A policy-rc.d that says "no" (exit 101)
        # stops invoke-rc.d; one already there is left alone.
        policy=/usr/sbin/policy-rc.d
        added_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
            "${as_root[@]}" chmod 755 "$policy"
            added_policy=1
        fi
        rc=0
        "${apt[@]}" -y --no-install-recommends install "${missing[@]}" || rc=$?
        if ((added_policy)); then "${as_root[@]}" rm -f "$policy"; fi
        ((rc == 0)) || die "apt-get install failed (exit $rc)"
        installed+=("${missing[@]}")
    fi
else
    log "Debian packages present: ${PACKAGES[*]}"
fi

# --- Rust components and the MSRV toolchain ------------------------------
rust_error=""
if ((rust)); then
    cd "$REPO_ROOT" # so a rust-toolchain file, if any, picks the toolchain
    if ! command -v cargo >/dev/null; then
        rust_error="cargo not found: install a Rust toolchain with rustup (https://rustup.rs)"
    else
        for comp in rustfmt clippy; do
            sub="${comp/rustfmt/fmt}"
            if cargo "$sub" --version >/dev/null 2>&1; then
                log "present: $comp ($(cargo "$sub" --version 2>/dev/null))"
            elif ! command -v rustup >/dev/null; then
                rust_error="'cargo $sub' missing and no rustup to add $comp"
            elif ((dry_run)); then
                log "dry run: would run rustup component add $comp"
            else
                rustup component add "$comp"
                cargo "$sub" --version >/dev/null 2>&1 || die "'cargo $sub' still fails after adding $comp"
                installed+=("rustup:$comp")
            fi
        done
        # The minimum supported Rust version, as Cargo.toml states it.
        msrv="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml")"
        if [[ -z "$msrv" ]]; then
            rust_error="no rust-version in Cargo.toml"
        elif cargo "+$msrv" --version >/dev/null 2>&1; then
            log "present: Rust $msrv (MSRV)"
        elif ! command -v rustup >/dev/null; then
            rust_error="no rustup to install Rust $msrv (the MSRV)"
        elif ((dry_run)); then
            log "dry run: would run rustup toolchain install $msrv --profile minimal"
        else
            rustup toolchain install "$msrv" --profile minimal
            installed+=("rustup:$msrv")
        fi
        # The committed C header is checked against this exact cbindgen version.
        want_cbindgen="cbindgen 0.29.0"
        if [[ "$(cbindgen --version 2>/dev/null)" == "$want_cbindgen" ]]; then
            log "present: $want_cbindgen"
        elif ((dry_run)); then
            log "dry run: would run cargo install cbindgen --version 0.29.0 --locked"
        else
            cargo install cbindgen --version 0.29.0 --locked
            installed+=("cargo:cbindgen-0.29.0")
        fi
    fi
fi

if ((${#installed[@]} > 0)); then
    log "installed: ${installed[*]}"
elif ((!dry_run)); then
    log "nothing to install"
fi
[[ -z "$rust_error" ]] || die "$rust_error"
