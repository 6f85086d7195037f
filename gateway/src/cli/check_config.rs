//! `ipsecgw check-config FILE`: validates without starting anything. Every
//! error on its own line as `file:line:col: message` (from
//! controlplane::config); exit 1 on any error, 0 with warnings only.

use std::path::Path;
use std::process::ExitCode;

use controlplane::config::Config;

pub fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            println!(
                "{}: ok ({} connection(s), {} warning(s))",
                path.display(),
                config.connections.len(),
                warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for w in &errors.warnings {
                eprintln!("{w}");
            }
            for e in &errors.errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.errors.len());
            ExitCode::FAILURE
        }
    }
}
