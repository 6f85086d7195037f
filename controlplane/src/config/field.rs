//! Reading one key of a table: required keys, parsed strings, fixed choices, numbers.
//! Each reader reports its own error at the key's span and returns `None` on failure,
//! so validation goes on and every error in the file is reported in one run.

use std::fmt::Display;
use std::ops::Range;

use super::diagnostic::Diagnostics;
use super::raw::S;
use super::spelling;

impl Diagnostics<'_> {
    /// A key that must be present: reports "[[section]] at this line has no 'key': add key = …".
    pub(crate) fn need<'r, T>(
        &mut self,
        value: &'r Option<S<T>>,
        table: &Range<usize>,
        section: &str,
        key: &str,
        example: &str,
    ) -> Option<&'r S<T>> {
        if value.is_none() {
            self.error(table.clone(), format!("{section} has no '{key}': add {key} = {example}"));
        }
        value.as_ref()
    }

    /// A string parsed by `parse`; its error message is reported at the value.
    pub(crate) fn parsed<T, E: Display>(
        &mut self,
        value: &S<String>,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(value.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(value.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    /// One of a fixed set of words, with a did-you-mean for typos.
    pub(crate) fn choice<T: Copy>(&mut self, value: &S<String>, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let text = value.get_ref().as_str();
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let message = match spelling::closest(text, names.iter().copied()) {
            Some(s) => format!("{key} = \"{text}\" is not valid: did you mean \"{s}\"? (choose one of {})", quoted(&names)),
            None => format!("{key} = \"{text}\" is not valid: choose one of {}", quoted(&names)),
        };
        self.error(value.span(), message);
        None
    }

    /// An integer within `range` (TOML integers are i64).
    pub(crate) fn int_in<T: TryFrom<i64>>(
        &mut self,
        value: &S<i64>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        why: &str,
    ) -> Option<T> {
        let v = *value.get_ref();
        if !range.contains(&v) {
            self.error(
                value.span(),
                format!("{key} = {v} is out of range: use {}..={}{why}", range.start(), range.end()),
            );
            return None;
        }
        T::try_from(v).ok()
    }

    /// Names are used on the command line and in the control socket.
    pub(crate) fn name(&mut self, value: &S<String>, key: &str) -> Option<String> {
        let name = value.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.error(
                value.span(),
                format!("{key} = \"{name}\" is not a valid name: use 1-64 letters, digits, '-', '_' or '.'"),
            );
            return None;
        }
        Some(name.clone())
    }
}

/// `"a", "b", "c"` for messages.
pub(crate) fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}
