//! Errors and warnings that point into the config file (FILE:LINE:COL).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A place in a config file. `line` and `column` are 1-based; 0 means "the whole file"
/// (I/O errors), and Display then prints only the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.path.display())
        } else {
            write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
        }
    }
}

/// One error: what is wrong and what to change, at a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: Location,
    pub message: String,
}

/// Something legal but probably not what was meant (the config still loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.location, self.message)
    }
}

/// Why a config did not load: every error found (never empty), plus the warnings
/// found on the way, so `check-config` can print everything at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns byte offsets into line/column and collects diagnostics.
#[derive(Debug)]
pub(crate) struct Diagnostics<'a> {
    path: &'a Path,
    text: &'a str,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<Warning>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text, errors: Vec::new(), warnings: Vec::new() }
    }

    /// Line and column (1-based, in characters) of a byte offset.
    pub(crate) fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Location { path: self.path.to_path_buf(), line, column }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let location = self.location(span.start);
        self.errors.push(ConfigError { location, message: message.into() });
    }

    pub(crate) fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let location = self.location(span.start);
        self.warnings.push(Warning { location, message: message.into() });
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Errors and warnings, each sorted by position in the file.
    pub(crate) fn into_errors(self) -> ConfigErrors {
        let (errors, warnings) = self.into_sorted();
        ConfigErrors { errors, warnings }
    }

    pub(crate) fn into_sorted(mut self) -> (Vec<ConfigError>, Vec<Warning>) {
        // Stable sorts: several messages at one place keep the order they were found in.
        self.errors.sort_by_key(|e| (e.location.line, e.location.column));
        self.warnings.sort_by_key(|w| (w.location.line, w.location.column));
        (self.errors, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_line_and_column() {
        let text = "a = 1\nbé = 2\n\nc";
        let d = Diagnostics::new(Path::new("f.toml"), text);
        assert_eq!(d.location(0).to_string(), "f.toml:1:1");
        assert_eq!(d.location(4).to_string(), "f.toml:1:5");
        assert_eq!(d.location(6).to_string(), "f.toml:2:1");
        // 'é' is two bytes but one column.
        assert_eq!(d.location(10).to_string(), "f.toml:2:4");
        assert_eq!(d.location(text.len()).to_string(), "f.toml:4:2");
        let whole = Location { path: "f.toml".into(), line: 0, column: 0 };
        assert_eq!(whole.to_string(), "f.toml");
    }
}
