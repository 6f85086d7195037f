//! "Did you mean …?" suggestions for misspelled keys, keywords and algorithm names.

/// Levenshtein edit distance between two short ASCII-ish strings (by chars).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // One row of the classic dynamic-programming table is enough.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo
/// (at most a third of the word's length, and at least 1 and at most 3 edits).
/// Ties go to the earlier candidate, so callers list preferred spellings first.
pub(crate) fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&word, &candidate.to_ascii_lowercase());
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("aes256gcm", "aes256gcm16"), 2);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
    }

    #[test]
    fn suggestions() {
        let keys = ["local_addr", "remote_addr", "local_id"];
        assert_eq!(closest("remote_adr", keys), Some("remote_addr"));
        assert_eq!(closest("REMOTE_ADDR", keys), Some("remote_addr"));
        assert_eq!(closest("banana", keys), None);
    }
}
