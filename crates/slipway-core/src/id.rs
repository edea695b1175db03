//! Resource identifiers: ULID strings, sortable by creation time and safe in URLs.

/// A fresh ULID as a 26-character Crockford base32 string.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// Whether `s` has the form of an id we issued. Used to answer 404 early for garbage ids.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 26 && ulid::Ulid::from_string(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ulids_and_increase() {
        let a = new_id();
        let b = new_id();
        assert!(looks_like_id(&a));
        assert!(a.len() == 26 && b.len() == 26);
        assert!(!looks_like_id("not-an-id"));
        assert!(!looks_like_id("01HZ0000000000000000000000X"));
    }
}
