//! Secret bytes (PSKs, static SA keys): zeroized on drop, never printed.

use std::fmt;

use zeroize::Zeroizing;

/// Key material. `Debug` shows only the length; there is no `Display`, so a secret
/// cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes, for keying (the only way to read them).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// Decodes hex key material: optional `0x` prefix, optional `:` or space separators
/// between bytes (`"0x00112233…"`, `"00:11:22:…"`). The returned buffer is zeroized on
/// drop; intermediate copies are too.
pub(crate) fn decode_hex(text: &str) -> Result<Secret, &'static str> {
    let body = text.trim();
    let body = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")).unwrap_or(body);
    let digits: Zeroizing<Vec<u8>> =
        Zeroizing::new(body.bytes().filter(|b| *b != b':' && *b != b' ' && *b != b'_').collect());
    if digits.is_empty() {
        return Err("no hex digits");
    }
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits");
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        let high = hex_value(pair[0]).ok_or("not a hex digit")?;
        let low = hex_value(pair[1]).ok_or("not a hex digit")?;
        out.push(high << 4 | low);
    }
    Ok(Secret::new(out))
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(decode_hex("0x0aff").unwrap().expose(), &[0x0a, 0xff]);
        assert_eq!(decode_hex("0A:fF").unwrap().expose(), &[0x0a, 0xff]);
        assert_eq!(decode_hex(" 00 01 ").unwrap().expose(), &[0, 1]);
        assert_eq!(decode_hex("abc"), Err("odd number of hex digits"));
        assert_eq!(decode_hex("zz"), Err("not a hex digit"));
        assert_eq!(decode_hex("0x"), Err("no hex digits"));
    }

    #[test]
    fn debug_hides_the_bytes() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(<7 bytes redacted>)");
    }
}
