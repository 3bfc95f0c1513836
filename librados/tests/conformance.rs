//! The shared conformance suite against a real Ceph cluster through librados.

mod common;

mod librados_backend {
    objstore::conformance_tests!(super::common::fresh_store);
}
