//! Describing certificates and checking a custom certificate upload.
//!
//! [`check_upload`] runs every check that still makes sense after an earlier one failed, so a
//! user sees all that is wrong with an upload at once; a check that needs a field that did not
//! parse is skipped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::SectionKind;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::SigningKey;
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::der::asn1::{BmpString, Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::oid::db::{rfc4519, rfc5280};
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::{Certificate, time::Time};

use crate::pem;

/// The most a field of an upload may hold. A certificate is 1–3 KiB of PEM; a chain a few of
/// those.
const FIELD_LIMIT: usize = 64 * 1024;

/// What Slipway records of a certificate (its leaf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// CN, O and OU attributes of the subject, in that order, comma separated, e.g.
    /// `"CN=shop.example.com"`; empty if it has none.
    pub subject: String,
    /// The issuer, in the format of `subject`, e.g. `"CN=Pebble Intermediate CA 1b2c3d, O=Pebble"`.
    pub issuer: String,
    /// DNS names of the subjectAltName extension, lowercased, in order; without that extension,
    /// the subject CN if it looks like a host name.
    pub names: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the DER, uppercase hex with colons, as `openssl x509 -noout -fingerprint
    /// -sha256` prints it after the `=`.
    pub fingerprint: String,
}

/// Describes the first certificate of a PEM text (other blocks are skipped).
pub fn describe_pem(pem: &str) -> Result<CertificateInfo, String> {
    describe_der(&leaf_der(pem)?)
}

/// The DER of the first certificate of a PEM text (the leaf of a full chain).
pub fn leaf_der(pem: &str) -> Result<Vec<u8>, String> {
    let blocks = pem::blocks(pem).map_err(|malformed| malformed.describe("The PEM text"))?;
    let block =
        blocks.iter().find(|block| block.label == "CERTIFICATE").ok_or("The PEM text holds no CERTIFICATE block.")?;
    let (_, der) = block.decode().ok_or("The certificate's base64 text is damaged.")?;
    Ok(der)
}

/// Describes a DER-encoded X.509 certificate.
pub fn describe_der(der: &[u8]) -> Result<CertificateInfo, String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("The certificate is not valid X.509 DER ({e})."))?;
    describe(&cert, der)
}

/// An upload that passed every check of [`check_upload`].
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedCertificate {
    pub info: CertificateInfo,
    /// Leaf then the chain, normalised PEM (each block re-encoded, "\n" line ends, trailing
    /// newline): what nginx's `ssl_certificate` gets.
    pub full_chain_pem: String,
    /// The private key, normalised PEM, of the type it was given as: PKCS#8 `PRIVATE KEY`,
    /// PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`.
    pub private_key_pem: String,
}

impl fmt::Debug for CheckedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCertificate")
            .field("info", &self.info)
            .field("full_chain_pem", &self.full_chain_pem)
            .field("private_key_pem", &"[redacted]")
            .finish()
    }
}

/// Checks a custom certificate upload: the certificate (the leaf), its chain (intermediates,
/// optionally ending with the root), its private key, and the host names it must cover.
///
/// Returns every problem found as `(field, message)`, where field is `"certificate"`, `"chain"`,
/// `"private_key"` or `"domains"` and the message is a sentence telling the user what to fix.
///
/// `domains` are validated, lowercase host names; `now` is the time the certificate must be
/// valid at.
pub fn check_upload(
    certificate_pem: &str,
    chain_pem: &str,
    private_key_pem: &str,
    domains: &[String],
    now: DateTime<Utc>,
) -> Result<CheckedCertificate, Vec<(&'static str, String)>> {
    let mut problems = Problems::default();
    let leaf = read_leaf(certificate_pem, &mut problems);
    let chain = read_chain(chain_pem, &mut problems);
    let key = read_key(private_key_pem, &mut problems);

    if let (Some(leaf), Some(key)) = (&leaf, &key) {
        check_key_matches(leaf, key, &mut problems);
    }
    if let Some(leaf) = &leaf {
        check_validity(leaf, now, &mut problems);
        check_names(leaf, domains, &mut problems);
        if let Some(chain) = &chain {
            check_chain(leaf, chain, now, &mut problems);
        }
    }

    match (leaf, chain, key) {
        (Some(leaf), Some(chain), Some(key)) if problems.0.is_empty() => {
            let mut full_chain_pem = pem::encode("CERTIFICATE", &leaf.der);
            for cert in &chain {
                full_chain_pem.push_str(&pem::encode("CERTIFICATE", &cert.der));
            }
            Ok(CheckedCertificate {
                info: leaf.info,
                full_chain_pem,
                private_key_pem: pem::encode(key.label, key.der.secret_der()),
            })
        }
        _ => Err(problems.0),
    }
}

#[derive(Default)]
struct Problems(Vec<(&'static str, String)>);

impl Problems {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }
}

/// A certificate that parsed as X.509.
struct Parsed {
    der: CertificateDer<'static>,
    cert: Certificate,
}

/// The leaf, which also parsed for webpki and could be described.
struct Leaf {
    parsed: Parsed,
    info: CertificateInfo,
    /// Whether the certificate has a subjectAltName extension (names are matched against it only).
    has_san: bool,
}

impl std::ops::Deref for Leaf {
    type Target = Parsed;
    fn deref(&self) -> &Parsed {
        &self.parsed
    }
}

impl Leaf {
    fn end_entity(&self) -> Option<EndEntityCert<'_>> {
        EndEntityCert::try_from(&self.der).ok()
    }
}

struct Key {
    der: PrivateKeyDer<'static>,
    label: &'static str,
    signing: Arc<dyn SigningKey>,
}

fn read_leaf(text: &str, problems: &mut Problems) -> Option<Leaf> {
    const FIELD: &str = "certificate";
    if text.len() > FIELD_LIMIT {
        problems.add(FIELD, "The certificate is larger than 64 KiB; paste only the PEM text of the certificate.");
        return None;
    }
    if text.trim().is_empty() {
        problems.add(FIELD, "Paste the certificate: the PEM text that starts with -----BEGIN CERTIFICATE-----.");
        return None;
    }
    let blocks = pem::blocks(text).map_err(|m| problems.add(FIELD, m.describe("The certificate"))).ok()?;
    let mut wrong = false;
    for block in blocks.iter().filter(|block| block.label != "CERTIFICATE") {
        wrong = true;
        problems.add(FIELD, wrong_block("The certificate holds", "certificate", &block.label));
    }
    let certs: Vec<&pem::Block> = blocks.iter().filter(|block| block.label == "CERTIFICATE").collect();
    match certs.len() {
        0 if !wrong => {
            problems.add(
                FIELD,
                "The certificate is not PEM text: paste the block that starts with -----BEGIN CERTIFICATE-----.",
            );
            return None;
        }
        0 | 1 => {}
        n => {
            problems.add(
                FIELD,
                format!(
                    "The certificate holds {n} certificates; keep only the certificate issued for your domains \
                     here and put the intermediate certificates in chain."
                ),
            );
            return None;
        }
    }
    if wrong {
        return None;
    }
    let parsed = parse_block(certs[0])
        .map_err(|damage| {
            problems.add(
                FIELD,
                match damage {
                    Damage::Base64 => "The certificate's base64 text is damaged; paste it again exactly as issued.",
                    Damage::X509 => {
                        "The certificate is not a valid X.509 certificate; paste it exactly as your certificate \
                         authority issued it."
                    }
                },
            )
        })
        .ok()?;
    let info = describe(&parsed.cert, &parsed.der).map_err(|message| problems.add(FIELD, message)).ok()?;
    if let Err(error) = EndEntityCert::try_from(&parsed.der) {
        problems.add(FIELD, unusable_leaf(&error));
        return None;
    }
    let has_san = matches!(parsed.cert.tbs_certificate.get::<SubjectAltName>(), Ok(Some(_)));
    Some(Leaf { parsed, info, has_san })
}

fn read_chain(text: &str, problems: &mut Problems) -> Option<Vec<Parsed>> {
    const FIELD: &str = "chain";
    if text.len() > FIELD_LIMIT {
        problems.add(FIELD, "The chain is larger than 64 KiB; paste only the intermediate certificates.");
        return None;
    }
    if text.trim().is_empty() {
        return Some(Vec::new());
    }
    let blocks = pem::blocks(text).map_err(|m| problems.add(FIELD, m.describe("The chain"))).ok()?;
    if blocks.is_empty() {
        problems.add(
            FIELD,
            "The chain is not PEM text: paste the intermediate certificates, each starting with \
             -----BEGIN CERTIFICATE-----.",
        );
        return None;
    }
    let mut certs = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let position = index + 1;
        if block.label != "CERTIFICATE" {
            problems.add(FIELD, wrong_block(&format!("Block {position} of the chain is"), "chain", &block.label));
            continue;
        }
        match parse_block(block) {
            Ok(parsed) => certs.push(parsed),
            Err(Damage::Base64) => problems.add(
                FIELD,
                format!("Certificate {position} in chain has damaged base64 text; paste it again exactly as issued."),
            ),
            Err(Damage::X509) => problems.add(
                FIELD,
                format!(
                    "Certificate {position} in chain is not a valid X.509 certificate; paste it exactly as your \
                     certificate authority sent it."
                ),
            ),
        }
    }
    (certs.len() == blocks.len()).then_some(certs)
}

fn read_key(text: &str, problems: &mut Problems) -> Option<Key> {
    const FIELD: &str = "private_key";
    const ENCRYPTED: &str = "The private key is encrypted with a passphrase; remove the passphrase \
                             (openssl pkey -in key.pem -out plain.pem) and paste the unencrypted key.";
    if text.len() > FIELD_LIMIT {
        problems.add(FIELD, "The private key is larger than 64 KiB; paste only the PEM text of the key.");
        return None;
    }
    if text.trim().is_empty() {
        problems.add(FIELD, "Paste the private key: the PEM text that starts with -----BEGIN PRIVATE KEY-----.");
        return None;
    }
    let blocks = pem::blocks(text).map_err(|m| problems.add(FIELD, m.describe("The private key"))).ok()?;
    let mut keys = Vec::new();
    let mut wrong = false;
    for block in &blocks {
        match block.label.as_str() {
            _ if block.encrypted => {
                wrong = true;
                problems.add(FIELD, ENCRYPTED);
            }
            "ENCRYPTED PRIVATE KEY" => {
                wrong = true;
                problems.add(FIELD, ENCRYPTED);
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => keys.push(block),
            // `openssl ecparam -genkey` writes the curve before the key.
            "EC PARAMETERS" => {}
            "CERTIFICATE" => {
                wrong = true;
                problems.add(
                    FIELD,
                    "The private key holds a certificate; put certificates in certificate and chain, and only \
                     the private key here.",
                );
            }
            label => {
                wrong = true;
                problems.add(
                    FIELD,
                    format!(
                        "The private key holds a {label} block; paste a PEM private key (PRIVATE KEY, RSA PRIVATE \
                         KEY or EC PRIVATE KEY)."
                    ),
                );
            }
        }
    }
    if wrong {
        return None;
    }
    let block = match keys.as_slice() {
        [] => {
            problems.add(
                FIELD,
                "The private key is not PEM text: paste the block that starts with -----BEGIN PRIVATE KEY-----.",
            );
            return None;
        }
        [block] => *block,
        many => {
            problems.add(
                FIELD,
                format!("The private key holds {} keys; paste only the key of this certificate.", many.len()),
            );
            return None;
        }
    };
    let Some((kind, der)) = block.decode() else {
        problems
            .add(FIELD, "The private key's base64 text is damaged; paste it again exactly as it is in the key file.");
        return None;
    };
    let (der, label) = match kind {
        SectionKind::PrivateKey => (PrivateKeyDer::Pkcs8(der.into()), "PRIVATE KEY"),
        SectionKind::RsaPrivateKey => (PrivateKeyDer::Pkcs1(der.into()), "RSA PRIVATE KEY"),
        SectionKind::EcPrivateKey => (PrivateKeyDer::Sec1(der.into()), "EC PRIVATE KEY"),
        _ => return None,
    };
    match any_supported_type(&der) {
        Ok(signing) => Some(Key { der, label, signing }),
        Err(_) => {
            problems.add(
                FIELD,
                "The private key could not be read: it must be an RSA key of 2048 to 4096 bits, an ECDSA P-256 or \
                 P-384 key, or an Ed25519 key.",
            );
            None
        }
    }
}

/// What `field_name` should hold instead of a block of `label`; `what` is the start of the
/// sentence, e.g. "The certificate holds".
fn wrong_block(what: &str, field_name: &str, label: &str) -> String {
    if label.contains("PRIVATE KEY") {
        format!("{what} a private key; paste it into private_key, and only certificates into {field_name}.")
    } else {
        format!("{what} a {label} block; {field_name} takes only CERTIFICATE blocks.")
    }
}

enum Damage {
    Base64,
    X509,
}

fn parse_block(block: &pem::Block) -> Result<Parsed, Damage> {
    let (_, der) = block.decode().ok_or(Damage::Base64)?;
    let cert = Certificate::from_der(&der).map_err(|_| Damage::X509)?;
    Ok(Parsed { der: CertificateDer::from(der), cert })
}

fn check_key_matches(leaf: &Leaf, key: &Key, problems: &mut Problems) {
    let cert_spki = leaf.cert.tbs_certificate.subject_public_key_info.to_der().ok();
    let key_spki = key.signing.public_key();
    let matches = match (&cert_spki, &key_spki) {
        (Some(cert), Some(key)) => cert.as_slice() == key.as_ref(),
        _ => false,
    };
    if !matches {
        problems.add(
            "private_key",
            "The private key does not match the certificate; paste the key the certificate was issued for.",
        );
    }
}

fn check_validity(leaf: &Leaf, now: DateTime<Utc>, problems: &mut Problems) {
    if now > leaf.info.not_after {
        problems.add(
            "certificate",
            format!("The certificate expired on {}; upload a renewed certificate.", format_time(leaf.info.not_after)),
        );
    }
    if now < leaf.info.not_before {
        problems.add(
            "certificate",
            format!(
                "The certificate is not valid until {}; upload it from then on, or use one that is valid now.",
                format_time(leaf.info.not_before)
            ),
        );
    }
}

fn check_names(leaf: &Leaf, domains: &[String], problems: &mut Problems) {
    let Some(end_entity) = leaf.end_entity() else { return };
    for domain in domains {
        let Ok(name) = ServerName::try_from(domain.as_str()) else {
            problems.add("domains", format!("{domain} is not a valid host name."));
            continue;
        };
        if end_entity.verify_is_valid_for_subject_name(&name).is_ok() {
            continue;
        }
        let message = if !leaf.has_san {
            format!(
                "The certificate does not cover {domain}: it has no subjectAltName extension, and browsers match \
                 names only against that; reissue it with {domain} as a DNS name."
            )
        } else if leaf.info.names.is_empty() {
            format!("The certificate does not cover {domain} (it covers no host names).")
        } else {
            format!("The certificate does not cover {domain} (it covers {}).", leaf.info.names.join(", "))
        };
        problems.add("domains", message);
    }
}

fn check_chain(leaf: &Leaf, chain: &[Parsed], now: DateTime<Utc>, problems: &mut Problems) {
    let Some(end_entity) = leaf.end_entity() else { return };
    // The leaf's own dates are reported by `check_validity`; verify the links at a time the leaf
    // is valid so that an expired leaf does not hide a broken chain.
    let at = unix_time(now.max(leaf.info.not_before).min(leaf.info.not_after));
    let verify = |anchor: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]| {
        let anchor = webpki::anchor_from_trusted_cert(anchor)?;
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                intermediates,
                at,
                KeyUsage::server_auth(),
                None,
                None,
            )
            .map(|_| ())
    };

    let Some((last, intermediates)) = chain.split_last() else {
        let self_issued = leaf.cert.tbs_certificate.issuer == leaf.cert.tbs_certificate.subject;
        let result = if self_issued { verify(&leaf.der, &[]) } else { Err(webpki::Error::UnknownIssuer) };
        match result {
            Ok(()) => {}
            // A self-signed certificate made with `openssl req -x509` is marked as a CA.
            Err(webpki::Error::CaUsedAsEndEntity) if signed_by_own_key(leaf, &end_entity) => {}
            Err(
                webpki::Error::UnknownIssuer
                | webpki::Error::InvalidSignatureForPublicKey
                | webpki::Error::CaUsedAsEndEntity,
            ) => problems.add(
                "chain",
                format!(
                    "The certificate is issued by {}; add the intermediate certificate(s) to chain.",
                    issuer_of(leaf)
                ),
            ),
            Err(error) => {
                let (field, message) = verification_problem(&error, leaf);
                problems.add(field, message);
            }
        }
        return;
    };

    if let Some(index) = chain.iter().position(|cert| cert.der == leaf.der) {
        problems.add(
            "chain",
            format!(
                "Certificate {} in chain is the certificate itself; chain takes only the intermediate certificates \
                 that follow it.",
                index + 1
            ),
        );
        return;
    }
    let intermediates: Vec<CertificateDer<'_>> = intermediates.iter().map(|cert| cert.der.clone()).collect();
    if let Err(error) = verify(&last.der, &intermediates) {
        let (field, message) = verification_problem(&error, leaf);
        problems.add(field, message);
    }
}

/// A human sentence for a webpki verification failure, and the field it belongs to.
fn verification_problem(error: &webpki::Error, leaf: &Leaf) -> (&'static str, String) {
    use webpki::Error as E;
    let sentence = match error {
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => {
            return (
                "chain",
                format!(
                    "The signatures do not link the chain to the certificate. The certificate is issued by {}; \
                     chain must hold that issuer's certificate first, then the certificates above it, as your \
                     certificate authority sent them.",
                    issuer_of(leaf)
                ),
            );
        }
        E::CertExpired { not_after, .. } => {
            return (
                "chain",
                format!(
                    "A certificate in chain expired on {}; get the current intermediate certificates from your \
                     certificate authority.",
                    format_unix(*not_after)
                ),
            );
        }
        E::CertNotValidYet { not_before, .. } => {
            return ("chain", format!("A certificate in chain is not valid until {}.", format_unix(*not_before)));
        }
        E::RequiredEkuNotFoundContext(_) if lacks_server_auth(leaf) => {
            return (
                "certificate",
                "The certificate is not valid for server authentication: its extended key usage does not include \
                 TLS web server authentication. Use a certificate issued for a TLS server."
                    .to_owned(),
            );
        }
        E::RequiredEkuNotFoundContext(_) => {
            "A certificate in chain is not allowed to issue certificates for TLS servers (its extended key usage \
             does not include server authentication)."
        }
        E::CaUsedAsEndEntity => {
            return (
                "certificate",
                "The certificate is a CA certificate, not a server certificate; put the certificate issued for your \
                 domains here, and the CA certificates in chain."
                    .to_owned(),
            );
        }
        E::EndEntityUsedAsCa => {
            "A certificate in chain is not a CA certificate, so it cannot have issued the certificate; chain takes \
             only intermediate and root certificates."
        }
        E::UnsupportedSignatureAlgorithmContext(_) | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "A certificate in the chain is signed with an algorithm that is not accepted (such as SHA-1, or an RSA \
             key under 2048 bits); get certificates signed with SHA-256 or better from your certificate authority."
        }
        E::NameConstraintViolation => {
            "A CA in chain is not allowed to issue certificates for the certificate's names (its name constraints \
             exclude them)."
        }
        E::PathLenConstraintViolated => {
            "The chain is longer than one of its CA certificates allows (its path length constraint)."
        }
        E::MaximumPathDepthExceeded | E::MaximumSignatureChecksExceeded | E::MaximumPathBuildCallsExceeded => {
            "The chain is too long to verify; keep only the intermediate certificates your certificate authority \
             sent."
        }
        E::CertDistrusted => {
            "A certificate in the chain is distrusted by browsers; get a certificate from another certificate \
             authority."
        }
        E::UnsupportedCertVersion => "A certificate in chain is not an X.509 version 3 certificate.",
        E::UnsupportedCriticalExtension => {
            "A certificate in the chain has a critical extension that cannot be checked, so browsers would reject \
             it."
        }
        _ => {
            "A certificate in the chain is malformed, so the chain cannot be verified; paste the certificates \
             exactly as your certificate authority sent them."
        }
    };
    ("chain", sentence.to_owned())
}

/// Why webpki cannot use a leaf that parsed as X.509.
fn unusable_leaf(error: &webpki::Error) -> &'static str {
    match error {
        webpki::Error::UnsupportedCertVersion => {
            "The certificate is not an X.509 version 3 certificate, which browsers require; get it reissued."
        }
        webpki::Error::UnsupportedCriticalExtension => {
            "The certificate has a critical extension that cannot be checked, so browsers would reject it."
        }
        _ => "The certificate is malformed in a way browsers reject; get it reissued.",
    }
}

/// Whether the leaf has an extended key usage extension without server authentication.
fn lacks_server_auth(leaf: &Leaf) -> bool {
    match leaf.cert.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(Some((_, usage))) => !usage.0.contains(&rfc5280::ID_KP_SERVER_AUTH),
        _ => false,
    }
}

/// Whether the leaf's signature verifies with its own public key (a self-signed certificate).
fn signed_by_own_key(leaf: &Leaf, end_entity: &EndEntityCert<'_>) -> bool {
    let cert = &leaf.cert;
    let (Ok(tbs), Some(signature), Ok(mut algorithm)) =
        (cert.tbs_certificate.to_der(), cert.signature.as_bytes(), cert.signature_algorithm.oid.to_der())
    else {
        return false;
    };
    // webpki names algorithms by the contents of the AlgorithmIdentifier SEQUENCE.
    if let Some(parameters) = &cert.signature_algorithm.parameters {
        match parameters.to_der() {
            Ok(parameters) => algorithm.extend(parameters),
            Err(_) => return false,
        }
    }
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .filter(|candidate| candidate.signature_alg_id().as_ref() == algorithm.as_slice())
        .any(|candidate| end_entity.verify_signature(*candidate, &tbs, signature).is_ok())
}

fn issuer_of(leaf: &Leaf) -> String {
    if leaf.info.issuer.is_empty() { "an unnamed issuer".to_owned() } else { leaf.info.issuer.clone() }
}

fn describe(cert: &Certificate, der: &[u8]) -> Result<CertificateInfo, String> {
    let tbs = &cert.tbs_certificate;
    let names = match tbs.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(dns) => Some(dns.as_str().to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => attribute_values(&tbs.subject, rfc4519::CN)
            .into_iter()
            .map(|cn| cn.to_ascii_lowercase())
            .filter(|cn| looks_like_host_name(cn))
            .take(1)
            .collect(),
        Err(_) => return Err("The certificate's subjectAltName extension is malformed.".to_owned()),
    };
    Ok(CertificateInfo {
        subject: name_string(&tbs.subject),
        issuer: name_string(&tbs.issuer),
        names,
        not_before: to_chrono(tbs.validity.not_before)?,
        not_after: to_chrono(tbs.validity.not_after)?,
        fingerprint: fingerprint(der),
    })
}

/// CN, O and OU of a name, in that order: `"CN=x, O=y, OU=z"`.
fn name_string(name: &Name) -> String {
    [("CN", rfc4519::CN), ("O", rfc4519::O), ("OU", rfc4519::OU)]
        .into_iter()
        .flat_map(|(key, oid)| attribute_values(name, oid).into_iter().map(move |value| format!("{key}={value}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn attribute_values(name: &Name, oid: x509_cert::der::oid::ObjectIdentifier) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|attribute| attribute.oid == oid)
        .map(|attribute| {
            let value = &attribute.value;
            let text = match value.tag() {
                Tag::Utf8String => value.decode_as::<Utf8StringRef<'_>>().map(|s| s.as_str().to_owned()),
                Tag::PrintableString => value.decode_as::<PrintableStringRef<'_>>().map(|s| s.as_str().to_owned()),
                Tag::Ia5String => value.decode_as::<Ia5StringRef<'_>>().map(|s| s.as_str().to_owned()),
                Tag::TeletexString => value.decode_as::<TeletexStringRef<'_>>().map(|s| s.as_str().to_owned()),
                Tag::BmpString => value.decode_as::<BmpString>().map(|s| s.to_string()),
                _ => Ok(String::from_utf8_lossy(value.value()).into_owned()),
            };
            text.unwrap_or_else(|_| String::from_utf8_lossy(value.value()).into_owned())
        })
        .collect()
}

/// A DNS name, possibly with a leading wildcard label: what a CN may hold in place of a SAN.
fn looks_like_host_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|byte| format!("{byte:02X}")).collect::<Vec<_>>().join(":")
}

fn to_chrono(time: Time) -> Result<DateTime<Utc>, String> {
    i64::try_from(time.to_unix_duration().as_secs())
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .ok_or_else(|| "The certificate's validity dates are out of range.".to_owned())
}

fn unix_time(time: DateTime<Utc>) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0)))
}

fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn format_unix(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .map_or_else(|| "an unknown date".to_owned(), format_time)
}

#[cfg(test)]
mod tests;
