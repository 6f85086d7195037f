//! Durations written as strings: "30s", "4h", "1h10m", "500ms", "2d".

use std::time::Duration;

/// Parses a sequence of `<number><unit>` with units ms, s, m, h, d.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration: write e.g. \"30s\", \"4h\" or \"1h10m\"");
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number: write e.g. \"30s\", \"4h\" or \"1h10m\"");
        }
        let value: u64 = rest[..digits].parse().map_err(|_| "number too large")?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err("number without a unit: add one of ms, s, m, h, d (e.g. \"30s\")"),
            _ => return Err("unknown unit: use ms, s, m, h or d (e.g. \"1h10m\")"),
        };
        rest = &rest[unit_len..];
        total = value
            .checked_mul(millis_per_unit)
            .and_then(|v| total.checked_add(v))
            .ok_or("duration too large")?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way it is written in the config ("1h10m", "500ms").
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, secs) in [("30s", 30), ("4h", 14_400), ("1h10m", 4_200), ("2d", 172_800), ("1m30s", 90)] {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_secs(secs), "{text}");
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
        }
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
    }

    #[test]
    fn rejects() {
        assert!(parse_duration("30").unwrap_err().starts_with("number without a unit"));
        assert!(parse_duration("30 s").unwrap_err().starts_with("unknown unit"));
        assert!(parse_duration("h").unwrap_err().starts_with("expected a number"));
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("99999999999999999999s"), Err("number too large"));
        assert_eq!(parse_duration("999999999999999d"), Err("duration too large"));
    }
}
