//! The C ABI of rados-mail: opaque handles, stable numbered result codes, no panic across
//! the boundary, a cbindgen-generated header committed in `include/`.
//!
//! Status: laid out; the ABI arrives with issue #5.
