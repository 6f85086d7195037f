//! Generate bindings for the few intel-ipsec-mb items we use and link libIPSec_MB.
//!
//! The library ships no pkg-config file, so the header is looked up in
//! `$IPSEC_MB_INCLUDE_DIR` (default /usr/include). Without the header (or on a
//! non-x86_64 target) the crate builds without the `ipsec_mb` cfg and reports the
//! backend as unavailable instead of failing the build.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ipsec_mb)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_LIB_DIR");

    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        println!("cargo:warning=intel-ipsec-mb is x86_64 only; ipsec-mb AEAD backend disabled");
        return;
    }
    let inc =
        PathBuf::from(env::var("IPSEC_MB_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into()));
    let header = inc.join("intel-ipsec-mb.h");
    println!("cargo:rerun-if-changed={}", header.display());
    if !header.exists() {
        println!(
            "cargo:warning={} not found (install libipsec-mb-dev); ipsec-mb AEAD backend disabled",
            header.display()
        );
        return;
    }

    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_arg(format!("-I{}", inc.display()))
        .clang_arg("-DLINUX")
        .allowlist_type("IMB_MGR")
        .allowlist_type("IMB_JOB")
        .allowlist_type("IMB_ARCH")
        .allowlist_type("gcm_key_data")
        .allowlist_type("gcm_context_data")
        .allowlist_type("IMB_STATUS")
        .allowlist_type("IMB_CIPHER_MODE")
        .allowlist_type("IMB_HASH_ALG")
        .allowlist_type("IMB_CIPHER_DIRECTION")
        .allowlist_type("IMB_CHAIN_ORDER")
        .allowlist_type("IMB_KEY_SIZE_BYTES")
        .allowlist_function("alloc_mb_mgr")
        .allowlist_function("free_mb_mgr")
        .allowlist_function("init_mb_mgr_auto")
        .allowlist_function("init_mb_mgr_sse")
        .allowlist_function("init_mb_mgr_avx")
        .allowlist_function("init_mb_mgr_avx2")
        .allowlist_function("init_mb_mgr_avx512")
        .allowlist_function("imb_get_errno")
        .allowlist_function("imb_get_strerror")
        .allowlist_var("IMB_VERSION_STR")
        .allowlist_var("IMB_MAX_JOBS")
        .derive_debug(false)
        .derive_default(false)
        .layout_tests(false)
        .generate()
        .expect("bindgen over intel-ipsec-mb.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR set by cargo")).join("bindings.rs");
    bindings.write_to_file(&out).expect("write bindings");

    if let Ok(dir) = env::var("IPSEC_MB_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=IPSec_MB");
    println!("cargo:rustc-cfg=ipsec_mb");
}
