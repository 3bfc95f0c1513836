//! Bounds on body objects (docs/FORMAT.md, "Bounded objects"): every copy of a mail was one
//! more reference on the same body object, so a client copying one mail in a loop grew that
//! object's xattrs (omap keys in format 1) without end. A body carries at most
//! `Config::max_body_references` references: a copy past it stores a body of its own.

use std::collections::BTreeSet;
use std::sync::Arc;

use rados_mail::objstore::ObjectStore;
use rados_mail::{Config, Guid, MailStore, Mailbox};

use super::{body, mailbox, store_pool};

/// The cases of this module.
#[macro_export]
macro_rules! bound_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in bounds $make;
            copy_past_max_body_references_stores_a_new_body,
        );
    };
}

fn guid_of(m: &Mailbox, uid: u32) -> Guid {
    Guid::from_slice(&m.record(uid).unwrap().unwrap().mail_guid).unwrap()
}

/// The first objects of bodies (`mail.<guid>`) and the chunk objects, in the data pool.
fn body_objects(data: &Arc<dyn ObjectStore>) -> (usize, usize) {
    let names: Vec<String> =
        data.list_objects().unwrap().map(Result::unwrap).filter(|o| o.starts_with("mail.")).collect();
    let first = names.iter().filter(|o| o.matches('.').count() == 1).count();
    (first, names.len() - first)
}

/// With at most 2 references per body: the second copy of a mail gets a body of its own
/// (the same bytes, in as many objects), copies of that copy share it, a MOVE past the
/// bound too; every copy reads the same bytes, `check` finds nothing, and every object goes
/// with the last reference to it.
pub fn copy_past_max_body_references_stores_a_new_body(store: &MailStore, user: &str) {
    let config = Config { max_body_references: 2, chunk_size: 10, read_chunk: 7, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (u, inbox) = mailbox(&small, user, "INBOX");
    let data = small.data_pool().with_namespace(u.store().namespace()).unwrap();
    let boxes: Vec<Mailbox> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|name| {
            u.create_mailbox(name).unwrap();
            u.open_mailbox(name).unwrap()
        })
        .collect();
    let (a, b, c, d, e) = (&boxes[0], &boxes[1], &boxes[2], &boxes[3], &boxes[4]);
    let mail = b"Subject: copied\n\nmany times over\n".to_vec(); // 34 bytes: 4 objects
    let uid = inbox.append(&mail[..], Default::default()).unwrap();
    let first = guid_of(&inbox, uid);
    assert_eq!(body_objects(&data), (1, 3));

    inbox.copy_to(&[uid], a).unwrap(); // 2 references: the bound
    assert_eq!(guid_of(a, 1), first, "a copy within the bound shares the body");
    inbox.copy_to(&[uid], b).unwrap();
    let second = guid_of(b, 1);
    assert_ne!(second, first, "the copy past the bound has a body of its own");
    assert_eq!(body_objects(&data), (2, 6), "the same bytes in as many objects");
    b.copy_to(&[1], c).unwrap();
    assert_eq!(guid_of(c, 1), second, "the new body takes references up to the bound too");
    inbox.move_to(&[uid], d).unwrap();
    let third = guid_of(d, 1);
    assert!(third != first && third != second, "a MOVE past the bound stores a body too");
    assert!(inbox.uids().unwrap().is_empty());
    a.copy_to(&[1], e).unwrap();
    assert_eq!(guid_of(e, 1), first, "the MOVE dropped the source's reference: room again");

    for (m, what) in [(a, "A"), (b, "B"), (c, "C"), (d, "D"), (e, "E")] {
        assert_eq!(body(m, 1), mail, "{what}");
        let rec = m.record(1).unwrap().unwrap();
        assert_eq!((rec.psize, rec.vsize), (mail.len() as u64, mail.len() as u64 + 3), "{what}");
    }
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let guids: BTreeSet<Guid> = boxes.iter().map(|m| guid_of(m, 1)).collect();
    assert_eq!(guids.len(), 3);
    assert_eq!(body_objects(&data), (3, 9));

    for m in &boxes {
        m.expunge(&[1]).unwrap();
    }
    assert_eq!(body_objects(&data), (0, 0), "every object went with its last reference");
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:?}");
}
