//! Resource identifiers: ULID strings, sortable by creation time and safe in URLs.

use std::sync::Mutex;

/// One generator per process, so ids made in the same millisecond still sort in creation
/// order ("newest first" lists order by id).
static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

/// A fresh ULID as a 26-character Crockford base32 string.
pub fn new_id() -> String {
    let mut generator = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a random one rather than fail.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}

/// The same id for the same millisecond on every replica (its random part is zero), for work
/// that must be enqueued once per time slot however many processes try.
pub fn id_at(unix_ms: u64) -> String {
    ulid::Ulid::from_parts(unix_ms, 0).to_string()
}

/// As [`id_at`], for one kind of periodic work among several (`purpose` fills the random part),
/// so two kinds due in the same millisecond keep ids of their own.
pub fn id_at_for(unix_ms: u64, purpose: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(purpose.as_bytes());
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    ulid::Ulid::from_parts(unix_ms, u128::from_be_bytes(random)).to_string()
}

/// Whether `s` has the form of an id we issued. Used to answer 404 early for garbage ids.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 26 && ulid::Ulid::from_string(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_ids_are_per_slot_and_per_purpose() {
        assert_eq!(id_at_for(86_400_000, "a"), id_at_for(86_400_000, "a"));
        assert_ne!(id_at_for(86_400_000, "a"), id_at_for(86_400_000, "b"));
        assert_ne!(id_at_for(86_400_000, "a"), id_at(86_400_000));
        assert!(looks_like_id(&id_at_for(86_400_000, "a")));
    }

    #[test]
    fn ids_are_ulids_and_increase() {
        let a = new_id();
        let b = new_id();
        assert!(looks_like_id(&a));
        assert!(a.len() == 26 && b.len() == 26);
        assert!(!looks_like_id("not-an-id"));
        assert!(!looks_like_id("01HZ0000000000000000000000X"));
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "monotonic within the process");
    }
}
