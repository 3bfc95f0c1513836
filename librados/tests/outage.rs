//! An OSD outage: the mail store must answer "temporary failure" in bounded time while
//! the only OSD is down, and work again once it is back.
//!
//! librados blocks forever on an unreachable OSD unless `rados_osd_op_timeout` is set
//! (measured: a `rados ls` hung 10 minutes). This test starts a second, private
//! single-node cluster with the project's own scripts, kills its OSD with SIGKILL, and
//! checks that writes and reads fail with `Error::Unavailable` within the configured
//! timeout, then succeed after the OSD is restarted.
//!
//! Regression: with only the op timeouts set, a client whose OSD map still named the
//! killed OSD's address never recovered (240 s observed): the objecter asks for a newer
//! map only for ops older than `objecter_timeout`, and the op timeout cancelled them first.
//! `Cluster::connect` now keeps `objecter_timeout` below the op timeout.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use librados::{ClusterConfig, RadosStore};
use objstore::{Error, ObjectStore};

/// The private cluster; stopped and wiped when the test ends, whatever happens.
struct PrivateCluster {
    dir: PathBuf,
}

fn ci_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci").join(name)
}

impl PrivateCluster {
    fn start(dir: &Path) -> PrivateCluster {
        let cluster = PrivateCluster { dir: dir.to_path_buf() };
        cluster.run_start();
        cluster
    }

    fn run_start(&self) {
        let out = Command::new(ci_script("ceph-start.sh"))
            .arg(&self.dir)
            .env("RADOS_MAIL_CEPH_PORT", "21310")
            .env("RADOS_MAIL_POOL", "mail")
            .output()
            .expect("running ci/ceph-start.sh");
        assert!(
            out.status.success(),
            "ci/ceph-start.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn kill_osd(&self) {
        let pid = std::fs::read_to_string(self.dir.join("run/osd.0.pid")).expect("osd pid file");
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(ci_script("ceph-stop.sh")).arg("--wipe").arg(&self.dir).output();
    }
}

#[test]
fn osd_outage_is_unavailable_in_bounded_time_then_recovers() {
    let _ = common::config(); // The same rule as every cluster test: no cluster, no pass.
    let dir = std::env::temp_dir().join(format!("rados-mail-outage-{}", std::process::id()));
    let cluster = PrivateCluster::start(&dir);
    let timeout = Duration::from_secs(3);
    let config = ClusterConfig {
        conf_path: Some(dir.join("ceph.conf")),
        op_timeout: Some(timeout),
        namespace: "outage".into(),
        ..ClusterConfig::default()
    };
    let store = RadosStore::connect(&config).unwrap();
    store.write_full("mail", b"before").unwrap();

    cluster.kill_osd();
    let start = Instant::now();
    let write = store.write_full("mail", b"during");
    let read = store.read_full("mail");
    let took = start.elapsed();
    assert!(matches!(write, Err(Error::Unavailable(_))), "write while the OSD is down: {write:?}");
    assert!(matches!(read, Err(Error::Unavailable(_))), "read while the OSD is down: {read:?}");
    assert!(took < timeout * 2 + Duration::from_secs(10), "two operations took {took:?} with a {timeout:?} timeout");

    cluster.run_start(); // restarts the OSD, data kept
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(60);
    let back = loop {
        match store.write_full("mail", b"after") {
            Ok(_) => break Instant::now(),
            Err(Error::Unavailable(_)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("after the restart: {e}"),
        }
    };
    assert_eq!(store.read_full("mail").unwrap().0, b"after");
    eprintln!("outage: 2 ops failed in {took:?}; writable again {:?} after the restart", back - restarted);
}
