//! The real cluster and the built binary, for the `rados-mail` command's tests.
//!
//! Without a reachable cluster (`CEPH_CONF`; `. target/ceph/env.sh` after
//! `./ci/ceph-start.sh`) these tests fail; they never pass by skipping. Each test works under
//! a namespace prefix of its own (`cli-<test>-<pid>-`), so tests share the cluster safely.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use rados_mail::MailStore;
use rados_mail::settings::Settings;

/// A namespace prefix no other test or run uses.
pub fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("cli-{test}-{}-{nanos}-", std::process::id())
}

/// The cluster as the library sees it, under `prefix` (to put mail there and look at it).
pub fn store(prefix: &str) -> MailStore {
    let Some(conf) = std::env::var_os("CEPH_CONF") else {
        panic!(
            "no Ceph cluster configured (CEPH_CONF is unset): run ./ci/test.sh, or \
             ./ci/ceph-start.sh && . target/ceph/env.sh"
        );
    };
    let mut s = Settings::default();
    s.set("conf", &conf.to_string_lossy()).unwrap();
    if let Ok(pool) = std::env::var("RADOS_MAIL_POOL") {
        s.set("pool", &pool).unwrap();
    }
    s.set("namespace_prefix", prefix).unwrap();
    s.set("timeout", "20").unwrap();
    s.open().unwrap_or_else(|e| panic!("cannot reach the cluster: {e}"))
}

/// Runs the binary with `--namespace-prefix prefix` and `args`, stdin empty.
pub fn run(prefix: &str, args: &[&str]) -> Output {
    run_with_input(prefix, args, b"")
}

/// Runs the binary with `stdin` as its input.
pub fn run_with_input(prefix: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rados-mail"))
        // A data pool only where a test names one (`--data-pool`): the deployments the
        // tests make are of the index pool alone.
        .env_remove("RADOS_MAIL_DATA_POOL")
        .arg("--namespace-prefix")
        .arg(prefix)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rados-mail binary runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Exit code, stdout as text, stderr as text.
pub fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs and expects exit `code`; returns stdout.
pub fn expect(prefix: &str, args: &[&str], code: i32) -> String {
    let (got, stdout, stderr) = text(&run(prefix, args));
    assert_eq!(got, code, "rados-mail {args:?}: exit {got}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

/// Runs with `--json`, expects exit `code`, parses stdout.
pub fn json(prefix: &str, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let stdout = expect(prefix, &all, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("rados-mail {args:?}: not JSON ({e}):\n{stdout}"))
}

/// Removes every object under `prefix` (test clean-up).
pub fn cleanup(store: &MailStore, users: &[&str]) {
    for u in users {
        let _ = store.delete_user(u);
    }
}
