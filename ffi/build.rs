//! Gives the shared library (`librados_mail.so`, the cdylib) an ELF soname, so programs
//! linked against it record a name that changes only when the ABI may break:
//! `librados_mail.so.MAJOR`, or `librados_mail.so.0.MINOR` while the major version is 0
//! (semantic versioning: before 1.0 a minor version may break the ABI). Packages install
//! the file as `librados_mail.so.MAJOR.MINOR.PATCH` with the soname and the `.so` as
//! symlinks (ci/package.sh). The static library is not affected.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets CARGO_PKG_VERSION_MINOR");
    let soname = if major == "0" { format!("librados_mail.so.0.{minor}") } else { format!("librados_mail.so.{major}") };
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
