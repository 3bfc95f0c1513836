//! Object names and namespaces.
//!
//! Every user has a RADOS namespace of their own ([`user_namespace`]: `<user>` without a
//! prefix, `<prefix>/<user>` with one); all of the user's objects live there, so one cephx
//! cap (`osd 'allow rw pool=mail namespace="<prefix>/*"'`) confines a client to one
//! deployment, and `namespace="<prefix>/<user>"` to one user.

use std::fmt;

use crate::FormatError;

/// The mailbox list of a user.
pub const MAILBOX_LIST: &str = "mailboxes";

/// Default `shard_bits`: 32,768 UIDs per shard object, so a shard holds at most 65,537 omap
/// keys (two per UID plus `applied`), well under Ceph's 200,000-key warning.
pub const DEFAULT_SHARD_BITS: u32 = 15;

/// A 16-byte GUID (mailbox or mail), written as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From stored bytes; errors unless exactly 16.
    pub fn from_slice(bytes: &[u8]) -> Result<Guid, FormatError> {
        let arr: [u8; 16] =
            bytes.try_into().map_err(|_| FormatError::Decode(format!("guid of {} bytes", bytes.len())))?;
        Ok(Guid(arr))
    }

    /// From 32 lower-case hex digits, as [`Display`](fmt::Display) writes them; upper
    /// case, signs and other lengths are errors.
    pub fn parse(hex: &str) -> Result<Guid, FormatError> {
        let bad = || FormatError::Key(hex.to_string());
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            let digits = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *b = crate::keys::canonical_hex(digits, 2).and_then(|n| u8::try_from(n).ok()).ok_or_else(bad)?;
        }
        Ok(Guid(out))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// The head object of a mailbox: header, WAL tail, trim mark.
pub fn mailbox_head(mailbox: &Guid) -> String {
    format!("mbox.{mailbox}")
}

/// Shard `n` of a mailbox index: records of UIDs `n << shard_bits ..`.
pub fn mailbox_shard(mailbox: &Guid, shard: u32) -> String {
    format!("mbox.{mailbox}.{shard:04x}")
}

/// The shard that holds `uid`.
pub fn shard_of(uid: u32, shard_bits: u32) -> u32 {
    uid >> shard_bits
}

/// The body object of a mail.
pub fn mail(mail: &Guid) -> String {
    format!("mail.{mail}")
}

/// Chunk `n` (1, 2, ...) of a body larger than one chunk; chunk 0 is [`mail`] itself.
pub fn mail_chunk(mail: &Guid, n: u64) -> String {
    format!("mail.{mail}.{n:04x}")
}

/// The object holding chunk `n` of a body (`n = 0` is the body object itself).
pub fn mail_part(mail_guid: &Guid, n: u64) -> String {
    if n == 0 { self::mail(mail_guid) } else { mail_chunk(mail_guid, n) }
}

/// Ceph's limit on the length of a namespace, in bytes (the OSD option
/// `osd_max_object_namespace_len`, 256 by default; a longer one fails with
/// `ENAMETOOLONG`, measured on Ceph 16.2).
pub const MAX_NAMESPACE_LEN: usize = 256;

/// Between a non-empty prefix and the user name in a namespace. Neither can contain it.
pub const NAMESPACE_SEPARATOR: char = '/';

/// The namespace (after the prefix and its separator) of shared data. User names cannot
/// start with '.', so no user maps to it.
pub const SHARED_NAMESPACE: &str = ".shared";

/// Checks a namespace prefix (the `namespace_prefix` setting): empty, or UTF-8 with no
/// '/' ([`NAMESPACE_SEPARATOR`]) and no control character, short enough to leave room
/// for a one-byte user name under [`MAX_NAMESPACE_LEN`].
pub fn check_prefix(prefix: &str) -> Result<(), FormatError> {
    let bad = |why: &str| Err(FormatError::Name(format!("namespace prefix {prefix:?}: {why}")));
    if prefix.contains(NAMESPACE_SEPARATOR) {
        return bad("must not contain '/' (it separates the prefix from the user name)");
    }
    if prefix.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if !prefix.is_empty() && prefix.len() + 2 > MAX_NAMESPACE_LEN {
        return bad(&format!("longer than {} bytes", MAX_NAMESPACE_LEN - 2));
    }
    Ok(())
}

/// The namespace of a user (or of [`SHARED_NAMESPACE`]) without the checks: `name` when
/// `prefix` is empty, `<prefix>/<name>` otherwise.
pub fn namespace_of(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}{NAMESPACE_SEPARATOR}{name}") }
}

/// The namespace of user `user` under `prefix` (mapping v2, see `docs/FORMAT.md`):
/// `user` when the prefix is empty, `<prefix>/<user>` otherwise.
///
/// Refused, with [`FormatError::Name`] (permanently: the same name never works), are
/// prefixes [`check_prefix`] refuses, and user names that are empty, contain '/', NUL or
/// another control character, start with '.' (reserved for shared data), or whose
/// namespace would be longer than [`MAX_NAMESPACE_LEN`] bytes.
///
/// # The mapping is injective
///
/// Two accepted pairs `(p1, u1) != (p2, u2)` never give the same namespace. Neither a
/// prefix nor a user name contains '/'. So a namespace contains a '/' exactly when its
/// prefix is not empty, and then exactly one: the bytes before it are the prefix, the
/// bytes after it the user name. A namespace without '/' is the user name itself, with the
/// empty prefix. Either way the pair is read back from the namespace ([`split_namespace`]),
/// so equal namespaces come from equal pairs. The same holds for [`SHARED_NAMESPACE`]
/// (no '/', not a user name since it starts with '.'): no user of any prefix shares a
/// deployment's shared namespace.
pub fn user_namespace(prefix: &str, user: &str) -> Result<String, FormatError> {
    check_prefix(prefix)?;
    let bad = |why: String| Err(FormatError::Name(format!("user name {user:?}: {why}")));
    if user.is_empty() {
        return bad("empty".into());
    }
    if user.contains(NAMESPACE_SEPARATOR) {
        return bad("must not contain '/'".into());
    }
    if user.chars().any(char::is_control) {
        return bad("contains a control character".into());
    }
    if user.starts_with('.') {
        return bad("must not start with '.' (reserved for shared data)".into());
    }
    let ns = namespace_of(prefix, user);
    if ns.len() > MAX_NAMESPACE_LEN {
        return bad(format!(
            "too long: its namespace {:?} would be {} bytes, Ceph's limit is {MAX_NAMESPACE_LEN}",
            if prefix.is_empty() { "<user>" } else { "<prefix>/<user>" },
            ns.len()
        ));
    }
    Ok(ns)
}

/// The inverse of [`namespace_of`]: the name (user, or [`SHARED_NAMESPACE`]) whose
/// namespace under `prefix` is `namespace`, if any.
pub fn split_namespace<'a>(prefix: &str, namespace: &'a str) -> Option<&'a str> {
    let rest = if prefix.is_empty() {
        namespace
    } else {
        namespace.strip_prefix(prefix)?.strip_prefix(NAMESPACE_SEPARATOR)?
    };
    (!rest.is_empty() && !rest.contains(NAMESPACE_SEPARATOR)).then_some(rest)
}

/// The namespace of `user` under mapping v1 (before the separator; kept for
/// `rados-mail migrate`): `<prefix><user>`, not injective across prefixes.
pub fn user_namespace_v1(prefix: &str, user: &str) -> String {
    format!("{prefix}{user}")
}

/// Xattrs of a mail body object. Values are ASCII (decimal numbers, hex GUIDs and crc),
/// so that `rados getxattr` shows them as they are.
pub mod xattr {
    /// Format version of the mail object ("1").
    pub const VERSION: &str = "rm.v";
    /// The mail GUID (32 hex).
    pub const GUID: &str = "rm.guid";
    /// GUID of the mailbox it was first saved into (32 hex).
    pub const MAILBOX: &str = "rm.mbox";
    /// Received date, Unix seconds.
    pub const RECEIVED: &str = "rm.received";
    /// Save date, Unix seconds.
    pub const SAVED: &str = "rm.saved";
    /// Physical size (bytes as stored).
    pub const PSIZE: &str = "rm.psize";
    /// Virtual size (CRLF line endings).
    pub const VSIZE: &str = "rm.vsize";
    /// Header length.
    pub const HDR_LEN: &str = "rm.hdrlen";
    /// crc32 of the body (8 hex).
    pub const CRC32: &str = "rm.crc32";
    /// Bytes per body object (decimal).
    pub const CHUNK_SIZE: &str = "rm.chunksize";
    /// Number of objects the body spans (decimal; 1 for most mails).
    pub const CHUNKS: &str = "rm.chunks";
    /// The mail's physical size (decimal) when the stored bytes are a mail plugin's
    /// transform of it (`mail_crypt`, `zlib`); absent otherwise. `rm.vsize` and
    /// `rm.hdrlen` then describe the plain mail, `rm.psize` the stored bytes.
    pub const PLAIN_PSIZE: &str = "rm.plainpsize";
    /// Prefix of the reference xattrs of pool format v2 (`docs/FORMAT.md`, "Layout and
    /// format versions"): `rm.ref.<mailbox guid>.<instance>`, empty value, one per index
    /// record that points to the body.
    pub const REFERENCE: &str = "rm.ref.";

    /// The reference xattr of record `instance` of `mailbox`: 56 bytes, well under Ceph's
    /// `osd_max_attr_name_len` (100).
    pub fn reference(mailbox: &super::Guid, instance: u64) -> String {
        format!("{REFERENCE}{mailbox}.{instance:016x}")
    }

    /// The mailbox and instance of a reference xattr name (strictly: as [`reference()`]
    /// writes it); `None` for any other name.
    pub fn parse_reference(name: &str) -> Option<(super::Guid, u64)> {
        let rest = name.strip_prefix(REFERENCE)?;
        let (mailbox, instance) = rest.split_once('.')?;
        let mailbox = super::Guid::parse(mailbox).ok()?;
        let instance = crate::keys::canonical_hex(instance, 16)?;
        Some((mailbox, instance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_hex_round_trip() {
        let g = Guid([0xab; 16]);
        assert_eq!(g.to_string(), "ab".repeat(16));
        assert_eq!(Guid::parse(&g.to_string()).unwrap(), g);
        assert!(Guid::parse("xyz").is_err());
        assert!(Guid::parse(&"g".repeat(32)).is_err());
        // Issue 13: only the canonical (lower-case) spelling parses.
        assert!(Guid::parse(&"AB".repeat(16)).is_err(), "upper case");
        assert!(Guid::parse(&format!("+b{}", "ab".repeat(15))).is_err(), "sign");
        assert!(Guid::parse(&"ab".repeat(17)).is_err(), "34 digits");
        assert!(Guid::parse(&format!("é{}", "a".repeat(30))).is_err(), "not ASCII");
        assert_eq!(mailbox_shard(&g, 3), format!("mbox.{}.0003", "ab".repeat(16)));
        assert_eq!(shard_of(32_767, DEFAULT_SHARD_BITS), 0);
        assert_eq!(shard_of(32_768, DEFAULT_SHARD_BITS), 1);
    }

    #[test]
    fn reference_xattrs() {
        let (m, n) = (Guid([0x5a; 16]), 0x1234_5678_9abc_def0);
        let name = xattr::reference(&m, n);
        assert_eq!(name.len(), 56);
        assert!(name.len() <= 100, "Ceph's osd_max_attr_name_len");
        assert_eq!(xattr::parse_reference(&name), Some((m, n)));
        assert_eq!(xattr::parse_reference("rm.guid"), None);
        assert_eq!(xattr::parse_reference(&name.to_uppercase()), None);
        assert_eq!(xattr::parse_reference(&format!("{name}0")), None);
    }

    #[test]
    fn namespaces_of_users() {
        assert_eq!(user_namespace("", "a@x").unwrap(), "a@x");
        assert_eq!(user_namespace("faults-", "a@x").unwrap(), "faults-/a@x");
        assert_eq!(namespace_of("faults-", SHARED_NAMESPACE), "faults-/.shared");
        assert_eq!(namespace_of("", SHARED_NAMESPACE), ".shared");
        // Issue 14: under mapping v1, `faults-` + `q-a@x` and `faults-q-` + `a@x` were the
        // same namespace.
        assert_ne!(user_namespace("faults-", "q-a@x").unwrap(), user_namespace("faults-q-", "a@x").unwrap());
        assert_eq!(user_namespace_v1("faults-", "q-a@x"), user_namespace_v1("faults-q-", "a@x"));
        for bad in ["", "a/b", ".shared", ".x", "a\nb", "nul\0", "tab\t"] {
            assert!(matches!(user_namespace("p", bad), Err(FormatError::Name(_))), "{bad:?}");
            assert!(matches!(user_namespace("", bad), Err(FormatError::Name(_))), "{bad:?}");
        }
        for bad in ["a/", "/", "x\n"] {
            assert!(matches!(check_prefix(bad), Err(FormatError::Name(_))), "{bad:?}");
            assert!(matches!(user_namespace(bad, "a"), Err(FormatError::Name(_))), "{bad:?}");
        }
        assert!(check_prefix(&"p".repeat(MAX_NAMESPACE_LEN - 2)).is_ok());
        assert!(check_prefix(&"p".repeat(MAX_NAMESPACE_LEN - 1)).is_err());
    }

    #[test]
    fn namespace_length_limit_is_cephs() {
        // Issue 14: a 7-byte prefix and a 250-byte name made a 257-byte namespace, which
        // Ceph refuses (ENAMETOOLONG): LMTP answered 451 forever.
        let prefix = "faults-";
        let fits = "u".repeat(MAX_NAMESPACE_LEN - prefix.len() - 1);
        assert_eq!(user_namespace(prefix, &fits).unwrap().len(), MAX_NAMESPACE_LEN);
        let over = format!("{fits}u");
        let err = user_namespace(prefix, &over).unwrap_err().to_string();
        assert!(err.contains("257 bytes") && err.contains("256"), "{err}");
        assert_eq!(user_namespace("", &"u".repeat(MAX_NAMESPACE_LEN)).unwrap().len(), MAX_NAMESPACE_LEN);
        assert!(user_namespace("", &"u".repeat(MAX_NAMESPACE_LEN + 1)).is_err());
        // Multi-byte characters count in bytes.
        assert!(user_namespace("", &"é".repeat(128)).is_ok());
        assert!(user_namespace("", &format!("{}x", "é".repeat(128))).is_err());
    }

    #[test]
    fn split_inverts_the_mapping() {
        assert_eq!(split_namespace("faults-", "faults-/a@x"), Some("a@x"));
        assert_eq!(split_namespace("faults-", "faults-q-/a@x"), None);
        assert_eq!(split_namespace("faults-", "faults-a@x"), None, "mapping v1");
        assert_eq!(split_namespace("", "faults-/a@x"), None);
        assert_eq!(split_namespace("", "a@x"), Some("a@x"));
        assert_eq!(split_namespace("", ""), None);
        assert_eq!(split_namespace("p", "p/"), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Names from a small alphabet with the characters that matter ('/', '.', '-',
        /// a control character, a multi-byte one), so that collisions would be found.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => proptest::collection::vec(prop::sample::select(vec!['a', 'q', '-', '/', '.', '@', '\u{1}', 'é']), 0..8)
                    .prop_map(|v| v.into_iter().collect::<String>()),
                1 => (0usize..300).prop_map(|n| "x".repeat(n)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// Distinct (prefix, user) pairs that are accepted never give the same
            /// namespace, and the pair is read back from the namespace.
            #[test]
            fn mapping_is_injective(p1 in name(), u1 in name(), p2 in name(), u2 in name()) {
                let (a, b) = (user_namespace(&p1, &u1), user_namespace(&p2, &u2));
                if let (Ok(a), Ok(b)) = (&a, &b) {
                    prop_assert_eq!(a == b, (p1.as_str(), u1.as_str()) == (p2.as_str(), u2.as_str()));
                }
                if let Ok(a) = &a {
                    prop_assert!(a.len() <= MAX_NAMESPACE_LEN);
                    prop_assert_eq!(split_namespace(&p1, a), Some(u1.as_str()));
                    // No user of any accepted prefix maps to a shared namespace.
                    if check_prefix(&p2).is_ok() {
                        prop_assert_ne!(a.as_str(), namespace_of(&p2, SHARED_NAMESPACE));
                    }
                }
            }

            /// The shape: one prefix extending another, the user name carrying
            /// the difference.
            #[test]
            fn extended_prefixes_do_not_collide(p in name(), ext in name(), u in name()) {
                let long = format!("{p}{ext}");
                let (a, b) = (user_namespace(&p, &format!("{ext}{u}")), user_namespace(&long, &u));
                if let (Ok(a), Ok(b)) = (a, b) {
                    prop_assert!(a != b || ext.is_empty());
                }
            }
        }
    }
}
