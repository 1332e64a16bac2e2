//! Shared by the gateway's tests.

/// Whether `needle` stands on its own in `text` (not inside a longer word or hex id, where
/// three or four digits occur by chance).
pub fn contains_token(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}
