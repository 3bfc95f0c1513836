//! Maildir++ as Dovecot writes it: folder names, the `:2,` flags of file names,
//! `dovecot-keywords` and `dovecot-uidlist`, and the scan of a tree into [`Folder`]s.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rados_mail::{Flags, Guid};

use super::import::{Folder, Source, SourceMail, valid_keyword};
use super::mutf7;
use crate::error::{Error, Result};

/// The file that maps keyword letters (`a` = 0, `b` = 1, ...) to keyword names.
pub const KEYWORDS_FILE: &str = "dovecot-keywords";
/// The file that keeps UIDVALIDITY, the next UID and each file's UID.
pub const UIDLIST_FILE: &str = "dovecot-uidlist";
/// Keywords a Maildir file name can carry (the letters `a` to `z`).
pub const MAX_KEYWORDS: usize = 26;

/// The system flags in the order Maildir file names list them, with their letters.
const FLAG_LETTERS: [(char, Flags); 5] =
    [('D', Flags::DRAFT), ('F', Flags::FLAGGED), ('R', Flags::ANSWERED), ('S', Flags::SEEN), ('T', Flags::DELETED)];

/// The mailbox a Maildir++ folder (`.A.B`, a directory name) stands for (`A/B`).
pub fn folder_to_mailbox(dir_name: &str) -> Option<String> {
    let levels = dir_name.strip_prefix('.')?;
    let mut out = Vec::new();
    for level in levels.split('.') {
        if level.is_empty() {
            return None;
        }
        out.push(mutf7::decode(level)?);
    }
    Some(out.join("/"))
}

/// The directory (relative to the Maildir's top) of a mailbox: empty for INBOX, `.A.B`
/// for `A/B`.
pub fn mailbox_to_folder(name: &str) -> String {
    if name == "INBOX" {
        return String::new();
    }
    name.split('/').map(|l| format!(".{}", mutf7::encode(l))).collect()
}

/// A file name's base (up to the first ':'), system flags and keyword letters (`a`–`z`,
/// as indexes) from its `:2,` part. Letters neither known flags nor keywords are ignored.
pub fn parse_info(file_name: &str) -> (&str, Flags, Vec<usize>) {
    let Some((base, info)) = file_name.split_once(':') else { return (file_name, Flags::NONE, Vec::new()) };
    let Some(letters) = info.strip_prefix("2,") else { return (base, Flags::NONE, Vec::new()) };
    let letters = letters.split(',').next().unwrap_or("");
    let mut flags = Flags::NONE;
    let mut keywords = Vec::new();
    for c in letters.chars() {
        if let Some((_, f)) = FLAG_LETTERS.iter().find(|(l, _)| *l == c) {
            flags = flags | *f;
        } else if c.is_ascii_lowercase() {
            keywords.push((c as u8 - b'a') as usize);
        }
    }
    keywords.sort_unstable();
    keywords.dedup();
    (base, flags, keywords)
}

/// The `:2,` part of a file name: system flags in DFRST order, then keyword letters.
pub fn info_of(flags: Flags, keyword_indexes: &[usize]) -> String {
    let mut out = String::from(":2,");
    out.extend(FLAG_LETTERS.iter().filter(|(_, f)| flags.contains(*f)).map(|(l, _)| *l));
    let mut idx: Vec<usize> = keyword_indexes.iter().copied().filter(|i| *i < MAX_KEYWORDS).collect();
    idx.sort_unstable();
    idx.dedup();
    out.extend(idx.iter().map(|i| (b'a' + *i as u8) as char));
    out
}

/// `dovecot-keywords`: lines `<index> <name>`.
pub fn parse_keywords(text: &str) -> BTreeMap<usize, String> {
    text.lines()
        .filter_map(|l| {
            let (i, name) = l.split_once(' ')?;
            Some((i.trim().parse().ok()?, name.trim().to_string()))
        })
        .collect()
}

/// `dovecot-keywords` for keywords in index order.
pub fn render_keywords(names: &[String]) -> String {
    names.iter().enumerate().map(|(i, n)| format!("{i} {n}\n")).collect()
}

/// What a `dovecot-uidlist` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uidlist {
    /// UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// The next UID to hand out.
    pub next_uid: Option<u32>,
    /// The mailbox GUID (version 3 `G`), when 32 hex digits.
    pub guid: Option<Guid>,
    /// By file base name (up to ':'): the UID and the mail GUID (`G` extension, when 32
    /// hex digits).
    pub entries: HashMap<String, (u32, Option<Guid>)>,
}

/// Parses versions 1 (`1 <uidvalidity> <next>`, lines `<uid> <file>`) and 3
/// (`3 V<uidvalidity> N<next> G<guid>`, lines `<uid> [<ext>...] :<file>`).
pub fn parse_uidlist(text: &str) -> Option<Uidlist> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let mut out = Uidlist::default();
    let version: u32 = header.first()?.parse().ok()?;
    if version == 3 {
        for field in &header[1..] {
            let value = &field[1..];
            match field.as_bytes()[0] {
                b'V' => out.uidvalidity = value.parse().ok(),
                b'N' => out.next_uid = value.parse().ok(),
                b'G' => out.guid = Guid::parse(value).ok(),
                _ => {}
            }
        }
    } else {
        out.uidvalidity = header.get(1).and_then(|v| v.parse().ok());
        out.next_uid = header.get(2).and_then(|v| v.parse().ok());
    }
    for line in lines {
        let Some((uid, rest)) = line.split_once(' ') else { continue };
        let Ok(uid) = uid.parse::<u32>() else { continue };
        let (exts, file) = if version == 3 {
            match rest.find(':').filter(|&i| i == 0 || rest.as_bytes()[i - 1] == b' ') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => continue,
            }
        } else {
            ("", rest)
        };
        let guid = exts.split_whitespace().find_map(|e| e.strip_prefix('G')).and_then(|g| Guid::parse(g).ok());
        let base = file.split(':').next().unwrap_or(file).to_string();
        if uid > 0 && !base.is_empty() {
            out.entries.insert(base, (uid, guid));
        }
    }
    Some(out)
}

/// A version 3 `dovecot-uidlist`: the header, then `(uid, mail GUID, base name)` lines.
pub fn render_uidlist(uidvalidity: u32, next_uid: u32, guid: &Guid, files: &[(u32, String, String)]) -> String {
    let mut out = format!("3 V{uidvalidity} N{next_uid} G{guid}\n");
    for (uid, mail_guid, base) in files {
        out.push_str(&format!("{uid} G{mail_guid} :{base}\n"));
    }
    out
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Reads a Maildir++ tree: `cur/` and `new/` of `root` become `top` (INBOX unless told),
/// every `.A.B` sub-directory with a `cur/` or `new/` the mailbox `A/B`. Problems that
/// leave a mail or a detail out are added to `problems`.
pub fn scan(root: &Path, top: &str, problems: &mut Vec<String>) -> Result<Vec<Folder>> {
    if !root.join("cur").is_dir() && !root.join("new").is_dir() {
        return Err(Error::Usage(format!("{}: not a Maildir (no cur/ or new/)", root.display())));
    }
    let mut folders = vec![scan_folder(root, top.to_string(), problems)?];
    let mut subs: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(root).map_err(io(root))? {
        let entry = entry.map_err(io(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') || name == "." || name == ".." || !entry.path().is_dir() {
            continue;
        }
        if !entry.path().join("cur").is_dir() && !entry.path().join("new").is_dir() {
            continue;
        }
        match folder_to_mailbox(&name) {
            Some(mailbox) => subs.push((mailbox, entry.path())),
            None => problems.push(format!("{}: not a Maildir++ folder name, left out", entry.path().display())),
        }
    }
    subs.sort();
    for (mailbox, path) in subs {
        folders.push(scan_folder(&path, mailbox, problems)?);
    }
    Ok(folders)
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

/// One folder: its mails ordered by the UIDs its uidlist gives, then the others by name.
fn scan_folder(dir: &Path, mailbox: String, problems: &mut Vec<String>) -> Result<Folder> {
    let keywords = read_optional(&dir.join(KEYWORDS_FILE))?.map(|t| parse_keywords(&t)).unwrap_or_default();
    let uidlist = match read_optional(&dir.join(UIDLIST_FILE))? {
        Some(text) => parse_uidlist(&text).or_else(|| {
            problems.push(format!("{}: unreadable, UIDs not kept", dir.join(UIDLIST_FILE).display()));
            None
        }),
        None => None,
    };
    let uidlist = uidlist.unwrap_or_default();
    let mut mails = Vec::new();
    for sub in ["cur", "new"] {
        let path = dir.join(sub);
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Io { path, source }),
        };
        for entry in entries {
            let entry = entry.map_err(io(&path))?;
            let meta = entry.metadata().map_err(io(&entry.path()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !meta.is_file() || name.starts_with('.') {
                continue;
            }
            let received = meta
                .modified()
                .ok()
                .and_then(|t| match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => i64::try_from(d.as_secs()).ok(),
                    Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
                })
                .unwrap_or(0);
            let (base, flags, letters) = parse_info(&name);
            let mut kws = Vec::new();
            for i in letters {
                match keywords.get(&i) {
                    Some(k) if valid_keyword(k) => kws.push(k.clone()),
                    Some(k) => problems.push(format!("{}: keyword {k:?} is not an IMAP keyword, left out", name)),
                    None => problems.push(format!(
                        "{}: keyword letter {} not in {KEYWORDS_FILE}, left out",
                        entry.path().display(),
                        (b'a' + i as u8) as char
                    )),
                }
            }
            let (uid, guid) = uidlist.entries.get(base).map_or((None, None), |(u, g)| (Some(*u), *g));
            mails.push(SourceMail {
                source: Source::File(entry.path()),
                size: meta.len(),
                flags,
                keywords: kws,
                received,
                uid,
                guid,
                name,
            });
        }
    }
    // Listed mails in UID order, then the rest by name: the order the UIDs go up in.
    mails.sort_by(|a, b| (a.uid.is_none(), a.uid, &a.name).cmp(&(b.uid.is_none(), b.uid, &b.name)));
    let mut last = 0;
    for m in &mut mails {
        // Two files claiming one UID: the second gets a new one.
        if let Some(u) = m.uid {
            if u <= last {
                m.uid = None;
            } else {
                last = u;
            }
        }
    }
    // UIDs below the list's next UID that it does not list were given to mails gone
    // since: mails it does not list get UIDs from its next UID on, as Dovecot gives them.
    if let Some(next) = uidlist.next_uid {
        let first = next.max(last.saturating_add(1));
        for (uid, m) in (first..u32::MAX).zip(mails.iter_mut().filter(|m| m.uid.is_none())) {
            m.uid = Some(uid);
        }
    }
    Ok(Folder {
        mailbox,
        origin: dir.to_path_buf(),
        uidvalidity: uidlist.uidvalidity.filter(|v| *v != 0),
        uidnext: uidlist.next_uid.filter(|n| *n > 1 && *n != u32::MAX),
        guid: uidlist.guid,
        mails,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        assert_eq!(folder_to_mailbox(".Sent").as_deref(), Some("Sent"));
        assert_eq!(folder_to_mailbox(".A.B").as_deref(), Some("A/B"));
        assert_eq!(folder_to_mailbox(".Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(folder_to_mailbox(".A..B"), None);
        assert_eq!(folder_to_mailbox("A"), None);
        assert_eq!(mailbox_to_folder("INBOX"), "");
        assert_eq!(mailbox_to_folder("A/B"), ".A.B");
        assert_eq!(mailbox_to_folder("INBOX/x"), ".INBOX.x");
        for name in ["Sent", "A/B/C", "Entwürfe", "v1.2/x", "INBOX/y"] {
            assert_eq!(folder_to_mailbox(&mailbox_to_folder(name)).as_deref(), Some(name));
        }
    }

    #[test]
    fn flags_in_file_names() {
        let (base, flags, kws) = parse_info("1700000000.M1P2.host,S=12:2,STFRDcaz");
        assert_eq!(base, "1700000000.M1P2.host,S=12");
        assert_eq!(flags, Flags::SEEN | Flags::DELETED | Flags::FLAGGED | Flags::ANSWERED | Flags::DRAFT);
        assert_eq!(kws, vec![0, 2, 25]);
        assert_eq!(parse_info("plain"), ("plain", Flags::NONE, vec![]));
        assert_eq!(parse_info("x:1,S"), ("x", Flags::NONE, vec![]));
        assert_eq!(parse_info("x:2,S,extra"), ("x", Flags::SEEN, vec![]));
        assert_eq!(info_of(Flags::SEEN | Flags::DRAFT | Flags::ANSWERED, &[3, 0]), ":2,DRSad");
        assert_eq!(info_of(Flags::NONE, &[]), ":2,");
        let name = format!("x{}", info_of(Flags::FLAGGED | Flags::DELETED, &[1]));
        assert_eq!(parse_info(&name), ("x", Flags::FLAGGED | Flags::DELETED, vec![1]));
    }

    #[test]
    fn keywords_file() {
        let k = parse_keywords("0 $Forwarded\n1 Junk\nbad line\n3 later\n");
        assert_eq!(k.get(&0).map(String::as_str), Some("$Forwarded"));
        assert_eq!(k.get(&1).map(String::as_str), Some("Junk"));
        assert_eq!(k.get(&2), None);
        assert_eq!(k.get(&3).map(String::as_str), Some("later"));
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(parse_keywords(&render_keywords(&names)).into_values().collect::<Vec<_>>(), names);
    }

    #[test]
    fn scan_orders_by_uid_and_reports_what_it_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["cur", "new", ".Sub/cur", ".bad..name/cur", ".NotAFolder"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for name in ["cur/a:2,Sa", "cur/b:2,Fz", "cur/c:2,", "new/d", "cur/e:2,T", ".Sub/cur/x:2,"] {
            fs::write(root.join(name), name).unwrap();
        }
        fs::write(root.join(KEYWORDS_FILE), "0 Junk\n1 bad(kw\n").unwrap();
        // b and e claim one UID (e, second, loses it); c and d are not listed.
        fs::write(root.join(UIDLIST_FILE), "3 V7 N50\n9 :b\n5 :a\n9 :e\n").unwrap();
        let mut problems = Vec::new();
        let folders = scan(root, "INBOX", &mut problems).unwrap();
        let names: Vec<&str> = folders.iter().map(|f| f.mailbox.as_str()).collect();
        assert_eq!(names, ["INBOX", "Sub"]);
        let inbox = &folders[0];
        assert_eq!((inbox.uidvalidity, inbox.uidnext), (Some(7), Some(50)));
        let got: Vec<(&str, Option<u32>)> = inbox.mails.iter().map(|m| (m.name.as_str(), m.uid)).collect();
        assert_eq!(
            got,
            [("a:2,Sa", Some(5)), ("b:2,Fz", Some(9)), ("e:2,T", Some(50)), ("c:2,", Some(51)), ("d", Some(52))]
        );
        assert_eq!(inbox.mails[0].keywords, ["Junk"]);
        assert_eq!((inbox.mails[0].flags, inbox.mails[1].flags), (Flags::SEEN, Flags::FLAGGED));
        assert!(inbox.mails[1].keywords.is_empty());
        assert_eq!(folders[1].mails.len(), 1);
        assert_eq!((folders[1].uidvalidity, folders[1].mails[0].uid), (None, None));
        // The unknown letter z, and the folder name with an empty level.
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("letter z")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains(".bad..name")), "{problems:?}");
        assert!(matches!(scan(&root.join(".NotAFolder"), "INBOX", &mut problems), Err(Error::Usage(_))));
    }

    #[test]
    fn uidlists() {
        let g = Guid([7; 16]);
        let text = render_uidlist(
            42,
            9,
            &g,
            &[(3, "0a".repeat(16), "100.3_x.rados-mail".into()), (8, "zz".into(), "b".into())],
        );
        let u = parse_uidlist(&text).unwrap();
        assert_eq!((u.uidvalidity, u.next_uid, u.guid), (Some(42), Some(9), Some(g)));
        assert_eq!(u.entries["100.3_x.rados-mail"], (3, Some(Guid([10; 16]))));
        assert_eq!(u.entries["b"], (8, None));
        // Dovecot's own lines: extensions, a flags suffix in the name, and version 1.
        let d = parse_uidlist("3 V1 N5 Gnothex\n4 W123 S120 :1.M2.h,S=120:2,S\n").unwrap();
        assert_eq!((d.uidvalidity, d.next_uid, d.guid), (Some(1), Some(5), None));
        assert_eq!(d.entries["1.M2.h,S=120"], (4, None));
        let v1 = parse_uidlist("1 1234 7\n2 a.b\n6 c.d\n").unwrap();
        assert_eq!((v1.uidvalidity, v1.next_uid), (Some(1234), Some(7)));
        assert_eq!(v1.entries["c.d"], (6, None));
        assert_eq!(parse_uidlist(""), None);
    }
}
