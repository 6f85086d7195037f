//! Every file in tests/configs/ is a broken (or suspicious) config whose expected
//! diagnostics are written at its end, one per line, as
//!     # error: LINE:COL: message
//!     # warning: LINE:COL: message
//! The test loads each file and compares the full list, in order, with what
//! `Config::load` reports, checking the FILE:LINE:COL: prefix of each Display too.
//! A file without expectations fails, so a new file cannot pass by accident.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use controlplane::config::Config;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

fn files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .expect("tests/configs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn setup_env() {
    // One value for every test thread, so setting it races with nothing.
    std::env::set_var("CONFIG_TEST_PSK", "a-test-psk-of-enough-length");
}

/// What the loader says about a file, in the expectation format (without the path),
/// after checking that every Display starts with "PATH:LINE:COL: ".
fn actual(path: &Path) -> Vec<String> {
    let (errors, warnings) = match Config::load(path) {
        Ok((_, warnings)) => (Vec::new(), warnings),
        Err(e) => (e.errors, e.warnings),
    };
    let mut out = Vec::new();
    for e in &errors {
        let prefix = format!("{}:{}:{}: ", path.display(), e.location.line, e.location.column);
        assert_eq!(e.to_string(), format!("{prefix}{}", e.message));
        out.push(format!("error: {}:{}: {}", e.location.line, e.location.column, e.message));
    }
    for w in &warnings {
        let prefix = format!("{}:{}:{}: warning: ", path.display(), w.location.line, w.location.column);
        assert_eq!(w.to_string(), format!("{prefix}{}", w.message));
        out.push(format!("warning: {}:{}: {}", w.location.line, w.location.column, w.message));
    }
    out
}

fn expected(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("readable");
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with("error: ") || l.starts_with("warning: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn broken_configs_report_exactly_the_expected_diagnostics() {
    setup_env();
    let files = files();
    assert!(files.len() >= 15, "tests/configs/ lost files: {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let expected = expected(path);
        assert!(!expected.is_empty(), "{} has no '# error:' or '# warning:' lines", path.display());
        let actual = actual(path);
        if actual != expected {
            failures.push(format!(
                "{}:\n  expected:\n    {}\n  actual:\n    {}",
                path.display(),
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Prints what the loader says about every file, ready to paste (cargo test -- --ignored --nocapture).
#[test]
#[ignore]
fn print_actual_diagnostics() {
    setup_env();
    for path in files() {
        println!("== {}", path.display());
        for line in actual(&path) {
            println!("# {line}");
        }
    }
}

#[test]
fn a_missing_file_names_the_file() {
    let path = config_dir().join("no-such-file.toml");
    let errors = Config::load(&path).expect_err("missing file");
    assert_eq!(errors.errors.len(), 1);
    let text = errors.to_string();
    assert!(text.starts_with(&format!("{}: cannot read the config file: ", path.display())), "{text}");
}

#[test]
fn secrets_never_appear_in_messages() {
    setup_env();
    for path in files() {
        let text = match Config::load(&path) {
            Ok((config, warnings)) => format!("{config:?}{warnings:?}"),
            Err(e) => format!("{e}{e:?}"),
        };
        for secret in ["0123456789abcdef0123", "a-test-psk-of-enough-length", "000102030405060708090a0b0c0d0e0f10111213"] {
            assert!(!text.contains(secret), "{} leaks a secret: {text}", path.display());
        }
    }
}
