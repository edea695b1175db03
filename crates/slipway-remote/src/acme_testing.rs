//! A real ACME CA for tests: Debian's `pebble` (Let's Encrypt's ACME test server, package
//! `pebble` 2.4) on an address of our choosing, with a small DNS responder of our own in this
//! process, so that its HTTP-01 validation really connects to port 80 of the address a test
//! name is given (a [`crate::testing::NetnsHost`]'s namespace address, for instance).
//!
//! Pebble's HTTPS listeners use a leaf certificate (CA:FALSE) signed by a test CA made with the
//! `openssl` CLI at start; an ACME client trusts [`Pebble::api_ca_pem`]. Certificates that pebble
//! issues chain to [`Pebble::issuing_root_pem`], which it regenerates on every start. Ended by
//! PID, its files removed, when dropped (its log is printed first if the test is panicking).
//! Pebble itself listens on high ports; needs `pebble`, `openssl` and `curl` installed. The two
//! "TLS handshake error … EOF" lines at the top of its log are the fixture's readiness probes.
//!
//! Short-lived certificates for renewal tests: [`PebbleOptions::certificate_validity`] (pebble's
//! `certificateValidityPeriod` config key, in seconds).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How pebble is started. [`PebbleOptions::new`] gives the deterministic defaults tests want.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// Where pebble's ACME and management listeners bind (free ports are picked). Its TLS
    /// certificate names this address, `127.0.0.1` and `localhost`.
    pub listen: Ipv4Addr,
    /// The port its VA connects to for HTTP-01 (`httpPort` in its config).
    pub http_port: u16,
    /// Lifetime of issued certificates (`certificateValidityPeriod`, whole seconds; notBefore is
    /// the issuing time, notAfter one second short of the period). `None`: pebble's default of
    /// five years.
    pub certificate_validity: Option<Duration>,
    /// `PEBBLE_AUTHZREUSE`: percentage of new orders that reuse a still-valid authorization of
    /// the same account instead of asking for a new challenge (pebble's default is 50).
    pub authz_reuse_percent: u8,
    /// `PEBBLE_WFE_NONCEREJECT`: percentage of good nonces rejected as `badNonce` (pebble's
    /// default is 5; instant-acme retries those up to three times).
    pub nonce_reject_percent: u8,
    /// `PEBBLE_VA_ALWAYS_VALID=1`: every challenge passes without any validation request.
    /// Only for tests that do not care about validation; off by default.
    pub always_valid: bool,
}

impl PebbleOptions {
    /// Real HTTP-01 validation on port 80, no random validation sleeps, no authorization reuse
    /// (every order validates for real), no rejected nonces.
    pub fn new(listen: Ipv4Addr) -> PebbleOptions {
        PebbleOptions {
            listen,
            http_port: 80,
            certificate_validity: None,
            authz_reuse_percent: 0,
            nonce_reject_percent: 0,
            always_valid: false,
        }
    }
}

/// A running pebble and the DNS responder it resolves challenge names with.
#[derive(Debug)]
pub struct Pebble {
    dir: PathBuf,
    child: Option<Child>,
    listen: Ipv4Addr,
    port: u16,
    management_port: u16,
    api_ca_pem: String,
    issuing_root_pem: String,
    dns: DnsResponder,
}

impl Pebble {
    /// Starts pebble on `listen` (free ports), resolving `names` (as A records; every other
    /// name is NXDOMAIN) and validating HTTP-01 on port 80, with [`PebbleOptions::new`].
    pub fn start(listen: Ipv4Addr, names: &[(&str, Ipv4Addr)]) -> Pebble {
        Self::start_with(PebbleOptions::new(listen), names)
    }

    pub fn start_with(options: PebbleOptions, names: &[(&str, Ipv4Addr)]) -> Pebble {
        let dir = std::env::temp_dir().join(format!("slipway-pebble-{}", slipway_core::new_id().to_lowercase()));
        std::fs::create_dir_all(&dir).unwrap();
        let dns = DnsResponder::start(names);
        // From here on, a panic drops `pebble`, which removes the directory and ends what started.
        let mut pebble = Pebble {
            dir: dir.clone(),
            child: None,
            listen: options.listen,
            port: 0,
            management_port: 0,
            api_ca_pem: String::new(),
            issuing_root_pem: String::new(),
            dns,
        };
        make_api_certificates(&dir, options.listen);
        pebble.api_ca_pem = std::fs::read_to_string(dir.join("api-ca.pem")).unwrap();

        // Two distinct free ports, both held until both are known.
        let (port, management_port) = {
            let a = TcpListener::bind((options.listen, 0)).expect("bind on the listen address");
            let b = TcpListener::bind((options.listen, 0)).unwrap();
            (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
        };
        pebble.port = port;
        pebble.management_port = management_port;
        let validity = match options.certificate_validity {
            Some(d) => format!(",\n    \"certificateValidityPeriod\": {}", d.as_secs().max(1)),
            None => String::new(),
        };
        let config = format!(
            "{{\n  \"pebble\": {{\n    \"listenAddress\": \"{listen}:{port}\",\n    \
             \"managementListenAddress\": \"{listen}:{management_port}\",\n    \
             \"certificate\": \"{dir}/api.pem\",\n    \"privateKey\": \"{dir}/api.key\",\n    \
             \"httpPort\": {http},\n    \"tlsPort\": 443,\n    \"ocspResponderURL\": \"\",\n    \
             \"externalAccountBindingRequired\": false{validity}\n  }}\n}}\n",
            listen = options.listen,
            dir = dir.display(),
            http = options.http_port,
        );
        std::fs::write(dir.join("pebble-config.json"), config).unwrap();
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(dir.join("pebble-config.json"))
            .arg("-dnsserver")
            .arg(pebble.dns.address.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", options.authz_reuse_percent.min(100).to_string())
            .env("PEBBLE_WFE_NONCEREJECT", options.nonce_reject_percent.min(100).to_string())
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if options.always_valid {
            command.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        pebble.child = Some(command.spawn().expect("start pebble (apt-get install pebble)"));

        for p in [port, management_port] {
            crate::testing::until(Duration::from_secs(15), "pebble listens", || {
                if let Some(status) = pebble.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("pebble exited ({status}) before listening:\n{}", pebble.log());
                }
                TcpStream::connect((options.listen, p)).is_ok()
            });
        }
        let root = pebble.dir.join("issuing-root.pem");
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--max-time", "10", "--cacert"])
            .arg(pebble.api_ca_path())
            .arg("--output")
            .arg(&root)
            .arg(format!("{}/roots/0", pebble.management_url()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fetching pebble's issuing root: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            pebble.log()
        );
        pebble.issuing_root_pem = std::fs::read_to_string(&root).unwrap();
        assert!(pebble.issuing_root_pem.contains("BEGIN CERTIFICATE"), "{}", pebble.issuing_root_pem);
        pebble
    }

    /// The ACME directory, e.g. `https://10.231.0.1:40123/dir`.
    pub fn directory_url(&self) -> String {
        format!("https://{}:{}/dir", self.listen, self.port)
    }

    /// Pebble's management interface (`/roots/0`, `/intermediates/0`, `/cert-status-by-serial/…`).
    pub fn management_url(&self) -> String {
        format!("https://{}:{}", self.listen, self.management_port)
    }

    /// The CA (PEM) that signed pebble's HTTPS certificate: the one root an ACME client trusts.
    pub fn api_ca_pem(&self) -> &str {
        &self.api_ca_pem
    }

    /// The same, as a file (for `Account::builder_with_root`, `curl --cacert`).
    pub fn api_ca_path(&self) -> PathBuf {
        self.dir.join("api-ca.pem")
    }

    /// The root (PEM) that issued certificates chain to (`/roots/0`); new on every start.
    pub fn issuing_root_pem(&self) -> &str {
        &self.issuing_root_pem
    }

    /// The same, as a file (for `curl --cacert`, `openssl verify -CAfile`).
    pub fn issuing_root_path(&self) -> PathBuf {
        self.dir.join("issuing-root.pem")
    }

    /// Makes `name` resolve (A) to `ip` from now on (replacing what it resolved to).
    pub fn add_name(&self, name: &str, ip: Ipv4Addr) {
        self.dns.names.lock().unwrap().insert(normalize(name), ip);
    }

    /// Makes `name` NXDOMAIN from now on.
    pub fn remove_name(&self, name: &str) {
        self.dns.names.lock().unwrap().remove(&normalize(name));
    }

    /// The DNS responder's address (UDP), as pebble's `-dnsserver`.
    pub fn dns_address(&self) -> SocketAddr {
        self.dns.address
    }

    /// Pebble's output so far (its validation attempts and their results are logged there).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("pebble.log")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- pebble log ({}) ---\n{}--- end of pebble log ---", self.log_path().display(), self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test CA (`api-ca.pem`) and pebble's leaf (`api.pem`, `api.key`) for `listen`.
fn make_api_certificates(dir: &Path, listen: Ipv4Addr) {
    let config = format!(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
         [ca_ext]\nbasicConstraints = critical, CA:TRUE, pathlen:0\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [leaf_ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
         subjectAltName = IP:{listen}, IP:127.0.0.1, DNS:localhost, DNS:pebble\n"
    );
    std::fs::write(dir.join("openssl.cnf"), config).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        &[
            &["req", "-x509", "-config", "openssl.cnf", "-extensions", "ca_ext"][..],
            &key,
            &["-subj", "/CN=Slipway test ACME API CA", "-days", "7", "-keyout", "api-ca.key", "-out", "api-ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-new", "-config", "openssl.cnf"][..],
            &key,
            &["-subj", "/CN=pebble", "-keyout", "api.key", "-out", "api.csr"],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "api-ca.pem",
        "-CAkey",
        "api-ca.key",
        "-set_serial",
        "2",
        "-days",
        "7",
        "-extfile",
        "openssl.cnf",
        "-extensions",
        "leaf_ext",
        "-out",
        "api.pem",
    ]);
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// An authoritative-only DNS responder on a loopback UDP port, run on a thread: A records for
/// its names, an empty answer for their other types, NXDOMAIN for every other name.
#[derive(Debug)]
struct DnsResponder {
    address: SocketAddr,
    names: Arc<Mutex<HashMap<String, Ipv4Addr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsResponder {
    fn start(names: &[(&str, Ipv4Addr)]) -> DnsResponder {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let address = socket.local_addr().unwrap();
        let names = Arc::new(Mutex::new(names.iter().map(|(n, ip)| (normalize(n), *ip)).collect::<HashMap<_, _>>()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (names, stop) = (names.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
                    let reply = answer(&buf[..len], |name| names.lock().unwrap().get(name).copied());
                    if let Some(reply) = reply {
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            })
        };
        DnsResponder { address, names, stop, thread: Some(thread) }
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;

/// The reply to one DNS message (RFC 1035 §4.1), or `None` for what is not a query.
fn answer(query: &[u8], lookup: impl Fn(&str) -> Option<Ipv4Addr>) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let opcode = (query[2] >> 3) & 0x0f;
    let recursion_desired = query[2] & 0x01;
    let header = |rcode: u8, questions: u16, answers: u16| {
        let mut h = Vec::with_capacity(12);
        h.extend_from_slice(&query[..2]);
        // QR, the query's opcode, AA, its RD; no recursion available.
        h.push(0x80 | (opcode << 3) | 0x04 | recursion_desired);
        h.push(rcode);
        for count in [questions, answers, 0, 0] {
            h.extend_from_slice(&count.to_be_bytes());
        }
        h
    };
    if opcode != 0 {
        return Some(header(RCODE_NOTIMP, 0, 0));
    }
    if u16::from_be_bytes([query[4], query[5]]) != 1 {
        return Some(header(RCODE_FORMERR, 0, 0));
    }
    // The question: labels (no compression in a question), then type and class.
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let Some(&len) = query.get(pos) else { return Some(header(RCODE_FORMERR, 0, 0)) };
        pos += 1;
        if len == 0 {
            break;
        }
        let Some(label) = query.get(pos..pos + len as usize).filter(|_| len <= 63) else {
            return Some(header(RCODE_FORMERR, 0, 0));
        };
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len as usize;
        if pos - 12 > 255 {
            return Some(header(RCODE_FORMERR, 0, 0));
        }
    }
    let Some(fixed) = query.get(pos..pos + 4) else { return Some(header(RCODE_FORMERR, 0, 0)) };
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = &query[12..pos + 4];
    let Some(ip) = lookup(&labels.join(".")) else {
        let mut reply = header(RCODE_NXDOMAIN, 1, 0);
        reply.extend_from_slice(question);
        return Some(reply);
    };
    if qtype != TYPE_A || qclass != CLASS_IN {
        let mut reply = header(0, 1, 0);
        reply.extend_from_slice(question);
        return Some(reply);
    }
    let mut reply = header(0, 1, 1);
    reply.extend_from_slice(question);
    // The name as a pointer to the question's (offset 12), A, IN, TTL 0, four bytes.
    reply.extend_from_slice(&[0xc0, 0x0c]);
    reply.extend_from_slice(&TYPE_A.to_be_bytes());
    reply.extend_from_slice(&CLASS_IN.to_be_bytes());
    reply.extend_from_slice(&0u32.to_be_bytes());
    reply.extend_from_slice(&4u16.to_be_bytes());
    reply.extend_from_slice(&ip.octets());
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn dns_answers_known_names_only() {
        let lookup = |n: &str| (n == "tls.example.com").then_some(Ipv4Addr::new(10, 1, 2, 3));
        let q = query(0xbeef, "TLS.example.com", TYPE_A);
        let r = answer(&q, lookup).unwrap();
        assert_eq!(&r[..2], &[0xbe, 0xef]);
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&r[4..8], &[0, 1, 0, 1], "one question, one answer");
        assert_eq!(&r[12..q.len()], &q[12..], "the question echoed");
        assert_eq!(&r[r.len() - 4..], &[10, 1, 2, 3]);

        let r = answer(&query(1, "tls.example.com", 28), lookup).unwrap();
        assert_eq!((r[3] & 0x0f, &r[6..8]), (0, &[0u8, 0][..]), "AAAA: empty NOERROR");

        let r = answer(&query(2, "other.example.com", TYPE_A), lookup).unwrap();
        assert_eq!((r[3] & 0x0f, &r[6..8]), (RCODE_NXDOMAIN, &[0u8, 0][..]));

        let mut truncated = query(3, "tls.example.com", TYPE_A);
        truncated.truncate(20);
        assert_eq!(answer(&truncated, lookup).unwrap()[3] & 0x0f, RCODE_FORMERR);
        assert!(answer(&[0; 5], lookup).is_none());
    }
}
