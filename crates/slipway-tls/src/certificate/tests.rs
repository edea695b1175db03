//! Real certificates, made with rcgen (and the openssl CLI for RSA keys and the formats rcgen
//! does not write), checked with real signatures.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chrono::TimeZone;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};

use super::*;

type Ca = CertifiedIssuer<'static, KeyPair>;

/// Test root -> intermediate, plus a second hierarchy whose names are the same but whose keys
/// are not.
struct Pki {
    root: Ca,
    intermediate: Ca,
    other_root: Ca,
    other_intermediate: Ca,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root = ca("Slipway Test Root", None, (2025, 1, 1), (2035, 1, 1));
        let intermediate = ca("Slipway Test Intermediate", Some(&root), (2025, 1, 1), (2030, 1, 1));
        let other_root = ca("Slipway Test Root", None, (2025, 1, 1), (2035, 1, 1));
        let other_intermediate = ca("Slipway Test Intermediate", Some(&other_root), (2025, 1, 1), (2030, 1, 1));
        Pki { root, intermediate, other_root, other_intermediate }
    })
}

fn ca(name: &str, parent: Option<&Ca>, from: (i32, u8, u8), to: (i32, u8, u8)) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "Slipway Tests");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(to.0, to.1, to.2);
    let key = KeyPair::generate().unwrap();
    match parent {
        Some(parent) => CertifiedIssuer::signed_by(params, key, parent).unwrap(),
        None => CertifiedIssuer::self_signed(params, key).unwrap(),
    }
}

/// The time every check runs at, unless a test says otherwise.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

struct LeafSpec<'a> {
    names: &'a [&'a str],
    from: (i32, u8, u8),
    to: (i32, u8, u8),
    usage: ExtendedKeyUsagePurpose,
}

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        Self {
            names: &["shop.example.com", "www.shop.example.com"],
            from: (2026, 1, 1),
            to: (2027, 1, 1),
            usage: ExtendedKeyUsagePurpose::ServerAuth,
        }
    }
}

fn params(spec: &LeafSpec<'_>) -> CertificateParams {
    let names: Vec<String> = spec.names.iter().map(|name| name.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, spec.names[0]);
    params.extended_key_usages = vec![spec.usage.clone()];
    params.not_before = date_time_ymd(spec.from.0, spec.from.1, spec.from.2);
    params.not_after = date_time_ymd(spec.to.0, spec.to.1, spec.to.2);
    params
}

/// A leaf for `spec`, with `key`, signed by `issuer`: its PEM.
fn leaf_with(spec: &LeafSpec<'_>, key: &KeyPair, issuer: &Issuer<'_, KeyPair>) -> String {
    params(spec).signed_by(key, issuer).unwrap().pem()
}

/// A fresh ECDSA P-256 key and a leaf for `spec` signed by the test intermediate.
fn leaf(spec: &LeafSpec<'_>) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    (leaf_with(spec, &key, &pki().intermediate), key)
}

fn chain() -> String {
    pki().intermediate.pem() + &pki().root.pem()
}

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn shop() -> Vec<String> {
    domains(&["shop.example.com", "www.shop.example.com"])
}

/// Runs the openssl CLI with `input` on stdin; returns stdout.
fn openssl(args: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI is installed");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn rsa_pkcs8_key() -> String {
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "")
}

/// Asserts the upload failed with exactly one problem, on `field`, whose message contains every
/// one of `words`.
#[track_caller]
fn assert_one_problem(result: Result<CheckedCertificate, Vec<(&'static str, String)>>, field: &str, words: &[&str]) {
    let problems = result.expect_err("the upload must be refused");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_problem(&problems, field, words);
}

#[track_caller]
fn assert_problem(problems: &[(&'static str, String)], field: &str, words: &[&str]) {
    assert!(
        problems.iter().any(|(f, message)| *f == field && words.iter().all(|word| message.contains(word))),
        "no {field} problem mentioning {words:?} in {problems:#?}"
    );
}

#[test]
fn a_valid_upload_passes_with_its_full_chain_in_order() {
    let (cert, key) = leaf(&LeafSpec::default());
    let checked = check_upload(&cert, &chain(), &key.serialize_pem(), &shop(), now()).unwrap();

    let expected =
        [cert.as_str(), &pki().intermediate.pem(), &pki().root.pem()].map(|pem| describe_pem(pem).unwrap().fingerprint);
    let sent: Vec<String> = pem::blocks(&checked.full_chain_pem)
        .unwrap()
        .iter()
        .map(|block| fingerprint(&block.decode().unwrap().1))
        .collect();
    assert_eq!(sent, expected);
    assert!(checked.full_chain_pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(!checked.full_chain_pem.contains('\r'));
    assert!(checked.private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(pem::blocks(&checked.private_key_pem).unwrap()[0].decode().unwrap().1, key.serialize_der());

    let info = &checked.info;
    assert_eq!(info.subject, "CN=shop.example.com");
    assert_eq!(info.issuer, "CN=Slipway Test Intermediate, O=Slipway Tests");
    assert_eq!(info.names, ["shop.example.com", "www.shop.example.com"]);
    assert_eq!(info.not_before, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(info.not_after, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    assert!(!format!("{checked:?}").contains("PRIVATE KEY"), "Debug must not show the key");
}

#[test]
fn a_chain_of_only_the_intermediate_passes() {
    let (cert, key) = leaf(&LeafSpec::default());
    let checked = check_upload(&cert, &pki().intermediate.pem(), &key.serialize_pem(), &shop(), now()).unwrap();
    assert_eq!(pem::blocks(&checked.full_chain_pem).unwrap().len(), 2);
}

#[test]
fn pasted_pem_is_normalised() {
    let (cert, key) = leaf(&LeafSpec::default());
    let messy = |pem: &str| format!("Bag Attributes\r\n{}\r\n\r\n", pem.replace('\n', "  \r\n"));
    let checked = check_upload(&messy(&cert), &messy(&chain()), &messy(&key.serialize_pem()), &shop(), now()).unwrap();
    let clean = check_upload(&cert, &chain(), &key.serialize_pem(), &shop(), now()).unwrap();
    assert_eq!(checked, clean);
}

#[test]
fn the_fingerprint_is_what_openssl_prints() {
    let (cert, _) = leaf(&LeafSpec::default());
    let printed = openssl(&["x509", "-noout", "-fingerprint", "-sha256"], &cert);
    let (_, openssl_fingerprint) = printed.trim().split_once('=').unwrap();
    assert_eq!(describe_pem(&cert).unwrap().fingerprint, openssl_fingerprint);
    let der = pem::blocks(&cert).unwrap()[0].decode().unwrap().1;
    assert_eq!(describe_der(&der).unwrap(), describe_pem(&cert).unwrap());
}

#[test]
fn describe_lowercases_names_and_falls_back_to_a_host_name_cn() {
    let key = KeyPair::generate().unwrap();
    let upper = params(&LeafSpec { names: &["Shop.Example.COM", "*.Shop.Example.COM"], ..LeafSpec::default() })
        .self_signed(&key)
        .unwrap();
    let info = describe_pem(&upper.pem()).unwrap();
    assert_eq!(info.names, ["shop.example.com", "*.shop.example.com"]);
    assert_eq!(info.subject, info.issuer);

    let mut no_san = CertificateParams::new(Vec::<String>::new()).unwrap();
    no_san.distinguished_name = DistinguishedName::new();
    no_san.distinguished_name.push(DnType::CommonName, "Legacy.Example.com");
    no_san.distinguished_name.push(DnType::OrganizationName, "Legacy Inc");
    no_san.distinguished_name.push(DnType::OrganizationalUnitName, "Web");
    let info = describe_pem(&no_san.self_signed(&key).unwrap().pem()).unwrap();
    assert_eq!(info.names, ["legacy.example.com"]);
    assert_eq!(info.subject, "CN=Legacy.Example.com, O=Legacy Inc, OU=Web");

    no_san.distinguished_name = DistinguishedName::new();
    no_san.distinguished_name.push(DnType::CommonName, "My Test Certificate");
    assert!(describe_pem(&no_san.self_signed(&key).unwrap().pem()).unwrap().names.is_empty());

    assert!(describe_pem("no certificate here").is_err());
    assert!(describe_der(b"not der").is_err());
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (cert, _) = leaf(&LeafSpec::default());
    let other = KeyPair::generate().unwrap();
    assert_one_problem(
        check_upload(&cert, &chain(), &other.serialize_pem(), &shop(), now()),
        "private_key",
        &["private key does not match the certificate"],
    );
}

#[test]
fn an_expired_certificate_is_refused_naming_the_date() {
    let (cert, key) = leaf(&LeafSpec { from: (2025, 1, 1), to: (2025, 6, 1), ..LeafSpec::default() });
    assert_one_problem(
        check_upload(&cert, &chain(), &key.serialize_pem(), &shop(), now()),
        "certificate",
        &["expired on 2025-06-01"],
    );
}

#[test]
fn a_certificate_not_valid_yet_is_refused_naming_the_date() {
    let (cert, key) = leaf(&LeafSpec { from: (2026, 9, 1), to: (2027, 9, 1), ..LeafSpec::default() });
    assert_one_problem(
        check_upload(&cert, &chain(), &key.serialize_pem(), &shop(), now()),
        "certificate",
        &["not valid until 2026-09-01"],
    );
}

#[test]
fn an_expired_intermediate_is_refused() {
    let old = ca("Old Intermediate", Some(&pki().root), (2025, 1, 1), (2026, 3, 1));
    let key = KeyPair::generate().unwrap();
    let cert = leaf_with(&LeafSpec::default(), &key, &old);
    assert_one_problem(
        check_upload(&cert, &(old.pem() + &pki().root.pem()), &key.serialize_pem(), &shop(), now()),
        "chain",
        &["expired on 2026-03-01"],
    );
}

#[test]
fn an_intermediate_of_another_ca_is_refused() {
    let (cert, key) = leaf(&LeafSpec::default());
    let pki = pki();
    // Same names as the real intermediate, another key: the leaf's signature does not verify.
    let wrong_intermediate = pki.other_intermediate.pem() + &pki.other_root.pem();
    // The right intermediate, ending at a root that did not sign it.
    let wrong_root = pki.intermediate.pem() + &pki.other_root.pem();
    for chain in [wrong_intermediate, wrong_root] {
        assert_one_problem(
            check_upload(&cert, &chain, &key.serialize_pem(), &shop(), now()),
            "chain",
            &["signatures do not link the chain to the certificate", "CN=Slipway Test Intermediate"],
        );
    }
}

#[test]
fn a_missing_intermediate_is_refused_naming_the_issuer() {
    let (cert, key) = leaf(&LeafSpec::default());
    assert_one_problem(
        check_upload(&cert, "", &key.serialize_pem(), &shop(), now()),
        "chain",
        &["issued by CN=Slipway Test Intermediate, O=Slipway Tests", "add the intermediate"],
    );
    assert_one_problem(
        check_upload(&cert, &pki().root.pem(), &key.serialize_pem(), &shop(), now()),
        "chain",
        &["signatures do not link"],
    );
}

#[test]
fn the_certificate_repeated_in_chain_is_refused() {
    let (cert, key) = leaf(&LeafSpec::default());
    assert_one_problem(
        check_upload(&cert, &(cert.clone() + &chain()), &key.serialize_pem(), &shop(), now()),
        "chain",
        &["Certificate 1 in chain is the certificate itself"],
    );
}

#[test]
fn a_self_signed_certificate_needs_no_chain() {
    let key = KeyPair::generate().unwrap();
    let cert = params(&LeafSpec::default()).self_signed(&key).unwrap().pem();
    let checked = check_upload(&cert, "", &key.serialize_pem(), &shop(), now()).unwrap();
    assert_eq!(checked.info.issuer, checked.info.subject);
    assert_eq!(pem::blocks(&checked.full_chain_pem).unwrap().len(), 1);
}

#[test]
fn a_self_signed_openssl_certificate_marked_as_ca_needs_no_chain() {
    let key = rsa_pkcs8_key();
    let cert = openssl(
        &[
            "req",
            "-x509",
            "-key",
            "/dev/stdin",
            "-subj",
            "/CN=self.example.com",
            "-addext",
            "subjectAltName=DNS:self.example.com",
            "-days",
            "30",
        ],
        &key,
    );
    assert!(openssl(&["x509", "-noout", "-text"], &cert).contains("CA:TRUE"));
    let checked = check_upload(&cert, "", &key, &domains(&["self.example.com"]), Utc::now()).unwrap();
    assert_eq!(checked.info.names, ["self.example.com"]);
}

#[test]
fn a_certificate_naming_itself_as_issuer_but_signed_by_another_key_is_refused() {
    let key = KeyPair::generate().unwrap();
    let mut params = params(&LeafSpec::default());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let impostor = Issuer::new(params.clone(), KeyPair::generate().unwrap());
    let cert = params.signed_by(&key, &impostor).unwrap().pem();
    let info = describe_pem(&cert).unwrap();
    assert_eq!(info.issuer, info.subject);
    assert_one_problem(
        check_upload(&cert, "", &key.serialize_pem(), &shop(), now()),
        "chain",
        &["issued by CN=shop.example.com", "add the intermediate"],
    );
}

#[test]
fn a_certificate_without_subject_alt_names_covers_nothing() {
    let key = KeyPair::generate().unwrap();
    let mut params = params(&LeafSpec::default());
    params.subject_alt_names.clear();
    let cert = params.signed_by(&key, &pki().intermediate).unwrap().pem();
    assert_eq!(describe_pem(&cert).unwrap().names, ["shop.example.com"]);
    assert_one_problem(
        check_upload(&cert, &chain(), &key.serialize_pem(), &domains(&["shop.example.com"]), now()),
        "domains",
        &["does not cover shop.example.com", "no subjectAltName extension"],
    );
}

#[test]
fn a_certificate_for_other_names_is_refused_listing_what_it_covers() {
    let (cert, key) = leaf(&LeafSpec { names: &["a.example.com", "b.example.com"], ..LeafSpec::default() });
    let problems =
        check_upload(&cert, &chain(), &key.serialize_pem(), &domains(&["x.example.com", "a.example.com"]), now())
            .unwrap_err();
    assert_eq!(
        problems,
        [("domains", "The certificate does not cover x.example.com (it covers a.example.com, b.example.com).".into())]
    );
}

#[test]
fn a_wildcard_covers_one_label_only() {
    let (cert, key) = leaf(&LeafSpec { names: &["*.example.com"], ..LeafSpec::default() });
    let upload = |names: &[&str]| check_upload(&cert, &chain(), &key.serialize_pem(), &domains(names), now());
    assert_eq!(upload(&["a.example.com", "www.example.com"]).unwrap().info.names, ["*.example.com"]);
    assert_one_problem(upload(&["example.com"]), "domains", &["does not cover example.com", "*.example.com"]);
    assert_one_problem(upload(&["a.b.example.com"]), "domains", &["does not cover a.b.example.com"]);
}

#[test]
fn a_certificate_without_server_auth_is_refused() {
    let (cert, key) = leaf(&LeafSpec { usage: ExtendedKeyUsagePurpose::ClientAuth, ..LeafSpec::default() });
    assert_one_problem(
        check_upload(&cert, &chain(), &key.serialize_pem(), &shop(), now()),
        "certificate",
        &["not valid for server authentication"],
    );
}

#[test]
fn an_encrypted_key_is_refused_with_the_command_that_decrypts_it() {
    let (cert, key) = leaf(&LeafSpec::default());
    let pkcs8 = openssl(&["pkey", "-aes256", "-passout", "pass:secret"], &key.serialize_pem());
    assert!(pkcs8.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let legacy = openssl(&["pkey", "-traditional", "-aes256", "-passout", "pass:secret"], &key.serialize_pem());
    assert!(legacy.contains("Proc-Type: 4,ENCRYPTED"));
    for encrypted in [pkcs8, legacy] {
        assert_one_problem(
            check_upload(&cert, &chain(), &encrypted, &shop(), now()),
            "private_key",
            &["passphrase", "openssl pkey -in key.pem -out plain.pem"],
        );
    }
}

#[test]
fn garbage_and_empty_fields_are_refused() {
    let problems = check_upload("", "", "", &shop(), now()).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_problem(&problems, "certificate", &["Paste the certificate"]);
    assert_problem(&problems, "private_key", &["Paste the private key"]);

    let problems = check_upload("hello", "world", "key?", &shop(), now()).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert_problem(&problems, "certificate", &["not PEM text"]);
    assert_problem(&problems, "chain", &["not PEM text"]);
    assert_problem(&problems, "private_key", &["not PEM text"]);

    let damaged = "-----BEGIN CERTIFICATE-----\nMIIB!!!!\n-----END CERTIFICATE-----\n";
    let not_x509 = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let (cert, key) = leaf(&LeafSpec::default());
    let problems = check_upload(damaged, &(pki().intermediate.pem() + not_x509), &key.serialize_pem(), &shop(), now())
        .unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_problem(&problems, "certificate", &["base64 text is damaged"]);
    assert_problem(&problems, "chain", &["Certificate 2 in chain is not a valid X.509 certificate"]);

    assert_one_problem(
        check_upload(not_x509, &chain(), &key.serialize_pem(), &shop(), now()),
        "certificate",
        &["not a valid X.509 certificate"],
    );
    let cut = &cert[..cert.len() - 30];
    assert_one_problem(
        check_upload(cut, &chain(), &key.serialize_pem(), &shop(), now()),
        "certificate",
        &["no -----END CERTIFICATE----- line"],
    );
    let huge = format!("{cert}{}", "x".repeat(64 * 1024));
    assert_one_problem(check_upload(&huge, &chain(), &key.serialize_pem(), &shop(), now()), "certificate", &["64 KiB"]);
}

#[test]
fn two_certificates_in_certificate_are_refused_pointing_at_chain() {
    let (cert, key) = leaf(&LeafSpec::default());
    assert_one_problem(
        check_upload(&(cert + &pki().intermediate.pem()), "", &key.serialize_pem(), &shop(), now()),
        "certificate",
        &["holds 2 certificates", "intermediate certificates in chain"],
    );
}

#[test]
fn blocks_in_the_wrong_field_are_refused() {
    let (cert, key) = leaf(&LeafSpec::default());
    let key_pem = key.serialize_pem();
    let problems = check_upload(&(cert.clone() + &key_pem), &(chain() + &key_pem), &cert, &shop(), now()).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert_problem(&problems, "certificate", &["The certificate holds a private key", "paste it into private_key"]);
    assert_problem(&problems, "chain", &["Block 3 of the chain is a private key"]);
    assert_problem(&problems, "private_key", &["holds a certificate"]);

    let csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert_one_problem(
        check_upload(&(cert + csr), &chain(), &key_pem, &shop(), now()),
        "certificate",
        &["CERTIFICATE REQUEST block", "only CERTIFICATE blocks"],
    );
    let (cert, key) = leaf(&LeafSpec::default());
    assert_one_problem(
        check_upload(
            &cert,
            &chain(),
            &(key.serialize_pem() + &KeyPair::generate().unwrap().serialize_pem()),
            &shop(),
            now(),
        ),
        "private_key",
        &["holds 2 keys"],
    );
}

#[test]
fn independent_problems_are_reported_together() {
    let (cert, _) = leaf(&LeafSpec { from: (2025, 1, 1), to: (2025, 6, 1), ..LeafSpec::default() });
    let problems =
        check_upload(&cert, "", &KeyPair::generate().unwrap().serialize_pem(), &domains(&["x.example.com"]), now())
            .unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_problem(&problems, "private_key", &["does not match"]);
    assert_problem(&problems, "certificate", &["expired"]);
    assert_problem(&problems, "chain", &["add the intermediate"]);
    assert_problem(&problems, "domains", &["does not cover x.example.com"]);
}

#[test]
fn rsa_keys_in_pkcs8_and_pkcs1_are_accepted() {
    let pkcs8 = rsa_pkcs8_key();
    let key = KeyPair::from_pem(&pkcs8).unwrap();
    let cert = leaf_with(&LeafSpec::default(), &key, &pki().intermediate);
    let pkcs1 = openssl(&["pkey", "-traditional"], &pkcs8);
    for (pem, label) in [(pkcs8, "PRIVATE KEY"), (pkcs1, "RSA PRIVATE KEY")] {
        assert!(pem.starts_with(&format!("-----BEGIN {label}-----")));
        let checked = check_upload(&cert, &chain(), &pem, &shop(), now()).unwrap();
        assert!(checked.private_key_pem.starts_with(&format!("-----BEGIN {label}-----\n")));
        // openssl writes normalised PEM too, so the key comes back as given.
        assert_eq!(checked.private_key_pem, pem);
    }
}

#[test]
fn ecdsa_keys_in_pkcs8_and_sec1_are_accepted() {
    // `openssl ecparam -genkey` writes an EC PARAMETERS block before the SEC1 key.
    let sec1 = openssl(&["ecparam", "-name", "prime256v1", "-genkey"], "");
    assert!(sec1.contains("-----BEGIN EC PARAMETERS-----") && sec1.contains("-----BEGIN EC PRIVATE KEY-----"));
    let pkcs8 = openssl(&["pkey"], &sec1);
    let key = KeyPair::from_pem(&pkcs8).unwrap();
    let cert = leaf_with(&LeafSpec::default(), &key, &pki().intermediate);
    for (pem, label) in [(pkcs8, "PRIVATE KEY"), (sec1, "EC PRIVATE KEY")] {
        let checked = check_upload(&cert, &chain(), &pem, &shop(), now()).unwrap();
        assert!(checked.private_key_pem.starts_with(&format!("-----BEGIN {label}-----\n")));
        assert!(!checked.private_key_pem.contains("EC PARAMETERS"));
    }

    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = leaf_with(&LeafSpec::default(), &p384, &pki().intermediate);
    check_upload(&cert, &chain(), &p384.serialize_pem(), &shop(), now()).unwrap();
}
