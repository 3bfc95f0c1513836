//! Where a dict's keys live: the one object [`DICT_OBJECT`], or N shard objects chosen by a
//! hash of the key (docs/FORMAT.md, "Dicts").

use crate::error::{Error, Result};

use super::DICT_OBJECT;

/// The most shard objects a dict may have (their names have 4 hex digits, and an iteration
/// reads every shard).
pub const MAX_SHARDS: u32 = 4096;

/// The number of shards of the shared dict in new pools.
///
/// Dovecot's last-login plugin writes one `shared/last-login/<user>` key per user: with 64
/// shards a million users make about 15,600 keys per shard (crc32 spreads them within a
/// few hundred of the mean), six times below the project's limit of 100,000 keys per
/// object; the limit is reached near 6 million keys. Every iteration of the shared dict
/// reads all shards (at once), which is why this is not larger: larger deployments choose
/// more shards at pool creation or re-shard ([`super::reshard`]).
pub const DEFAULT_SHARED_SHARDS: u32 = 64;

/// The object of a dict of `shards` shards that holds `key`: [`DICT_OBJECT`] when
/// `shards` is 0, else `dict.<s>` with `s` = crc32 (IEEE) of the key's UTF-8 bytes (the
/// full key, `shared/` included) modulo `shards`, written as 4 lower-case hex digits
/// (`dict.003f`).
pub fn shard_object(shards: u32, key: &str) -> String {
    match shards {
        0 => DICT_OBJECT.to_string(),
        n => shard_name(crc32fast::hash(key.as_bytes()) % n),
    }
}

/// Every object of a dict of `shards` shards, in shard order: `[DICT_OBJECT]` for 0, else
/// `dict.0000` … `dict.<shards-1>`.
pub fn shard_objects(shards: u32) -> Vec<String> {
    match shards {
        0 => vec![DICT_OBJECT.to_string()],
        n => (0..n).map(shard_name).collect(),
    }
}

/// The name of shard `s`.
fn shard_name(s: u32) -> String {
    format!("{DICT_OBJECT}.{s:04x}")
}

/// Refuses a number of shards above [`MAX_SHARDS`].
pub(crate) fn check_shards(shards: u32) -> Result<()> {
    if shards > MAX_SHARDS {
        return Err(Error::InvalidInput(format!("a dict of {shards} shards (at most {MAX_SHARDS})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_follow_the_format() {
        assert_eq!(shard_object(0, "shared/x"), "dict");
        assert_eq!(shard_objects(0), ["dict"]);
        assert_eq!(shard_objects(3), ["dict.0000", "dict.0001", "dict.0002"]);
        assert_eq!(shard_objects(MAX_SHARDS).last().unwrap(), "dict.0fff");
        // FORMAT.md's example: crc32("shared/last-login/alice") = 0x1f118b45, mod 64 = 5.
        assert_eq!(crc32fast::hash(b"shared/last-login/alice"), 0x1f11_8b45);
        assert_eq!(shard_object(64, "shared/last-login/alice"), "dict.0005");
        assert_eq!(shard_object(1, "shared/anything"), "dict.0000");
        assert!(check_shards(MAX_SHARDS).is_ok());
        assert!(matches!(check_shards(MAX_SHARDS + 1), Err(Error::InvalidInput(_))));
    }
}
