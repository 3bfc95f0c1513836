//! Behaviour specific to the librados backend: timeouts, bounded in-flight operations,
//! cancelled futures.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use librados::{Cluster, ClusterConfig, RadosStore};
use objstore::{Error, ObjectStore, ReadOp, WriteOp};

/// A cluster that cannot be reached yields `Unavailable` within the configured timeout,
/// never a hang: the mail store must be able to answer "try again later".
#[test]
fn unreachable_cluster_is_unavailable_within_timeout() {
    let dir = std::env::temp_dir().join(format!("rados-mail-dead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ceph.conf");
    // A monitor address where nothing listens.
    std::fs::write(&conf, "[global]\nmon_host = 127.0.0.1:1\nauth_client_required = none\nms_bind_ipv6 = false\n")
        .unwrap();
    let config =
        ClusterConfig { conf_path: Some(conf), op_timeout: Some(Duration::from_secs(3)), ..ClusterConfig::default() };
    let start = Instant::now();
    let err = Cluster::connect(&config).unwrap_err();
    let took = start.elapsed();
    assert!(err.is_temporary(), "expected Unavailable, got {err:?}");
    assert!(took < Duration::from_secs(30), "connect gave up after {took:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A missing pool is reported as such.
#[test]
fn missing_pool_is_not_found() {
    let err = common::cluster().ioctx("no-such-pool-for-sure", "").unwrap_err();
    assert_eq!(err, Error::NotFound { object: "pool no-such-pool-for-sure".into() });
}

/// With 4 slots, 200 asynchronous writes still all complete, and in order of nothing in
/// particular; the bound only delays them.
#[test]
fn bounded_in_flight_completes_everything() {
    let mut config = common::config();
    config.max_in_flight = 4;
    config.namespace = format!("test-bounded-{}", std::process::id());
    let store = RadosStore::connect(&config).unwrap();
    let writes = (0..200u32)
        .map(|i| store.write_op_async(&format!("o{i}"), WriteOp::new().write_full(i.to_be_bytes().to_vec())));
    let results = block_on(futures::future::join_all(writes));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for i in (0..200u32).step_by(37) {
        assert_eq!(store.read_full(&format!("o{i}")).unwrap().0, i.to_be_bytes());
    }
}

/// Dropping futures of operations in flight must neither crash nor leak the in-flight slots:
/// librados still writes into their buffers after the future is gone.
#[test]
fn dropped_futures_are_safe() {
    let mut config = common::config();
    config.max_in_flight = 8;
    config.namespace = format!("test-dropped-{}", std::process::id());
    let store = RadosStore::connect(&config).unwrap();
    store.write_full("big", &vec![7u8; 4 << 20]).unwrap();
    for _ in 0..20 {
        let mut reads: Vec<_> = (0..8).map(|_| store.read_op_async("big", ReadOp::new().read(0, 4 << 20))).collect();
        // Poll each once so that it is submitted, then drop them all mid-flight.
        for f in &mut reads {
            let _ = futures::FutureExt::now_or_never(f);
        }
        drop(reads);
    }
    // All 8 slots come back: these would wait forever otherwise.
    let again: Vec<_> = (0..8).map(|_| store.read_op_async("big", ReadOp::new().stat())).collect();
    for r in block_on(futures::future::join_all(again)) {
        assert_eq!(r.unwrap().stat.unwrap().size, 4 << 20);
    }
}

/// Namespaces opened from one store share its connection.
#[test]
fn namespaces_share_connection() {
    let store = common::fresh_store("shared-conn");
    let other = store.with_namespace(&format!("{}-b", store.namespace())).unwrap();
    other.write_full("x", b"y").unwrap();
    assert_eq!(store.stat("x").unwrap_err(), Error::NotFound { object: "x".into() });
    let _keep: Arc<dyn ObjectStore> = other;
}

/// Regression: when the future of an operation was dropped and the store with it, the
/// completion callback held the last reference to the cluster and called `rados_shutdown`
/// on a librados thread, which joins itself: the process died with "terminate called after
/// throwing an instance of 'std::system_error'" (seen at exit of this test binary). The last
/// reference is now released on a thread of our own.
#[test]
fn last_reference_dropped_while_in_flight_is_safe() {
    let mut config = common::config();
    config.namespace = format!("test-lastref-{}", std::process::id());
    RadosStore::connect(&config).unwrap().write_full("obj", &[1u8; 1 << 20]).unwrap();
    for _ in 0..10 {
        let store = RadosStore::connect(&config).unwrap();
        let mut reads: Vec<_> = (0..8).map(|_| store.read_op_async("obj", ReadOp::new().read(0, 1 << 20))).collect();
        for f in &mut reads {
            let _ = futures::FutureExt::now_or_never(f);
        }
        drop(reads);
        drop(store);
    }
    // Give the callbacks time to run (and, before the fix, to abort the process).
    std::thread::sleep(Duration::from_millis(500));
    let store = RadosStore::connect(&config).unwrap();
    assert_eq!(store.stat("obj").unwrap().0.size, 1 << 20);
}

/// Watch and notify between two connections (two processes, as far as RADOS can tell):
/// the notifier never waits (each `notify` call returns at once), and the watcher hears
/// each notify within a bound. Prints the delivery latency.
#[test]
fn notify_reaches_another_connection_without_waiting() {
    use std::sync::mpsc;
    let mut config = common::config();
    config.namespace = format!("test-notify-{}", std::process::id());
    let (watcher, notifier) = (RadosStore::connect(&config).unwrap(), RadosStore::connect(&config).unwrap());
    notifier.write_full("head", b"").unwrap();
    let (tx, rx) = mpsc::channel::<(Vec<u8>, Instant)>();
    let tx = std::sync::Mutex::new(tx);
    let callback: objstore::WatchCallback = Arc::new(move |e| {
        if let objstore::WatchEvent::Notify(p) = e {
            let _ = tx.lock().unwrap().send((p, Instant::now()));
        }
    });
    let watch = watcher.watch("head", callback).unwrap();
    let (mut calls, mut latencies) = (Vec::new(), Vec::new());
    for i in 0..20u32 {
        let sent = Instant::now();
        notifier.notify("head", &i.to_le_bytes(), None);
        calls.push(sent.elapsed());
        let (payload, at) = rx.recv_timeout(Duration::from_secs(10)).expect("the notify arrives");
        assert_eq!(payload, i.to_le_bytes());
        latencies.push(at - sent);
    }
    calls.sort();
    latencies.sort();
    eprintln!(
        "notify: call median {:?} max {:?}; delivery median {:?} max {:?}",
        calls[10], calls[19], latencies[10], latencies[19]
    );
    assert!(calls[10] < Duration::from_millis(20), "notify() waits: median {:?}", calls[10]);
    assert!(latencies[10] < Duration::from_secs(1), "delivery median {:?}", latencies[10]);
    watch.check().unwrap();
    drop(watch);
    // Dropping the store right after the watch: the unwatch thread keeps the I/O context
    // alive until it is done.
    drop(watcher);
    block_on(notifier.notify_async("head", b"after")).unwrap();
}
