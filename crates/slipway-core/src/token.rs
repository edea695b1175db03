//! The access-token format: `slp_` + 30 random base62 characters (≈178 bits) + a 6-character
//! base62 CRC32 of those 30. The prefix lets secret scanners recognise a leaked token; the
//! checksum lets them (and us) reject typos and made-up strings without a database lookup.
//! Only the SHA-256 of the whole token is stored.

use sha2::{Digest, Sha256};

use crate::Secret;

pub const TOKEN_PREFIX: &str = "slp_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A plain-text access token. Shown once, at creation or rotation; never stored or logged.
#[derive(Debug, Clone)]
pub struct PlainToken(Secret<String>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("not a Slipway token")]
    NotSlipway,
    #[error("the token's checksum does not match (mistyped or truncated)")]
    BadChecksum,
}

impl PlainToken {
    pub fn generate() -> Self {
        let random = random_base62(RANDOM_LEN);
        let checksum = checksum_of(&random);
        let checksum = std::str::from_utf8(&checksum).expect("base62 is ASCII");
        PlainToken(Secret::new(format!("{TOKEN_PREFIX}{random}{checksum}")))
    }

    /// Checks prefix, length, alphabet and checksum, offline.
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        let body = text.strip_prefix(TOKEN_PREFIX).ok_or(TokenFormatError::NotSlipway)?;
        if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::NotSlipway);
        }
        let (random, checksum) = body.split_at(RANDOM_LEN);
        if checksum_of(random) != checksum.as_bytes() {
            return Err(TokenFormatError::BadChecksum);
        }
        Ok(PlainToken(Secret::new(text.to_string())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The value stored and looked up: hex SHA-256 of the whole token.
    pub fn hash(&self) -> String {
        sha256_hex(self.expose())
    }
}

pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    crate::hex::encode(digest)
}

/// `len` characters drawn uniformly from the base62 alphabet (rejection sampling, no modulo bias).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::getrandom(&mut buf).expect("the operating system's random source works");
        for &b in &buf {
            // 248 = 4 × 62: bytes at or above it would favour the first characters.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// The token's checksum: the CRC-32 of its random part in base62, fixed width. On the stack:
/// every authenticated request checks one.
fn checksum_of(random: &str) -> [u8; CHECKSUM_LEN] {
    base62_fixed(crc32fast::hash(random.as_bytes()))
}

fn base62_fixed(mut n: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_format_and_parse_back() {
        let t = PlainToken::generate();
        assert_eq!(t.expose().len(), TOKEN_LEN);
        assert!(t.expose().starts_with("slp_"));
        assert!(PlainToken::parse(t.expose()).is_ok());
        assert_eq!(t.hash().len(), 64);
        assert_eq!(t.hash(), PlainToken::parse(t.expose()).unwrap().hash());
        assert_ne!(t.expose(), PlainToken::generate().expose());
        assert_eq!(format!("{t:?}"), "PlainToken([redacted])");
    }

    #[test]
    fn typos_fail_the_checksum_offline() {
        let t = PlainToken::generate();
        let mut chars: Vec<char> = t.expose().chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(PlainToken::parse(&typo).unwrap_err(), TokenFormatError::BadChecksum);
        assert_eq!(PlainToken::parse("ghp_abc").unwrap_err(), TokenFormatError::NotSlipway);
        assert_eq!(PlainToken::parse(&t.expose()[..TOKEN_LEN - 1]).unwrap_err(), TokenFormatError::NotSlipway);
        assert_eq!(
            PlainToken::parse(&format!("{}!", &t.expose()[..TOKEN_LEN - 1])).unwrap_err(),
            TokenFormatError::NotSlipway
        );
    }

    #[test]
    fn base62_is_fixed_width_and_covers_u32() {
        assert_eq!(&base62_fixed(0), b"000000");
        assert_eq!(&base62_fixed(61), b"00000z");
        assert_eq!(&base62_fixed(62), b"000010");
        assert_eq!(&base62_fixed(u32::MAX), b"4gfFC3");
        let sample = random_base62(6200);
        assert!(sample.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(sample.len(), 6200);
    }
}
