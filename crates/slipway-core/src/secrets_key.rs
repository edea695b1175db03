//! The secrets key: encrypts values Slipway must be able to read back (env values, provider
//! credentials, SSH private keys, database passwords). Values that only need checking (tokens,
//! passwords) are hashed instead and never pass through here.
//!
//! Sealed format: `0x01 | nonce (24 bytes) | ciphertext with Poly1305 tag`. XChaCha20-Poly1305
//! is used because its 192-bit nonce can be drawn at random for every value without a counter
//! shared between replicas. Every value is sealed with a context string as associated data (for
//! example `env:<site id>:<KEY>`), so a ciphertext copied into another row does not open.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsKeyError {
    #[error("the secrets key must be 32 bytes encoded as base64 (generate one with `slipway key generate`)")]
    BadKeyEncoding,
    #[error("the sealed value is not in a format this version of Slipway knows")]
    UnknownFormat,
    #[error("the sealed value does not open with this key and context (wrong key, or tampered data)")]
    OpenFailed,
}

/// A 256-bit key. Its `Debug` prints nothing of the key.
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
    bytes: [u8; KEY_LEN],
    encoded: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey([redacted])")
    }
}

impl SecretsKey {
    /// A new random key.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        Self::from_bytes(key.as_slice()).expect("a generated key has the right length")
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SecretsKeyError> {
        if bytes.len() != KEY_LEN {
            return Err(SecretsKeyError::BadKeyEncoding);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| SecretsKeyError::BadKeyEncoding)?;
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(bytes);
        Ok(Self { cipher, bytes: key, encoded: STANDARD.encode(bytes) })
    }

    /// Parses the base64 form (padded or not; surrounding white space is ignored).
    pub fn from_base64(text: &str) -> Result<Self, SecretsKeyError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .map_err(|_| SecretsKeyError::BadKeyEncoding)?;
        Self::from_bytes(&bytes)
    }

    /// The base64 form, for writing the key file. Handle with the same care as the key.
    pub fn to_base64(&self) -> &str {
        &self.encoded
    }

    /// A 256-bit key for another purpose (e.g. signing JWTs), derived as HMAC-SHA256(key, label)
    /// so that it is independent of the encryption key and of keys derived for other labels.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&self.bytes).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts a value produced by [`SecretsKey::seal`] with the same context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretsKeyError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretsKeyError::UnknownFormat)?;
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(SecretsKeyError::UnknownFormat);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| SecretsKeyError::OpenFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_bytes() {
        let key = SecretsKey::generate();
        for value in [&b""[..], b"hunter2", b"quote\"dollar$newline\n#hash\0nul\xff"] {
            let sealed = key.seal("env:site:KEY", value);
            assert_eq!(key.open("env:site:KEY", &sealed).unwrap(), value);
        }
    }

    #[test]
    fn same_value_seals_differently_each_time() {
        let key = SecretsKey::generate();
        assert_ne!(key.seal("c", b"v"), key.seal("c", b"v"));
    }

    #[test]
    fn wrong_key_context_or_tampering_fails() {
        let key = SecretsKey::generate();
        let other = SecretsKey::generate();
        let sealed = key.seal("env:a:KEY", b"value");
        assert_eq!(other.open("env:a:KEY", &sealed), Err(SecretsKeyError::OpenFailed));
        assert_eq!(key.open("env:b:KEY", &sealed), Err(SecretsKeyError::OpenFailed));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open("env:a:KEY", &tampered), Err(SecretsKeyError::OpenFailed));
        assert_eq!(key.open("env:a:KEY", &[]), Err(SecretsKeyError::UnknownFormat));
        assert_eq!(key.open("env:a:KEY", &[2; 60]), Err(SecretsKeyError::UnknownFormat));
        assert_eq!(key.open("env:a:KEY", &sealed[..20]), Err(SecretsKeyError::UnknownFormat));
    }

    #[test]
    fn derived_keys_are_stable_and_label_specific() {
        let key = SecretsKey::generate();
        let again = SecretsKey::from_base64(key.to_base64()).unwrap();
        assert_eq!(key.derive("jwt"), again.derive("jwt"));
        assert_ne!(key.derive("jwt"), key.derive("other"));
        assert_ne!(key.derive("jwt"), SecretsKey::generate().derive("jwt"));
    }

    #[test]
    fn base64_form_round_trips_and_rejects_bad_input() {
        let key = SecretsKey::generate();
        let again = SecretsKey::from_base64(&format!("  {}\n", key.to_base64())).unwrap();
        let sealed = key.seal("c", b"v");
        assert_eq!(again.open("c", &sealed).unwrap(), b"v");
        let unpadded = key.to_base64().trim_end_matches('=').to_string();
        assert!(SecretsKey::from_base64(&unpadded).is_ok());
        assert_eq!(SecretsKey::from_base64("short").unwrap_err(), SecretsKeyError::BadKeyEncoding);
        assert_eq!(SecretsKey::from_base64("!!!").unwrap_err(), SecretsKeyError::BadKeyEncoding);
        assert_eq!(format!("{key:?}"), "SecretsKey([redacted])");
    }
}
