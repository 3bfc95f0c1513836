//! Raw bindings to librados, Ceph's C client library, for rados-mail.
//!
//! The bindings are `bindgen` output for `rados/librados.h` (allowlist `rados_.*`,
//! `LIBRADOS_.*`, `CEPH_OSD_.*`), committed as `src/bindings.rs`: generated from Ceph 16.2.15
//! (Pacific, Debian 12's `librados-dev`) on x86_64 Linux. librados' C API only grows, so they
//! hold for newer Ceph releases too; a function added later is missing here until the file is
//! regenerated. With the `buildtime-bindgen` feature they are generated at build time from
//! the installed header instead (libclang needed); `check-bindings.sh` compares the two, and
//! CI runs it.
//!
//! The crate links `-lrados` (`LIBRADOS_LIB_DIR` adds a search directory) but does not
//! claim Cargo's `links = "rados"`: a program may also depend on another librados binding
//! (both then call the same shared library). Checking or documenting needs neither the
//! header nor the library; only the final link of a program does.
//!
//! Everything here is `unsafe` and undocumented beyond the C header; use the safe
//! `rados-mail-librados` crate (`librados`) of this workspace.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, missing_docs)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]

#[cfg(not(feature = "buildtime-bindgen"))]
include!("bindings.rs");
#[cfg(feature = "buildtime-bindgen")]
include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
