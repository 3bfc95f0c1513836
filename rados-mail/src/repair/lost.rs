//! Moving what a mailbox can no longer serve into `lost+found`, never dropping it silently:
//! the bodies that damaged records or lost changes held get records in `lost+found`
//! (readable mails again, by reference: nothing is copied), a report mail there names
//! everything that was moved and why, and only then are the damaged records and the
//! records whose body is gone expunged from their mailbox.
//!
//! Crash-safe in that order: a body already in `lost+found` (its mail GUID is there) is not
//! adopted twice when a repair is run again.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use omap_index::names::{self, Guid};
use omap_index::records::MailRecord;

use super::run::record_from_xattrs;
use super::{LOST_FOUND, RepairAction, RepairOptions, RepairReport};
use crate::error::{Error, Result};
use crate::mailbox::{Mailbox, ModseqSteps, Transaction};
use crate::types::AppendOptions;
use crate::user::User;

/// A mail its mailbox can no longer serve.
pub(super) enum LostMail {
    /// Its record points to a body that is gone.
    BodyMissing {
        /// Its UID.
        uid: u32,
        /// Its record.
        record: MailRecord,
    },
    /// Its record failed its integrity check.
    Corrupt {
        /// Its UID.
        uid: u32,
        /// The damage: object, key, what is wrong.
        detail: String,
    },
}

impl LostMail {
    fn uid(&self) -> u32 {
        match self {
            LostMail::BodyMissing { uid, .. } | LostMail::Corrupt { uid, .. } => *uid,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            LostMail::BodyMissing { .. } => "body missing",
            LostMail::Corrupt { .. } => "corrupt record",
        }
    }
}

fn open_lost_found(user: &User, create: bool) -> Result<Option<Mailbox>> {
    match user.open_mailbox(LOST_FOUND) {
        Ok(m) => Ok(Some(m)),
        Err(Error::NotFound(_)) if create => {
            match user.create_mailbox(LOST_FOUND) {
                Ok(_) | Err(Error::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
            user.open_mailbox(LOST_FOUND).map(Some)
        }
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves `lost` (mails of mailbox `name`) and the bodies `adopt` into `lost+found`.
pub(super) fn move_to_lost_found(
    user: &User,
    name: &str,
    guid: &Guid,
    lost: &[LostMail],
    adopt: &[Guid],
    options: &RepairOptions,
    report: &mut RepairReport,
) -> Result<()> {
    let dry = options.dry_run;
    let lf = open_lost_found(user, !dry)?;
    let held: BTreeSet<Vec<u8>> = match &lf {
        Some(m) => m.records(1..=u32::MAX)?.into_iter().map(|r| r.mail_guid).collect(),
        None => BTreeSet::new(),
    };
    // 1. Records in lost+found for the bodies (by reference, as a copy).
    let mut adopted: Vec<(Guid, Option<u32>)> = Vec::new();
    let mut txn = Transaction::new(ModseqSteps::One);
    for body in adopt {
        if held.contains(body.0.as_slice()) {
            continue; // moved by an earlier run
        }
        match record_from_xattrs(user, body)? {
            Some(rec) => {
                txn.adopt(rec, user.store().namespace());
                adopted.push((*body, None));
            }
            None => report
                .unrepaired
                .push(format!("mailbox {name:?}: body {} has no readable xattrs: left where it is", names::mail(body))),
        }
    }
    if let (false, Some(lf)) = (dry || adopted.is_empty(), &lf) {
        let done = lf.commit(txn)?;
        for ((_, uid), copied) in adopted.iter_mut().zip(&done.copied) {
            *uid = copied.map(|(_, new)| new);
        }
    }
    for (body, uid) in &adopted {
        report.actions.push(RepairAction::MovedToLostFound {
            mailbox: name.into(),
            body: names::mail(body),
            lost_found_uid: *uid,
        });
    }
    // 2. The report mail.
    if !lost.is_empty() || !adopted.is_empty() {
        let text = report_mail(user, name, guid, lost, &adopted);
        if let (false, Some(lf)) = (dry, &lf) {
            let uid = lf.append(text.as_bytes(), AppendOptions::default())?;
            report.actions.push(RepairAction::WroteReport { uid });
        }
    }
    // 3. Out of the mailbox.
    let uids: Vec<u32> = lost.iter().map(LostMail::uid).collect();
    if !uids.is_empty() && !dry {
        let mailbox = user.open_mailbox(name)?;
        mailbox.sync()?;
        let mut txn = Transaction::new(ModseqSteps::One);
        txn.expunge(&uids);
        mailbox.commit(txn)?;
        // Out of the shards too, so the damaged values are gone from the pool.
        mailbox.apply_wal()?;
    }
    for l in lost {
        report.actions.push(RepairAction::RemovedFromMailbox {
            mailbox: name.into(),
            uid: l.uid(),
            reason: l.reason().into(),
        });
    }
    Ok(())
}

/// The text of the report mail.
fn report_mail(user: &User, name: &str, guid: &Guid, lost: &[LostMail], adopted: &[(Guid, Option<u32>)]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut s = String::new();
    let _ = write!(
        s,
        "From: rados-mail repair <postmaster@localhost>\r\nSubject: rados-mail repair of mailbox {name}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nX-Rados-Mail-Repair: {now}\r\n\r\n\
         rados-mail repair found damage in mailbox \"{name}\" (GUID {guid}) of user {}.\r\n\r\n",
        user.name()
    );
    if !lost.is_empty() {
        s.push_str("Removed from the mailbox:\r\n");
        for l in lost {
            match l {
                LostMail::BodyMissing { uid, record } => {
                    let body = Guid::from_slice(&record.mail_guid).map(|g| names::mail(&g)).unwrap_or_default();
                    let _ = write!(
                        s,
                        "- UID {uid}: body missing ({body}); {} bytes, received {}, flags {:#x}, keywords {:?}\r\n",
                        record.psize, record.received, record.flags, record.keywords
                    );
                }
                LostMail::Corrupt { uid, detail } => {
                    let _ = write!(s, "- UID {uid}: corrupt record ({detail})\r\n");
                }
            }
        }
        s.push_str("\r\n");
    }
    if !adopted.is_empty() {
        s.push_str("Mails whose record was damaged or lost, moved here (flags and keywords are lost):\r\n");
        for (body, uid) in adopted {
            let uid = uid.map_or_else(|| "?".to_string(), |u| u.to_string());
            let _ = write!(s, "- {} -> UID {uid} in {LOST_FOUND}\r\n", names::mail(body));
        }
    }
    s
}
