//! Micro-benchmarks of the store layer without a cluster: [`MemoryStore`] through the
//! [`ObjectStore`] trait, the way unit tests and the quick-start default use it.
//!
//! They measure the cost of the layer itself (validation, guards, copy-on-write of the
//! object, result building), not of any storage. Run with
//! `cargo bench -p rados-mail-benches --bench memory` (`-- --quick` for a smoke run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use objstore::{CmpOp, MemoryStore, ObjectStore, ReadOp, WriteOp};

/// Size of the data of the objects written and read.
const OBJECT_SIZE: usize = 4096;
/// Keys per bulk omap operation.
const BULK_KEYS: usize = 1000;

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:016x}").into_bytes();
    v.resize(64, b'.');
    v
}

/// An object like a stored mail: 4 KiB of data, a few xattrs, 100 omap keys.
fn mail_like(store: &MemoryStore, oid: &str) {
    let op = WriteOp::new()
        .write_full(vec![0x5a; OBJECT_SIZE])
        .set_xattr("guid", b"0123456789abcdef".to_vec())
        .set_xattr("received", b"2026-11-01T00:00:00Z".to_vec())
        .set_xattr("size", b"4096".to_vec())
        .omap_set((0..100).map(|i| (format!("k{i:010}"), value(i))));
    store.write_op(oid, &op).expect("setup write");
}

fn write_full(c: &mut Criterion) {
    let store = MemoryStore::new("bench");
    let data = vec![0x5a_u8; OBJECT_SIZE];
    let mut g = c.benchmark_group("write_full");
    g.throughput(Throughput::Bytes(OBJECT_SIZE as u64));
    g.bench_function("4KiB", |b| b.iter(|| store.write_full(black_box("obj"), black_box(&data)).expect("write")));
    g.finish();
}

fn compound_read(c: &mut Criterion) {
    let store = MemoryStore::new("bench");
    mail_like(&store, "mail");
    // What a mail fetch asks in one round trip: size, body, xattrs, three index keys.
    let op = ReadOp::new().stat().read(0, OBJECT_SIZE as u64).xattrs().omap_get(["k0000000001", "k0000000050", "nope"]);
    c.bench_function("compound_read/stat+4KiB+xattrs+3 omap keys", |b| {
        b.iter(|| {
            let r = store.read_op(black_box("mail"), black_box(&op)).expect("read");
            assert_eq!(r.omap.map(|m| m.len()), Some(2));
        })
    });
}

fn omap_set(c: &mut Criterion) {
    let store = MemoryStore::new("bench");
    let bulk = WriteOp::new().omap_set((0..BULK_KEYS).map(|i| (format!("k{i:010}"), value(i))));
    let mut g = c.benchmark_group("omap_set");
    g.throughput(Throughput::Elements(BULK_KEYS as u64));
    g.bench_function("1000 keys/op", |b| b.iter(|| store.write_op(black_box("index"), black_box(&bulk)).expect("set")));
    // Every write copies the whole object first (that is how the in-memory backend stays
    // atomic), so the cost of a one-key set grows with the keys already in the object.
    g.throughput(Throughput::Elements(1));
    for existing in [100usize, 10_000] {
        let oid = format!("index-{existing}");
        store
            .write_op(&oid, &WriteOp::new().omap_set((0..existing).map(|i| (format!("k{i:010}"), value(i)))))
            .expect("setup");
        let one = WriteOp::new().omap_set([("k0000000000", value(0))]);
        g.bench_with_input(BenchmarkId::new("1 key/op, keys in object", existing), &oid, |b, oid| {
            b.iter(|| store.write_op(oid, black_box(&one)).expect("set"))
        });
    }
    g.finish();
}

fn cas_increment(c: &mut Criterion) {
    let store = MemoryStore::new("bench");
    let encode = |n: u64| format!("{n:010}").into_bytes();
    store.write_op("counter", &WriteOp::new().omap_set([("n", encode(0))])).expect("setup");
    let mut current = 0u64;
    c.bench_function("cas_increment/omap_cmp+set", |b| {
        b.iter(|| {
            let op = WriteOp::new().omap_cmp("n", CmpOp::Eq, encode(current)).omap_set([("n", encode(current + 1))]);
            store.write_op("counter", &op).expect("no other writer, the guard holds");
            current += 1;
        })
    });
    assert_eq!(store.omap_get("counter", &["n"]).expect("read")["n"], encode(current));
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args()
}

/// Holds the `pub fn` that `criterion_group!` generates, out of the crate's public surface.
mod group {
    use super::*;

    criterion_group! {
        name = memory;
        config = config();
        targets = write_full, compound_read, omap_set, cas_increment
    }
}
criterion_main!(group::memory);
