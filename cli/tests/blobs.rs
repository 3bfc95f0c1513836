//! `check --blobs NAME` and `repair --blobs NAME` of the `rados-mail` binary, on blobs put
//! on the real cluster with the library.

mod common;

use common::{expect, json, prefix, store};
use rados_mail::Config;
use rados_mail::blob::{BlobStore, Owner};

/// Clean, then an orphan chunk of a put that never finished (found; removed by repair
/// once the grace is 0), then a blob with a chunk missing (DAMAGE, kept by repair).
#[test]
fn blob_check_and_repair_commands() {
    let p = prefix("blobs");
    let s = store(&p);
    let blobs = s.blobs("att").unwrap();
    let small = BlobStore::new(blobs.object_store().clone(), &Config { chunk_size: 1000, ..Config::default() });
    let info = small.put(b"whole", Owner::KEY, &[7u8; 2500][..]).unwrap();
    let out = expect(&p, &["check", "--blobs", "att"], 0);
    assert!(out.starts_with("blobs att: clean (1 blobs, 2500 bytes)"), "{out}");
    assert_eq!(expect(&p, &["check", "--blobs", "att", "--deep"], 0), out);

    // What a put that died after its first chunk write leaves: a chunk no blob names.
    blobs.object_store().write_full("c.00000000000000ab.0001", &[1u8; 1000]).unwrap();
    let out = expect(&p, &["check", "--blobs", "att"], 1);
    assert!(out.contains("leftovers") && out.contains("orphan chunk c."), "{out}");
    let out = expect(&p, &["repair", "--blobs", "att"], 1);
    assert!(out.contains("kept orphan chunk c."), "within the default grace: {out}");
    let out = expect(&p, &["repair", "--blobs", "att", "--grace", "0s"], 0);
    assert!(out.contains("removed orphan chunk c."), "{out}");
    expect(&p, &["check", "--blobs", "att"], 0);

    let chunk = format!("c.{:016x}.0002", info.generation);
    blobs.object_store().remove(&chunk).unwrap();
    let out = expect(&p, &["check", "--blobs", "att"], 1);
    assert!(out.contains("DAMAGE") && out.contains("damaged blob whole (b.whole, 1 references, kept)"), "{out}");
    let report = json(&p, &["repair", "--blobs", "att", "--grace", "0s"], 1);
    assert_eq!(report["damaged"][0]["references"], 1);
    assert_eq!(report["removed"], serde_json::json!([]));
    assert!(blobs.object_store().stat("b.whole").is_ok(), "a damaged blob is kept");
    for o in blobs.object_store().list_objects().unwrap() {
        blobs.object_store().remove(&o.unwrap()).unwrap();
    }
}
