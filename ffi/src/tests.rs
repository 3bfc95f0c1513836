//! Unit tests of the plumbing: the panic boundary, the error mapping, the last error
//! message. The exports themselves are exercised from C by `tests/ffi_test.c`.

use std::ffi::c_char;

use crate::error::{Failure, last_error, result_of, rm_last_error_message, rm_result, rm_result_name};
use crate::panic::{ffi_boundary, ffi_call, ffi_void};

#[test]
fn a_panic_becomes_rm_result_panic_with_its_message() {
    assert_eq!(ffi_boundary(|| panic!("boom {}", 42)), rm_result::Panic);
    assert_eq!(last_error(), "panic in rados-mail: boom 42");
    assert_eq!(ffi_boundary(|| std::panic::panic_any(7u8)), rm_result::Panic);
    assert_eq!(last_error(), "panic in rados-mail: (no message)");
    ffi_void(|| panic!("in a free"));
    assert_eq!(last_error(), "panic in rados-mail: in a free");
}

#[test]
fn ffi_call_records_failures_and_leaves_the_message_on_success() {
    assert_eq!(ffi_call(|| Err(Failure::null("out"))), rm_result::NullParameter);
    assert_eq!(last_error(), "out is NULL");
    assert_eq!(ffi_call(|| Ok(())), rm_result::Ok);
    assert_eq!(last_error(), "out is NULL", "a success must not clear the message");
    assert_eq!(ffi_boundary(|| rm_result::Ok), rm_result::Ok);
}

#[test]
fn every_error_variant_maps_to_its_code() {
    use rados_mail::Error as E;
    let cases = [
        (E::NotFound("x".into()), rm_result::NotFound),
        (E::AlreadyExists("x".into()), rm_result::AlreadyExists),
        (E::Conflict("x".into()), rm_result::Conflict),
        (E::Corrupted { object: "o".into(), key: None, detail: "d".into() }, rm_result::Corrupted),
        (E::TooLarge("x".into()), rm_result::TooLarge),
        (E::InvalidInput("x".into()), rm_result::InvalidInput),
        (E::Unavailable("x".into()), rm_result::Unavailable),
        (E::Input("x".into()), rm_result::Io),
        (
            E::UnsupportedFormat {
                pool: "mail".into(),
                namespace: ".shared".into(),
                version: 3,
                detail: String::new(),
            },
            rm_result::UnsupportedFormat,
        ),
        (
            E::Store(rados_mail::objstore::Error::XattrNotFound { object: "o".into(), name: "n".into() }),
            rm_result::Store,
        ),
    ];
    for (e, code) in cases {
        assert_eq!(result_of(&e), code, "{e:?}");
        let f = Failure::from(e.clone());
        assert_eq!((f.code, f.message), (code, e.to_string()));
    }
}

#[test]
fn io_errors_carrying_a_store_error_keep_its_code() {
    let inner = rados_mail::Error::Corrupted { object: "mail.x".into(), key: None, detail: "crc".into() };
    assert_eq!(Failure::from(std::io::Error::other(inner)).code, rm_result::Corrupted);
    let plain = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
    assert_eq!(Failure::from(plain), Failure::new(rm_result::Io, "disk full"));
}

/// The numbers are ABI: this test is the list they are checked against. Never edit a line,
/// only append.
#[test]
fn result_codes_keep_their_numbers() {
    let codes = [
        (rm_result::Ok, 0, "RM_RESULT_OK"),
        (rm_result::NotFound, 1, "RM_RESULT_NOT_FOUND"),
        (rm_result::AlreadyExists, 2, "RM_RESULT_ALREADY_EXISTS"),
        (rm_result::Conflict, 3, "RM_RESULT_CONFLICT"),
        (rm_result::Corrupted, 4, "RM_RESULT_CORRUPTED"),
        (rm_result::TooLarge, 5, "RM_RESULT_TOO_LARGE"),
        (rm_result::InvalidInput, 6, "RM_RESULT_INVALID_INPUT"),
        (rm_result::Unavailable, 7, "RM_RESULT_UNAVAILABLE"),
        (rm_result::NullParameter, 8, "RM_RESULT_NULL_PARAMETER"),
        (rm_result::Panic, 9, "RM_RESULT_PANIC"),
        (rm_result::Io, 10, "RM_RESULT_IO"),
        (rm_result::Store, 11, "RM_RESULT_STORE"),
        (rm_result::KeywordLimit, 12, "RM_RESULT_KEYWORD_LIMIT"),
        (rm_result::UnsupportedFormat, 13, "RM_RESULT_UNSUPPORTED_FORMAT"),
    ];
    for (code, number, name) in codes {
        assert_eq!(code as u32, number);
        // SAFETY: rm_result_name returns a static NUL-terminated string.
        let got = unsafe { std::ffi::CStr::from_ptr(rm_result_name(code)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
}

#[test]
fn flag_constants_match_the_rust_api() {
    use crate::mailbox::*;
    use rados_mail::Flags;
    assert_eq!(RM_FLAG_SEEN, Flags::SEEN.bits());
    assert_eq!(RM_FLAG_ANSWERED, Flags::ANSWERED.bits());
    assert_eq!(RM_FLAG_FLAGGED, Flags::FLAGGED.bits());
    assert_eq!(RM_FLAG_DELETED, Flags::DELETED.bits());
    assert_eq!(RM_FLAG_DRAFT, Flags::DRAFT.bits());
    assert_eq!(RM_FLAG_ALL, Flags::from_bits(u32::MAX).bits());
}

#[test]
fn last_error_message_copies_truncates_and_reports_the_length() {
    let _ = ffi_call(|| Err(Failure::invalid("0123456789")));
    let mut buf = [0x55 as c_char; 6];
    let mut len = 0usize;
    // SAFETY: buf is writable for its length; len is writable.
    assert_eq!(unsafe { rm_last_error_message(buf.as_mut_ptr(), buf.len(), &mut len) }, rm_result::Ok);
    assert_eq!(len, 10);
    // SAFETY: the call NUL-terminated the buffer.
    assert_eq!(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(), "01234");
    // SAFETY: cap 0 with a NULL buffer asks for the length only.
    assert_eq!(unsafe { rm_last_error_message(std::ptr::null_mut(), 0, &mut len) }, rm_result::Ok);
    assert_eq!(len, 10);
    // SAFETY: NULL pointers are rejected before use.
    assert_eq!(unsafe { rm_last_error_message(std::ptr::null_mut(), 4, &mut len) }, rm_result::NullParameter);
    // SAFETY: as above.
    assert_eq!(unsafe { rm_last_error_message(buf.as_mut_ptr(), 4, std::ptr::null_mut()) }, rm_result::NullParameter);
    assert_eq!(last_error(), "0123456789", "a misuse of rm_last_error_message must not replace the message");
}

#[test]
fn the_last_error_is_per_thread() {
    let _ = ffi_call(|| Err(Failure::invalid("here")));
    std::thread::spawn(|| {
        assert_eq!(last_error(), "");
        let _ = ffi_call(|| Err(Failure::invalid("there")));
    })
    .join()
    .unwrap();
    assert_eq!(last_error(), "here");
}
