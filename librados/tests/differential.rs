//! Differential test: random sequences of compound operations give the same outcome on the
//! in-memory backend and on a real cluster.
//!
//! The conformance suite checks behaviours someone thought of; this checks the ones nobody
//! did (a guard on a missing object, a remove followed by a write in one op, ...). Every
//! operation's outcome (which error variant, or success) and the whole state of every object
//! afterwards must match. Object versions are compared only as "present", since RADOS
//! versions are not consecutive.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use objstore::{CmpOp, Error, MemoryStore, ObjectStore, ReadOp, WriteOp};
use proptest::prelude::*;

const OBJECTS: [&str; 2] = ["o1", "o2"];
const KEYS: [&str; 3] = ["a", "b", "c/1"];
const VALUES: [&[u8]; 3] = [b"", b"x", b"\xff\x00y"];

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(VALUES.to_vec()).prop_map(<[u8]>::to_vec)
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(str::to_string)
}

fn cmp() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![CmpOp::Eq, CmpOp::Lt, CmpOp::Gt])
}

/// One compound operation: 0–1 guards and 1–3 mutations.
fn write_op() -> impl Strategy<Value = WriteOp> {
    let guard = prop_oneof![
        Just(None),
        Just(Some(0u8)).prop_map(|_| Some(WriteOp::new().assert_exists())),
        Just(Some(1u8)).prop_map(|_| Some(WriteOp::new().create_exclusive())),
        (key(), cmp(), value()).prop_map(|(k, c, v)| Some(WriteOp::new().omap_cmp(k, c, v))),
        (key(), cmp(), value()).prop_map(|(k, c, v)| Some(WriteOp::new().cmp_xattr(k, c, v))),
    ];
    let mutation = prop_oneof![
        value().prop_map(|v| WriteOp::new().write_full(v)),
        value().prop_map(|v| WriteOp::new().append(v)),
        (0u64..4).prop_map(|n| WriteOp::new().truncate(n)),
        Just(WriteOp::new().remove()),
        Just(WriteOp::new().create()),
        (key(), value()).prop_map(|(k, v)| WriteOp::new().set_xattr(k, v)),
        key().prop_map(|k| WriteOp::new().rm_xattr(k)),
        (key(), value()).prop_map(|(k, v)| WriteOp::new().omap_set([(k, v)])),
        key().prop_map(|k| WriteOp::new().omap_rm_keys([k])),
        Just(WriteOp::new().omap_clear()),
    ];
    (guard, prop::collection::vec(mutation, 1..=3)).prop_map(|(g, ms)| {
        let mut op = g.unwrap_or_default();
        for m in ms {
            op.mutations.extend(m.mutations);
        }
        op
    })
}

/// The outcome of an operation, without backend-specific detail.
fn outcome<T>(r: &objstore::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::Rados { errno, .. }) => format!("rados errno {errno}"),
        Err(e) => format!("{:?}", std::mem::discriminant(e)),
    }
}

/// Everything observable about an object.
type State = Result<(Vec<u8>, BTreeMap<String, Vec<u8>>, Vec<(String, Vec<u8>)>), String>;

fn state(s: &dyn ObjectStore, oid: &str) -> State {
    let r = s.read_op(oid, &ReadOp::new().stat().read(0, 1 << 16).xattrs().omap_range("", "", 100));
    match r {
        Ok(r) => Ok((r.data.unwrap(), r.xattrs.unwrap(), r.omap_page.unwrap().entries)),
        Err(e) => Err(outcome::<()>(&Err(e))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn memory_and_rados_agree(ops in prop::collection::vec((0usize..OBJECTS.len(), write_op()), 1..12)) {
        let rados: Arc<dyn ObjectStore> = common::fresh_store("differential");
        let memory = MemoryStore::new("m");
        for (step, (o, op)) in ops.iter().enumerate() {
            let oid = OBJECTS[*o];
            let (m, r) = (memory.write_op(oid, op), rados.write_op(oid, op));
            prop_assert_eq!(outcome(&m), outcome(&r), "step {} on {}: {:?}\nmemory: {:?}\nrados: {:?}", step, oid, op, m, r);
            for oid in OBJECTS {
                prop_assert_eq!(state(&memory, oid), state(rados.as_ref(), oid), "state of {} after step {}: {:?}", oid, step, op);
            }
        }
    }
}
