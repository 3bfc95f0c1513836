//! The on-RADOS format of rados-mail.
//!
//! Everything rados-mail stores is described here and in `docs/FORMAT.md`: the object
//! names ([`names`]), the omap keys ([`keys`]), and the records stored as omap values
//! ([`records`]), each framed with a format version and a crc32 ([`frame`]). The crate does
//! no I/O; `rados-mail` uses it to lay data out in RADOS through the object-store trait.
//!
//! ```
//! use omap_index::{frame, records::MailRecord};
//!
//! let rec = MailRecord { uid: 7, modseq: 12, flags: 1, ..Default::default() };
//! let bytes = frame::encode(&rec);
//! let back: MailRecord = frame::decode(&bytes).unwrap();
//! assert_eq!(back, rec);
//! ```

mod error;
pub mod format;
pub mod frame;
pub mod keys;
pub mod names;
pub mod records;

pub use error::FormatError;
