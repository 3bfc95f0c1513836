//! The shared conformance suite against a real Ceph cluster through librados.

mod common;

objstore::conformance_tests!(common::fresh_store);
