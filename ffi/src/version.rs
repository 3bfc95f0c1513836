//! The library's version, for C: [`rm_version`] (a string) and [`rm_version_number`] (a
//! number comparable with the header's `RM_VERSION_NUMBER`); and the version of the C ABI,
//! [`rm_abi_version`] against the header's `RM_ABI_VERSION_*` (rules: `ffi/README.md`).
//!
//! The header's `RM_VERSION_*` defines say which version a caller was compiled against;
//! the two functions say which library it runs with (a shared `librados_mail.so` may be
//! newer than the header). All of them come from the workspace's `version` in
//! `Cargo.toml`: the defines are literals here (cbindgen copies literals only), and the
//! build fails when they differ from `CARGO_PKG_VERSION` (the `const` assertion below), so
//! a version bump that forgets them does not compile.

use std::ffi::c_char;

/// Major version of the header (`MAJOR.MINOR.PATCH`, semantic versioning).
pub const RM_VERSION_MAJOR: u32 = 0;
/// Minor version of the header.
pub const RM_VERSION_MINOR: u32 = 1;
/// Patch version of the header.
pub const RM_VERSION_PATCH: u32 = 0;
/// `(RM_VERSION_MAJOR << 16) | (RM_VERSION_MINOR << 8) | RM_VERSION_PATCH`: the version
/// of the header as one number, what [`rm_version_number`] returns for the library.
pub const RM_VERSION_NUMBER: u32 = 0x00_01_00;

/// Major version of the C ABI the header describes. It changes when a program compiled
/// against an older header could misbehave with this library: a function, constant, enum
/// value or struct field removed, renamed, reordered or given another type or meaning
/// (`ffi/README.md`, "ABI version"). Independent of the crate's version.
pub const RM_ABI_VERSION_MAJOR: u32 = 1;
/// Minor version of the C ABI: it grows with every addition (a function, a result code, a
/// setting, a constant) that keeps every program built against an older header working.
/// Back to 0 when the major version changes.
pub const RM_ABI_VERSION_MINOR: u32 = 0;
/// `(RM_ABI_VERSION_MAJOR << 16) | RM_ABI_VERSION_MINOR`: the ABI version of the header as
/// one number, what [`rm_abi_version`] returns for the library.
pub const RM_ABI_VERSION: u32 = 0x0001_0000;

const _: () = assert!(RM_ABI_VERSION_MINOR < 0x1_0000, "the minor version must fit in 16 bits");
const _: () = assert!(RM_ABI_VERSION == (RM_ABI_VERSION_MAJOR << 16) | RM_ABI_VERSION_MINOR);

/// The library's version string with its NUL, from Cargo.
const VERSION_STRING: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Parses a decimal number at compile time (Cargo's version parts are plain digits).
const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    assert!(!bytes.is_empty(), "empty version part");
    let mut n: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "version part is not a number");
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// The version of this build as one number (the encoding of `RM_VERSION_NUMBER`).
const fn encode(major: u32, minor: u32, patch: u32) -> u32 {
    assert!(minor < 256 && patch < 256, "minor and patch must fit in 8 bits");
    (major << 16) | (minor << 8) | patch
}

const BUILT_NUMBER: u32 = encode(
    parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
    parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
    parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
);

// The header's defines are the version Cargo builds: update them with Cargo.toml's
// `version` (and regenerate the header, ffi/check-header.sh --write).
const _: () = assert!(RM_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
const _: () = assert!(RM_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
const _: () = assert!(RM_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
const _: () = assert!(RM_VERSION_NUMBER == encode(RM_VERSION_MAJOR, RM_VERSION_MINOR, RM_VERSION_PATCH));

/// The library's version, like `"0.1.0"` (Cargo's `CARGO_PKG_VERSION`, with a pre-release
/// suffix if the version has one): a static, NUL-terminated string; never NULL, never to be
/// freed.
#[unsafe(no_mangle)]
pub extern "C" fn rm_version() -> *const c_char {
    VERSION_STRING.as_ptr().cast()
}

/// The library's version as `(major << 16) | (minor << 8) | patch`, comparable with the
/// header's `RM_VERSION_NUMBER`: a program can check at run time that the library it loaded
/// is at least as new as the header it was compiled with
/// (`rm_version_number() >= RM_VERSION_NUMBER`).
#[unsafe(no_mangle)]
pub extern "C" fn rm_version_number() -> u32 {
    BUILT_NUMBER
}

/// The version of the C ABI this library implements, `(major << 16) | minor` (the
/// encoding of the header's `RM_ABI_VERSION`). A program compiled against a header can use
/// the library it loaded when the majors are equal and the library's minor is at least the
/// header's:
///
/// ```c
/// uint32_t abi = rm_abi_version();
/// if ((abi >> 16) != RM_ABI_VERSION_MAJOR || (abi & 0xffff) < RM_ABI_VERSION_MINOR)
///         return -1; // built for another ABI
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn rm_abi_version() -> u32 {
    RM_ABI_VERSION
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn rm_version_is_cargo_version() {
        // SAFETY: rm_version returns a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(rm_version()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(rm_version(), rm_version(), "the same static string every time");
    }

    #[test]
    fn rm_version_number_matches_string_and_defines() {
        let text = env!("CARGO_PKG_VERSION");
        let core = text.split(['-', '+']).next().unwrap();
        let parts: Vec<u32> = core.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(rm_version_number(), (parts[0] << 16) | (parts[1] << 8) | parts[2]);
        assert_eq!(rm_version_number(), RM_VERSION_NUMBER);
        assert_eq!(RM_VERSION_NUMBER, (RM_VERSION_MAJOR << 16) | (RM_VERSION_MINOR << 8) | RM_VERSION_PATCH);
    }

    #[test]
    fn rm_abi_version_is_the_defines() {
        assert_eq!(rm_abi_version(), RM_ABI_VERSION);
        assert_eq!(rm_abi_version() >> 16, RM_ABI_VERSION_MAJOR);
        assert_eq!(rm_abi_version() & 0xffff, RM_ABI_VERSION_MINOR);
    }
}
