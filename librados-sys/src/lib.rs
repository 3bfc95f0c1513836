//! Raw bindings to librados, Ceph's C client library.
//!
//! Generated at build time by `bindgen` from the installed `/usr/include/rados/librados.h`
//! (allowlist `rados_.*`), linked with `-lrados`. Everything here is `unsafe` and
//! undocumented beyond the C header; use the safe `librados` crate of this workspace.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, missing_docs)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
