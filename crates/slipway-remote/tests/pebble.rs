//! The pebble fixture issues for real: its HTTP-01 validation connects to port 80 of a test
//! host (a network namespace) that our DNS responder names, and a missing challenge file ends
//! the order `invalid` with pebble's reason. Needs root, `pebble`, `openssl`, `curl`, `python3`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Error, Identifier, NewAccount, NewOrder, Order, OrderStatus,
    RetryPolicy,
};
use slipway_remote::acme_testing::{Pebble, PebbleOptions};
use slipway_remote::testing::NetnsHost;

/// A static file server on port 80 of the namespace's address, serving `webroot`; its request
/// log (stderr) goes to `log`. Ended by PID when dropped.
struct WebServer {
    child: Child,
    log: PathBuf,
}

impl WebServer {
    fn start(host: &NetnsHost, webroot: &Path, log: PathBuf) -> WebServer {
        let child = Command::new("ip")
            .args(["netns", "exec", &host.name, "/usr/bin/python3", "-m", "http.server", "80", "--bind"])
            .arg(&host.address)
            .arg("--directory")
            .arg(webroot)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = WebServer { child, log };
        slipway_remote::testing::until(Duration::from_secs(10), "the web server listens", || {
            std::net::TcpStream::connect((host.address.as_str(), 80)).is_ok()
        });
        server
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy::new().initial_delay(Duration::from_millis(100)).backoff(1.5).timeout(Duration::from_secs(30))
}

/// Creates an order for `name`, answers its HTTP-01 challenge (writing the key authorization
/// under `webroot` when `publish`), and waits for the order to leave `pending`.
async fn order_and_validate(
    account: &Account,
    name: &str,
    webroot: &Path,
    publish: bool,
) -> (Order, Result<OrderStatus, Error>) {
    let identifiers = [Identifier::Dns(name.to_string())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.expect("new order");
    assert_eq!(order.state().status, OrderStatus::Pending);
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.expect("authorization");
        assert_eq!(authz.status, AuthorizationStatus::Pending, "no authorization reuse in this fixture");
        let mut challenge = authz.challenge(ChallengeType::Http01).expect("an http-01 challenge");
        if publish {
            let dir = webroot.join(".well-known/acme-challenge");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&challenge.token), challenge.key_authorization().as_str()).unwrap();
        }
        challenge.set_ready().await.expect("challenge ready");
    }
    let status = order.poll_ready(&retry()).await;
    (order, status)
}

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl").args(args).current_dir(dir).output().unwrap()
}

#[tokio::test]
async fn pebble_validates_http01_against_a_test_host_and_issues() {
    // Only ring is compiled for this crate, but another crate of the workspace may bring
    // aws-lc-rs into the same build; then rustls needs the process provider named.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let host = NetnsHost::start(&[]);
    let work = TempDir(std::env::temp_dir().join(format!("slipway-pebble-test-{}", host.name)));
    let webroot = work.0.join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let web = WebServer::start(&host, &webroot, work.0.join("http.log"));

    let gateway: Ipv4Addr = host.gateway.parse().unwrap();
    let address: Ipv4Addr = host.address.parse().unwrap();
    let mut options = PebbleOptions::new(gateway);
    // Short-lived certificates, as renewal tests will want.
    options.certificate_validity = Some(Duration::from_secs(300));
    let pebble = Pebble::start_with(options, &[("tls.example.com", address)]);
    pebble.add_name("missing.example.com", address);
    assert!(pebble.api_ca_pem().contains("BEGIN CERTIFICATE"));

    tokio::time::timeout(Duration::from_secs(120), async {
        let (account, _credentials) = Account::builder_with_root(pebble.api_ca_path())
            .expect("an HTTP client trusting the API CA")
            .create(
                &NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false },
                pebble.directory_url(),
                None,
            )
            .await
            .expect("create an account");

        // Success: pebble fetches the key authorization from the namespace's port 80.
        let (mut order, status) = order_and_validate(&account, "tls.example.com", &webroot, true).await;
        assert_eq!(status.expect("order ready"), OrderStatus::Ready, "{}", pebble.log());
        let requests = web.requests();
        assert!(
            requests.contains(&format!("{} - - ", host.gateway))
                && requests.contains("GET /.well-known/acme-challenge/"),
            "pebble's VA did not fetch from the test host: {requests}"
        );

        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["tls.example.com".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).unwrap();
        order.finalize_csr(csr.der()).await.expect("finalize");
        let chain = order.poll_certificate(&retry()).await.expect("the certificate chain");

        let dir = &work.0;
        std::fs::write(dir.join("chain.pem"), &chain).unwrap();
        let leaf_end = chain.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
        std::fs::write(dir.join("leaf.pem"), &chain[..leaf_end]).unwrap();
        std::fs::write(dir.join("root.pem"), pebble.issuing_root_pem()).unwrap();
        let verify = openssl(&["verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem"], dir);
        assert!(
            verify.status.success(),
            "the chain does not verify to pebble's issuing root: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        let shown = openssl(&["x509", "-in", "leaf.pem", "-noout", "-ext", "subjectAltName", "-dates"], dir);
        let shown = String::from_utf8_lossy(&shown.stdout).to_string();
        assert!(shown.contains("DNS:tls.example.com"), "{shown}");
        // Valid for the 300 s asked for: not past 60 s from now, but gone within 600 s.
        assert!(openssl(&["x509", "-in", "leaf.pem", "-noout", "-checkend", "60"], dir).status.success(), "{shown}");
        assert!(!openssl(&["x509", "-in", "leaf.pem", "-noout", "-checkend", "600"], dir).status.success(), "{shown}");
        eprintln!("issued:\n{shown}");

        // Failure: no challenge file, so pebble's VA gets a 404 and the order ends invalid.
        let (mut order, status) = order_and_validate(&account, "missing.example.com", &webroot, false).await;
        let problem = match status {
            Err(Error::Api(problem)) => problem,
            other => panic!("expected the order's error, got {other:?}\n{}", pebble.log()),
        };
        eprintln!("pebble's error for missing.example.com: {problem}");
        let detail = problem.detail.clone().unwrap_or_default();
        assert!(detail.contains("404"), "{problem}");
        assert_eq!(problem.r#type.as_deref(), Some("urn:ietf:params:acme:error:unauthorized"), "{problem}");
        assert_eq!(order.refresh().await.unwrap().status, OrderStatus::Invalid);
        let mut authorizations = order.authorizations();
        let mut authz = authorizations.next().await.unwrap().unwrap();
        let state = authz.refresh().await.unwrap();
        assert_eq!(state.status, AuthorizationStatus::Invalid);
        let challenge = state.challenges.iter().find(|c| c.r#type == ChallengeType::Http01).unwrap();
        let reason = challenge.error.as_ref().expect("the challenge's error");
        assert!(reason.detail.as_deref().unwrap_or_default().contains("404"), "{reason}");
    })
    .await
    .expect("the test finished within 120 s");
    eprintln!("took {:?}", started.elapsed());
}
