//! Generates the librados bindings from the installed header (Debian: `librados-dev`) and
//! links `-lrados` (Debian ships no pkg-config file for it).

use std::env;
use std::path::PathBuf;

fn main() {
    let header = env::var("LIBRADOS_HEADER").unwrap_or_else(|_| "/usr/include/rados/librados.h".into());
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-env-changed=LIBRADOS_HEADER");
    println!("cargo:rerun-if-env-changed=LIBRADOS_LIB_DIR");
    if !std::path::Path::new(&header).exists() {
        panic!("{header} not found: install librados-dev (apt-get install librados-dev) or set LIBRADOS_HEADER");
    }
    if let Ok(dir) = env::var("LIBRADOS_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=rados");

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
