//! Links `-lrados` (Debian ships no pkg-config file for it) and, with the
//! `buildtime-bindgen` feature, generates the bindings from the installed header.
//!
//! Without that feature (the default) nothing here reads a header: the crate uses the
//! committed `src/bindings.rs`, so `cargo check` and `cargo doc` work on a machine without
//! Ceph's headers or library. `check-bindings.sh` regenerates the bindings with the feature
//! and fails when they differ from the committed file.
//!
//! Environment:
//! - `LIBRADOS_INCLUDE_DIR`: the directory holding `rados/librados.h` (default `/usr/include`);
//! - `LIBRADOS_HEADER`: the header itself (overrides the directory);
//! - `LIBRADOS_LIB_DIR`: an extra library search directory for `-lrados`;
//! - `DOCS_RS` (set by docs.rs): the committed bindings, nothing linked.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/bindings.rs");
    println!("cargo:rerun-if-env-changed=LIBRADOS_LIB_DIR");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    if env::var_os("DOCS_RS").is_some() {
        // Even with the feature on (`all-features`), docs.rs gets the committed file.
        #[cfg(feature = "buildtime-bindgen")]
        std::fs::copy("src/bindings.rs", format!("{}/bindings.rs", env::var("OUT_DIR").unwrap()))
            .expect("copying src/bindings.rs to OUT_DIR");
        return;
    }
    if let Ok(dir) = env::var("LIBRADOS_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=rados");
    #[cfg(feature = "buildtime-bindgen")]
    generate();
}

/// Writes `$OUT_DIR/bindings.rs` from the installed header (lib.rs includes it instead of
/// the committed file when the feature is on).
#[cfg(feature = "buildtime-bindgen")]
fn generate() {
    use std::path::PathBuf;

    println!("cargo:rerun-if-env-changed=LIBRADOS_HEADER");
    println!("cargo:rerun-if-env-changed=LIBRADOS_INCLUDE_DIR");
    let header = env::var("LIBRADOS_HEADER").unwrap_or_else(|_| {
        let dir = env::var("LIBRADOS_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into());
        format!("{dir}/rados/librados.h")
    });
    if !std::path::Path::new(&header).exists() {
        panic!(
            "{header} not found: install librados-dev (apt-get install librados-dev), set \
             LIBRADOS_INCLUDE_DIR or LIBRADOS_HEADER, or build without the buildtime-bindgen \
             feature (the committed bindings need no header)"
        );
    }
    println!("cargo:rerun-if-changed={header}");
    let bindings = bindgen::Builder::default()
        .header(header)
        .allowlist_function("rados_.*")
        .allowlist_type("rados_.*")
        .allowlist_var("LIBRADOS_.*")
        .allowlist_var("CEPH_OSD_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .rust_edition(bindgen::RustEdition::Edition2024)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on librados.h");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings");
}
