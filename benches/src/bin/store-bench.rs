//! `store-bench`: the librados backend of rados-mail side by side with `rados bench`.
//!
//! One run measures, against the cluster that `CEPH_CONF` / `RADOS_MAIL_POOL` name:
//!
//! * 4 KiB whole-object writes and 4 KiB random reads, once with Ceph's own `rados bench`
//!   (a subprocess) and once through [`RadosStore`], with the same number of operations in
//!   flight; the table shows both rates and their ratio;
//! * library-only references: omap set with 1 and 1,000 keys per operation, paging through
//!   an object with 10,000+ omap keys, random single-key omap gets, and guarded
//!   compare-and-swap increments from one thread.
//!
//! Everything is written into one namespace (default `bench-<pid>`), which must be empty at
//! the start and is emptied again at the end. The results table goes to stdout, progress to
//! stderr.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::executor::block_on;
use futures::future::{self, BoxFuture, FutureExt, TryFutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};
use librados::{ClusterConfig, RadosStore};
use objstore::{CmpOp, Error, OMAP_PAGE_MAX, ObjectStore, ReadOp, WriteOp};
use rados_mail_benches::report::{Measured, Row, markdown_table, thousands};
use rados_mail_benches::{Provenance, SplitMix64, rados_cli};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Size of the objects of the write and read phases (`rados bench -b`).
const OBJECT_SIZE: usize = 4096;
/// Size of every omap value written.
const OMAP_VALUE_LEN: usize = 64;
/// Keys per operation of the bulk omap phase.
const BULK_KEYS: usize = 1000;
/// Bulk omap operations per object before moving on to a fresh one: keeps every object at
/// 100,000 keys, under Ceph's large-omap warning (200,000) however long the phase runs.
const BULK_OPS_PER_OBJECT: u64 = 100;
/// A phase time limit that never ends a phase first (bounded so `Instant` arithmetic holds).
const UNTIL_DONE: Duration = Duration::from_secs(24 * 3600);
/// Width of the decimal counter of the compare-and-swap phase (fixed width, so that byte
/// order is numeric order).
const COUNTER_WIDTH: usize = 10;

/// Measures the librados backend of rados-mail side by side with `rados bench` and prints a
/// markdown table naming the machine, the commit and the Ceph version.
///
/// The cluster comes from the environment, as for the library: CEPH_CONF, CEPH_KEYRING,
/// RADOS_MAIL_CLIENT, RADOS_MAIL_POOL (e.g. `source target/ceph/env.sh` after
/// `./ci/ceph-start.sh`).
#[derive(Debug, Parser)]
#[command(name = "store-bench", version)]
struct Args {
    /// Seconds per timed phase.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Rounds of the raw-vs-library comparisons; the table shows medians and every round's
    /// ratio. Rounds alternate which side goes first.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Most objects each 4 KiB write phase writes (`rados bench --max-objects`); 0: as many
    /// as the time allows.
    #[arg(long, default_value_t = 0)]
    objects: u64,
    /// Most operations per library-only phase; 0: as many as the time allows.
    #[arg(long, default_value_t = 0)]
    ops: u64,
    /// Operations kept in flight (`rados bench -t`, and the library's in-flight bound).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    in_flight: u64,
    /// Omap keys of the object the paging and random-get phases read.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=190_000))]
    omap_keys: u64,
    /// Pool to use (default: RADOS_MAIL_POOL, else "mail").
    #[arg(long)]
    pool: Option<String>,
    /// Namespace for every object written; must be empty, and is emptied at the end
    /// (default: a fresh `bench-<pid>`).
    #[arg(long)]
    namespace: Option<String>,
    /// Smoke run: 1 s per phase, one round.
    #[arg(long, conflicts_with_all = ["seconds", "rounds"])]
    quick: bool,
    /// Seconds until connecting or any operation fails as "cluster unavailable".
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

/// Everything a phase needs to know.
struct Bench {
    store: RadosStore,
    rados: RadosCli,
    in_flight: usize,
    seconds: u64,
    rounds: u64,
    /// Cap on objects of the write phases (`u64::MAX`: none).
    max_objects: u64,
    /// Cap on operations of the library-only phases (`u64::MAX`: none).
    max_ops: u64,
    omap_keys: u64,
    rng: SplitMix64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), BoxError> {
    let mut config = ClusterConfig::from_env();
    if let Some(pool) = &args.pool {
        config.pool.clone_from(pool);
    }
    config.namespace = args.namespace.clone().unwrap_or_else(|| format!("bench-{}", std::process::id()));
    if config.namespace.is_empty() {
        return Err("refusing the default namespace \"\": the benchmark empties its namespace at the end".into());
    }
    config.max_in_flight = args.in_flight as usize;
    config.op_timeout = Some(Duration::from_secs(args.timeout));
    let store = connect(&config)?;
    if store.list_objects()?.next().is_some() {
        return Err(format!(
            "namespace {:?} of pool {:?} already holds objects; pick a fresh one with --namespace \
             (the benchmark empties its namespace at the end)",
            config.namespace, config.pool
        )
        .into());
    }
    let (seconds, rounds) = if args.quick { (1, 1) } else { (args.seconds, args.rounds) };
    let cap = |n: u64| if n == 0 { u64::MAX } else { n };
    let mut bench = Bench {
        store,
        rados: RadosCli::new(&config)?,
        in_flight: args.in_flight as usize,
        seconds,
        rounds,
        max_objects: cap(args.objects),
        max_ops: cap(args.ops),
        omap_keys: args.omap_keys,
        rng: SplitMix64::new(seed()),
    };
    let provenance = Provenance::collect();
    progress(&format!(
        "pool {:?}, namespace {:?}, {seconds} s per phase, {rounds} round(s), {} in flight",
        config.pool, config.namespace, bench.in_flight
    ));

    let measured = bench.measure_all();
    // Clean up whatever happened; a failed measurement is still the error reported first.
    let cleaned = bench.cleanup();
    let rows = measured?;
    progress(&format!("removed {} objects from namespace {:?}", cleaned?, config.namespace));

    let mut out = String::from("## store-bench results\n\n");
    out.push_str(&provenance.to_markdown());
    let _ = writeln!(
        out,
        "- run: pool `{}`, namespace `{}`; {seconds} s per phase, {} in flight; comparisons: \
         {rounds} round(s), rates are medians, library / raw is the median of the per-round \
         ratios{}\n",
        config.pool,
        config.namespace,
        bench.in_flight,
        if args.quick { " (--quick smoke run: numbers are rough)" } else { "" }
    );
    out.push_str(&markdown_table(&rows));
    print!("{out}");
    Ok(())
}

/// Connects, translating failures into advice.
fn connect(config: &ClusterConfig) -> Result<RadosStore, BoxError> {
    let conf = config.conf_path.as_ref().map_or_else(
        || "CEPH_CONF unset: Ceph's default search path".to_string(),
        |p| format!("CEPH_CONF={}", p.display()),
    );
    RadosStore::connect(config).map_err(|e| -> BoxError {
        match e {
            Error::NotFound { ref object } if object.starts_with("pool ") => {
                format!("pool {:?} does not exist ({conf}): create it or pass --pool ({e})", config.pool).into()
            }
            e => format!(
                "no Ceph cluster reachable ({conf}, client {}): {e}\n\
                 start the local test cluster with `./ci/ceph-start.sh && source target/ceph/env.sh`",
                config.client_name
            )
            .into(),
        }
    })
}

/// A seed that differs between runs.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

fn progress(msg: &str) {
    eprintln!("store-bench: {msg}");
}

fn report(phase: &str, m: &Measured, unit: &str) {
    progress(&format!(
        "{phase}: {} ops, {} {unit} in {:.2} s → {:.0} {unit}/s",
        m.ops,
        m.units,
        m.elapsed.as_secs_f64(),
        m.rate()
    ));
}

/// Runs `submit(0)`, `submit(1)`, ... with `in_flight` operations outstanding until `time`
/// has passed or `max_ops` operations were submitted, then waits for the outstanding ones.
/// Each operation resolves to the units of work it did.
fn pipelined<F>(in_flight: usize, time: Duration, max_ops: u64, submit: F) -> objstore::Result<Measured>
where
    F: FnMut(u64) -> BoxFuture<'static, objstore::Result<u64>>,
{
    let start = Instant::now();
    let deadline = start + time;
    let indices = (0..max_ops).map_while(move |i| (Instant::now() < deadline).then_some(i));
    let totals = stream::iter(indices.map(submit))
        .buffer_unordered(in_flight)
        .try_fold((0u64, 0u64), |(ops, units), n| future::ready(Ok((ops + 1, units + n))));
    let (ops, units) = block_on(totals)?;
    Ok(Measured { ops, units, elapsed: start.elapsed() })
}

fn corrupted(object: &str, detail: String) -> Error {
    Error::Corrupted { object: object.to_string(), detail }
}

fn omap_value(i: u64) -> Vec<u8> {
    let mut v = format!("{i:016x}").into_bytes();
    v.resize(OMAP_VALUE_LEN, b'.');
    v
}

impl Bench {
    fn time(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    fn measure_all(&mut self) -> Result<Vec<Row>, BoxError> {
        let n = self.in_flight.to_string();
        let row = |name: &str, in_flight: &str, unit, raw: Vec<f64>, library: Vec<f64>| Row {
            name: name.to_string(),
            in_flight: in_flight.to_string(),
            unit,
            raw,
            library,
        };
        let (mut raw_w, mut lib_w, mut raw_r, mut lib_r) = (vec![], vec![], vec![], vec![]);
        // Each round writes, reads back and removes its own objects, on both sides, so every
        // round starts from the same pool state. Raw and library run back to back and take
        // turns going first, so that a drift in background load hits both alike.
        for round in 0..self.rounds {
            progress(&format!("round {} of {}", round + 1, self.rounds));
            let lib_first = round % 2 == 1;
            let written = if lib_first {
                let (written, rate) = self.lib_write(round)?;
                lib_w.push(rate);
                raw_w.push(self.raw_write()?);
                written
            } else {
                raw_w.push(self.raw_write()?);
                let (written, rate) = self.lib_write(round)?;
                lib_w.push(rate);
                written
            };
            if lib_first {
                lib_r.push(self.lib_rand(round, written)?);
                raw_r.push(self.raw_rand()?);
            } else {
                raw_r.push(self.raw_rand()?);
                lib_r.push(self.lib_rand(round, written)?);
            }
            self.raw_cleanup()?;
            self.lib_remove(round, written)?;
        }
        let mut rows = vec![
            row("4 KiB `write_full`, one new object each", &n, "ops/s", raw_w, lib_w),
            row("4 KiB random object read", &n, "ops/s", raw_r, lib_r),
        ];
        // Library-only references: one run each.
        let one = |rate: f64| vec![rate];
        rows.push(row("omap set, 1 key/op", &n, "ops/s", vec![], one(self.omap_set_single()?)));
        rows.push(row("omap set, 1,000 keys/op", &n, "keys/s", vec![], one(self.omap_set_bulk()?)));
        self.fill_scan_object()?;
        let paging = self.omap_paging()?;
        let name = format!("omap paging read, {} keys/object", thousands(self.omap_keys as f64));
        rows.push(row(&name, "1", "keys/s", vec![], one(paging)));
        rows.push(row("omap get, 1 random key/op", &n, "ops/s", vec![], one(self.omap_get_random()?)));
        rows.push(row("guarded CAS increment (`omap_cmp` + set)", "1", "ops/s", vec![], one(self.cas_increments()?)));
        Ok(rows)
    }

    fn raw_write(&self) -> Result<f64, BoxError> {
        let (secs, t) = (self.seconds.to_string(), self.in_flight.to_string());
        let mut args = vec!["bench", &secs, "write", "-b", "4096", "-t", &t, "--no-cleanup"];
        let max = self.max_objects.to_string();
        if self.max_objects != u64::MAX {
            args.extend(["--max-objects", &max]);
        }
        self.rados.bench("raw write", &args)
    }

    fn raw_rand(&self) -> Result<f64, BoxError> {
        let (secs, t) = (self.seconds.to_string(), self.in_flight.to_string());
        self.rados.bench("raw rand read", &["bench", &secs, "rand", "-t", &t])
    }

    fn raw_cleanup(&self) -> Result<(), BoxError> {
        let out = self.rados.run(&["cleanup"])?;
        progress(&format!("rados cleanup: {}", out.trim()));
        Ok(())
    }

    /// 4 KiB `write_full` of new objects; returns how many were written and the rate.
    fn lib_write(&self, round: u64) -> Result<(u64, f64), BoxError> {
        let data = vec![0x5a_u8; OBJECT_SIZE];
        let store = &self.store;
        let m = pipelined(self.in_flight, self.time(), self.max_objects, |i| {
            store.write_op_async(&obj4k(round, i), WriteOp::new().write_full(data.clone())).map_ok(|_| 1).boxed()
        })?;
        report("library write", &m, "objects");
        Ok((m.ops, m.rate()))
    }

    /// 4 KiB reads of random objects among the `written` ones.
    fn lib_rand(&mut self, round: u64, written: u64) -> Result<f64, BoxError> {
        if written == 0 {
            return Err("the library write phase wrote no object to read back".into());
        }
        let time = self.time();
        let (store, rng) = (&self.store, &mut self.rng);
        let m = pipelined(self.in_flight, time, u64::MAX, |_| {
            let oid = obj4k(round, rng.below(written));
            store
                .read_op_async(&oid, ReadOp::new().read(0, OBJECT_SIZE as u64))
                .and_then(move |r| {
                    let len = r.data.map_or(0, |d| d.len());
                    future::ready(if len == OBJECT_SIZE {
                        Ok(1)
                    } else {
                        Err(corrupted(&oid, format!("read {len} bytes, wrote {OBJECT_SIZE}")))
                    })
                })
                .boxed()
        })?;
        report("library rand read", &m, "objects");
        Ok(m.rate())
    }

    /// Removes the objects of one round's write phase, as `rados cleanup` does on the raw side.
    fn lib_remove(&self, round: u64, written: u64) -> Result<(), BoxError> {
        let store = &self.store;
        let m = pipelined(self.in_flight, UNTIL_DONE, written, |i| {
            store.write_op_async(&obj4k(round, i), WriteOp::new().remove()).map_ok(|_| 1).boxed()
        })?;
        progress(&format!("library cleanup: removed {} objects", m.ops));
        Ok(())
    }

    /// One omap key per operation, spread round-robin over `in_flight` objects.
    fn omap_set_single(&self) -> Result<f64, BoxError> {
        let (store, objects) = (&self.store, self.in_flight as u64);
        let m = pipelined(self.in_flight, self.time(), self.max_ops, |i| {
            let op = WriteOp::new().omap_set([(format!("k{i:010}"), omap_value(i))]);
            store.write_op_async(&format!("omap1-{}", i % objects), op).map_ok(|_| 1).boxed()
        })?;
        report("omap set 1 key/op", &m, "keys");
        Ok(m.rate())
    }

    /// 1,000 new omap keys per operation; objects are rotated so none grows past 100,000.
    fn omap_set_bulk(&self) -> Result<f64, BoxError> {
        let (store, objects) = (&self.store, self.in_flight as u64);
        let m = pipelined(self.in_flight, self.time(), self.max_ops, |i| {
            let entries = (0..BULK_KEYS).map(|j| (format!("k{i:08}-{j:04}"), omap_value(j as u64)));
            let oid = format!("omapbulk-{}-{}", i % objects, i / (objects * BULK_OPS_PER_OBJECT));
            store.write_op_async(&oid, WriteOp::new().omap_set(entries)).map_ok(|_| BULK_KEYS as u64).boxed()
        })?;
        report("omap set 1,000 keys/op", &m, "keys");
        Ok(m.rate())
    }

    /// Writes the object that the paging and random-get phases read: `omap_keys` keys.
    fn fill_scan_object(&self) -> Result<(), BoxError> {
        let batches = self.omap_keys.div_ceil(BULK_KEYS as u64);
        let store = &self.store;
        let total = self.omap_keys;
        pipelined(self.in_flight, UNTIL_DONE, batches, |b| {
            let keys =
                (b * BULK_KEYS as u64..((b + 1) * BULK_KEYS as u64).min(total)).map(|k| (scan_key(k), omap_value(k)));
            store.write_op_async(SCAN_OBJECT, WriteOp::new().omap_set(keys)).map_ok(|_| 1).boxed()
        })?;
        Ok(())
    }

    /// Pages through the scan object from the start again and again, one page
    /// ([`OMAP_PAGE_MAX`] keys) per round trip, checking every full pass saw every key.
    fn omap_paging(&self) -> Result<f64, BoxError> {
        let start = Instant::now();
        let (mut ops, mut units, mut in_pass, mut passes) = (0u64, 0u64, 0u64, 0u64);
        let mut after = String::new();
        while ops < self.max_ops && start.elapsed() < self.time() {
            let page = self.store.omap_range(SCAN_OBJECT, &after, "", OMAP_PAGE_MAX)?;
            ops += 1;
            units += page.entries.len() as u64;
            in_pass += page.entries.len() as u64;
            match page.entries.last() {
                Some((k, _)) if page.more => after.clone_from(k),
                _ => {
                    if in_pass != self.omap_keys {
                        let detail = format!("a full pass returned {in_pass} keys, {} were written", self.omap_keys);
                        return Err(corrupted(SCAN_OBJECT, detail).into());
                    }
                    (after, in_pass, passes) = (String::new(), 0, passes + 1);
                }
            }
        }
        let m = Measured { ops, units, elapsed: start.elapsed() };
        report(&format!("omap paging ({passes} full passes)"), &m, "keys");
        Ok(m.rate())
    }

    /// Single-key omap gets of random keys of the scan object.
    fn omap_get_random(&mut self) -> Result<f64, BoxError> {
        let time = self.time();
        let (store, rng, keys) = (&self.store, &mut self.rng, self.omap_keys);
        let m = pipelined(self.in_flight, time, self.max_ops, |_| {
            let key = scan_key(rng.below(keys));
            store
                .read_op_async(SCAN_OBJECT, ReadOp::new().omap_get([key.clone()]))
                .and_then(move |r| {
                    let found = r.omap.is_some_and(|m| m.contains_key(&key));
                    future::ready(if found { Ok(1) } else { Err(corrupted(SCAN_OBJECT, format!("key {key} missing"))) })
                })
                .boxed()
        })?;
        report("omap get random key", &m, "keys");
        Ok(m.rate())
    }

    /// Increments a counter with a guarded write (`omap_cmp` on the value last seen, then
    /// set), from one thread. The value is cached between increments, as a UID allocator
    /// would; a failed guard (never expected with one writer) re-reads it.
    fn cas_increments(&self) -> Result<f64, BoxError> {
        let (oid, key) = ("counter", "n");
        let encode = |n: u64| format!("{n:0COUNTER_WIDTH$}").into_bytes();
        self.store.write_op(oid, &WriteOp::new().omap_set([(key, encode(0))]))?;
        let (start, mut current, mut conflicts) = (Instant::now(), 0u64, 0u64);
        let mut ops = 0u64;
        while ops < self.max_ops && start.elapsed() < self.time() {
            let op = WriteOp::new().omap_cmp(key, CmpOp::Eq, encode(current)).omap_set([(key, encode(current + 1))]);
            ops += 1;
            match self.store.write_op(oid, &op) {
                Ok(_) => current += 1,
                Err(e) if e.is_conflict() => {
                    conflicts += 1;
                    let stored = self.store.omap_get(oid, &[key])?.remove(key).unwrap_or_default();
                    current =
                        String::from_utf8_lossy(&stored).parse().map_err(|_| corrupted(oid, "bad counter".into()))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let m = Measured { ops, units: current, elapsed: start.elapsed() };
        let stored = self.store.omap_get(oid, &[key])?.remove(key).unwrap_or_default();
        if stored != encode(current) {
            let detail = format!("counter reads {:?} after {current} increments", String::from_utf8_lossy(&stored));
            return Err(corrupted(oid, detail).into());
        }
        report(&format!("CAS increments ({conflicts} conflicts)"), &m, "increments");
        Ok(m.rate())
    }

    /// Removes every object of the namespace; returns how many there were.
    fn cleanup(&self) -> Result<u64, BoxError> {
        let names = self.store.list_objects()?.collect::<objstore::Result<Vec<String>>>()?;
        let removals = names.iter().map(|name| {
            self.store.write_op_async(name, WriteOp::new().remove()).map(|r| match r {
                Ok(_) | Err(Error::NotFound { .. }) => Ok(1u64),
                Err(e) => Err(e),
            })
        });
        let removed = block_on(
            stream::iter(removals)
                .buffer_unordered(self.in_flight)
                .try_fold(0, |n, one| future::ready(Ok::<_, Error>(n + one))),
        )?;
        Ok(removed)
    }
}

/// The object the paging and random-get phases read.
const SCAN_OBJECT: &str = "omapscan";

fn scan_key(k: u64) -> String {
    format!("k{k:010}")
}

fn obj4k(round: u64, i: u64) -> String {
    format!("obj4k-{round}-{i:010}")
}

/// The `rados` command-line tool, pointed at the same cluster, client, pool and namespace
/// as the library.
struct RadosCli {
    base: Vec<String>,
}

impl RadosCli {
    fn new(config: &ClusterConfig) -> Result<Self, BoxError> {
        let mut base: Vec<String> = Vec::new();
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        if let Some(conf) = &config.conf_path {
            base.extend(["--conf".into(), path(conf)]);
        }
        if let Some(keyring) = &config.keyring {
            base.extend(["--keyring".into(), path(keyring)]);
        }
        base.extend(["--name".into(), config.client_name.clone()]);
        base.extend(["-p".into(), config.pool.clone(), "-N".into(), config.namespace.clone()]);
        let cli = RadosCli { base };
        cli.run(&["--version"]).map_err(|e| format!("{e} (the `rados` tool comes with Debian's ceph-common)"))?;
        Ok(cli)
    }

    /// Runs `rados BASE ARGS`; its stdout, or an error quoting its last lines.
    fn run(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new("rados")
            .args(&self.base)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `rados`: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!("`rados {}` failed ({}): {}", args.join(" "), out.status, tail.join(" / ")).into());
        }
        Ok(stdout)
    }

    /// Runs one `rados bench` phase and returns its average IOPS.
    fn bench(&self, phase: &str, args: &[&str]) -> Result<f64, BoxError> {
        let out = self.run(args)?;
        let iops = rados_cli::average_iops(&out)
            .ok_or_else(|| format!("no \"Average IOPS\" in the output of `rados {}`:\n{out}", args.join(" ")))?;
        progress(&format!("{phase} (rados bench): {iops:.0} ops/s"));
        Ok(iops)
    }
}
