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
            let ok = format!(
                "{}: ok ({} connection(s), {} warning(s))\n",
                path.display(),
                config.connections.len(),
                warnings.len()
            );
            if super::emit(&ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
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
