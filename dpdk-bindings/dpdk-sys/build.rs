//! Generates the DPDK bindings at build time from whatever DPDK `pkg-config libdpdk` finds
//! (Debian 12 ships 22.11), and compiles the C shim for DPDK's `static inline` functions.
//! Libraries come from pkg-config too: no hard-coded library list.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags (-L/-l, and -Wl,--as-needed) straight from pkg-config.
    let lib = match pkg_config::Config::new().probe("libdpdk") {
        Ok(lib) => lib,
        Err(e) => fail(&format!(
            "pkg-config cannot find libdpdk ({e}); install libdpdk-dev (scripts/setup.sh) or set PKG_CONFIG_PATH"
        )),
    };

    // The raw cflags matter beyond include paths: `-include rte_config.h` defines RTE_* feature
    // macros the headers test, and `-march` must match what DPDK was built with or the
    // inline vector code in rte_*.h does not compile.
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| fail(&format!("running pkg-config: {e}")));
    if !out.status.success() {
        fail("pkg-config --cflags libdpdk failed");
    }
    let cflags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // `-include X` is two tokens; keep pairs together for both clang (bindgen) and cc.
    let mut build = cc::Build::new();
    build.file("shim/shim.c").include("shim").opt_level(3).warnings(false);
    let mut iter = cflags.iter();
    while let Some(flag) = iter.next() {
        if flag == "-include" {
            if let Some(hdr) = iter.next() {
                build.flag("-include").flag(hdr);
            }
        } else {
            build.flag(flag);
        }
    }
    build.compile("dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&cflags)
        .clang_args(lib.include_paths.iter().map(|p| format!("-I{}", p.display())))
        .allowlist_function("dpdk_shim_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|mp_wait_lcore|process_type|get_runtime_dir)")
        .allowlist_function("rte_(lcore_count|get_next_lcore|get_main_lcore|socket_id|lcore_to_socket_id|get_tsc_hz|strerror)")
        .allowlist_function("rte_openlog_stream|rte_log_set_global_level|rte_log_get_global_level")
        .allowlist_function("rte_pktmbuf_pool_create|rte_pktmbuf_free_bulk|rte_mempool_(avail_count|in_use_count|free|lookup)")
        .allowlist_function("rte_ring_(create|free|lookup)")
        .allowlist_function("rte_eth_dev_(count_avail|info_get|configure|start|stop|close|socket_id|is_valid_port|get_name_by_port|set_mtu)")
        .allowlist_function("rte_eth_(rx_queue_setup|tx_queue_setup|promiscuous_enable|promiscuous_disable|promiscuous_get|macaddr_get|stats_get|stats_reset|xstats_get|xstats_get_names|find_next_owned_by)")
        .allowlist_type("rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_eth_xstat|rte_eth_xstat_name|rte_ether_addr|rte_eth_rxconf|rte_eth_txconf")
        .allowlist_var("RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RTE_ETH_XSTATS_NAME_SIZE|RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|RING_F_.*|SOCKET_ID_ANY|RTE_ETH_NAME_MAX_LEN")
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_psc_.*")
        .blocklist_type("rte_flow_item_l2tpv2")
        .blocklist_type("rte_flow_item_gtp_psc")
        // rte_mbuf's unions and marker fields differ between LTS releases: Rust code only
        // touches mbufs through shim accessors, so keep the struct opaque.
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .opaque_type("rte_ring")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen over DPDK headers failed: {e}")));

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR not set")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("writing bindings: {e}")));
}

fn fail(msg: &str) -> ! {
    eprintln!("dpdk-sys: {msg}");
    std::process::exit(1);
}
