//! Reading and writing the PEM text a user pastes.
//!
//! The reader finds every `-----BEGIN X-----` … `-----END X-----` block, whatever its label, so
//! the caller can refuse a block of the wrong kind instead of skipping it silently. It tolerates
//! what copying and pasting does to PEM (indentation, trailing spaces, CRLF, blank lines, text
//! around the blocks) and leaves the base64 decoding to `rustls-pki-types`, which decodes key
//! material in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::{PemObject, SectionKind};

/// One block of a PEM text, with its body cleaned of whitespace and headers.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) label: String,
    /// RFC 1421 headers were present, e.g. `Proc-Type: 4,ENCRYPTED` of a legacy encrypted key.
    pub(crate) encrypted: bool,
    /// The block re-assembled as a BEGIN line, base64 lines and an END line.
    text: String,
}

/// Why a PEM text could not be split into blocks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// A line starting `-----BEGIN` that is not `-----BEGIN <label>-----`.
    BadBegin,
    /// The block with this label (1-based position) has no `-----END <label>-----` line.
    MissingEnd { position: usize, label: String },
    /// An END line outside any block.
    StrayEnd,
}

impl Malformed {
    /// A sentence for a user, about the PEM text of `what` ("The certificate", "The chain"…).
    pub(crate) fn describe(&self, what: &str) -> String {
        match self {
            Self::BadBegin => format!(
                "{what} has a malformed BEGIN line; each block must start with a line such as \
                 -----BEGIN CERTIFICATE-----."
            ),
            Self::MissingEnd { position, label } => format!(
                "{what} is cut short: block {position} has no -----END {label}----- line; paste the \
                 whole block."
            ),
            Self::StrayEnd => {
                format!("{what} has an END line without its BEGIN line; paste each block whole.")
            }
        }
    }
}

/// Splits `text` into its PEM blocks, in order. Text outside the blocks is ignored.
pub(crate) fn blocks(text: &str) -> Result<Vec<Block>, Malformed> {
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") {
            if let Some(block) = open {
                return Err(Malformed::MissingEnd { position: found.len() + 1, label: block.label });
            }
            let label = line
                .strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
                .filter(|label| is_label(label))
                .ok_or(Malformed::BadBegin)?;
            open = Some(Block { label: label.to_owned(), encrypted: false, text: format!("{line}\n") });
        } else if line.starts_with("-----END") {
            let Some(mut block) = open.take() else {
                return Err(Malformed::StrayEnd);
            };
            if line != format!("-----END {}-----", block.label) {
                return Err(Malformed::MissingEnd { position: found.len() + 1, label: block.label });
            }
            block.text.push_str(line);
            block.text.push('\n');
            found.push(block);
        } else if let Some(block) = open.as_mut() {
            if let Some((name, value)) = line.split_once(':') {
                // An RFC 1421 header such as "Proc-Type: 4,ENCRYPTED" or "DEK-Info: …".
                if name.trim().eq_ignore_ascii_case("Proc-Type") && value.contains("ENCRYPTED") {
                    block.encrypted = true;
                }
            } else if !line.is_empty() {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    match open {
        Some(block) => Err(Malformed::MissingEnd { position: found.len() + 1, label: block.label }),
        None => Ok(found),
    }
}

/// RFC 7468 labels: printable ASCII, no hyphen at either end.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with(['-', ' '])
        && !label.ends_with(['-', ' '])
        && label.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

impl Block {
    /// The DER bytes of a block whose label `rustls-pki-types` knows, or `None` when the base64
    /// text is damaged (or the label is not one it decodes).
    pub(crate) fn decode(&self) -> Option<(SectionKind, Vec<u8>)> {
        <(SectionKind, Vec<u8>)>::from_pem_slice(self.text.as_bytes()).ok()
    }
}

/// `der` as one PEM block: 64-character base64 lines, "\n" line ends, a trailing newline.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    pem.push_str("-----BEGIN ");
    pem.push_str(label);
    pem.push_str("-----\n");
    // Base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END ");
    pem.push_str(label);
    pem.push_str("-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_through_paste_damage() {
        let der: Vec<u8> = (0..=200u8).collect();
        let clean = encode("CERTIFICATE", &der);
        let pasted = format!(
            "subject=CN = x\r\n  {}\r\n\r\nsome trailing words\n",
            clean.trim_end().replace('\n', "  \r\n    ")
        );
        let found = blocks(&pasted).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label, "CERTIFICATE");
        assert_eq!(found[0].decode(), Some((SectionKind::Certificate, der)));
    }

    #[test]
    fn encodes_64_character_lines_with_a_trailing_newline() {
        let pem = encode("PRIVATE KEY", &[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN PRIVATE KEY-----"));
        assert_eq!(lines.last(), Some(&"-----END PRIVATE KEY-----"));
        assert_eq!(lines[1].len(), 64);
        assert!(pem.ends_with("-----\n") && !pem.contains('\r'));
    }

    #[test]
    fn reports_structural_damage() {
        assert_eq!(
            blocks("-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap_err(),
            Malformed::MissingEnd { position: 1, label: "CERTIFICATE".into() }
        );
        assert_eq!(
            blocks("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err(),
            Malformed::MissingEnd { position: 1, label: "CERTIFICATE".into() }
        );
        assert_eq!(blocks("-----BEGIN CERTIFICATE\nAAAA\n").unwrap_err(), Malformed::BadBegin);
        assert_eq!(blocks("AAAA\n-----END CERTIFICATE-----\n").unwrap_err(), Malformed::StrayEnd);
        assert!(blocks("no pem here").unwrap().is_empty());
    }

    #[test]
    fn flags_legacy_encrypted_keys_and_damaged_base64() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let found = blocks(text).unwrap();
        assert!(found[0].encrypted);
        let damaged = blocks("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        assert_eq!(damaged[0].decode(), None);
    }
}
