//! A typed HTTP client for the Slipway API, used by the `slipway` command-line client and by
//! end-to-end tests. Errors carry the API's own message and field errors, so a caller can say
//! exactly what to fix.

mod events;

pub use events::{Event, EventStream};
pub use slipway_wire as wire;
pub use slipway_wire::{
    Authorization, CreatedServer, Deployment, DeploymentStep, HealthCheck, LogLine, Operation, Release, Repository,
    Server, Site,
};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach Slipway at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{}", describe_api_error(*.status, .message, .errors))]
    Api { status: u16, message: String, errors: BTreeMap<String, Vec<String>> },
    #[error("unexpected response from Slipway ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

fn describe_api_error(status: u16, message: &str, errors: &BTreeMap<String, Vec<String>>) -> String {
    let mut text = format!("{message} (HTTP {status})");
    for (field, messages) in errors {
        for m in messages {
            text.push_str(&format!("\n  {field}: {m}"));
        }
    }
    text
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => Some(*status),
            ClientError::Unreachable { .. } => None,
        }
    }

    /// Whether the server asked for a field, e.g. `otp` on a login with 2FA.
    pub fn field_error(&self, field: &str) -> Option<&str> {
        match self {
            ClientError::Api { errors, .. } => errors.get(field).and_then(|m| m.first()).map(String::as_str),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: String,
    #[serde(default)]
    errors: BTreeMap<String, Vec<String>>,
}

/// The error a non-2xx answer carries.
fn error_from(status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => ClientError::Api { status, message: e.message, errors: e.errors },
        Err(_) => {
            ClientError::Unexpected { status, detail: String::from_utf8_lossy(bytes).chars().take(200).collect() }
        }
    }
}

/// `Retry-After` in seconds (Slipway sends seconds, never a date).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers.get("retry-after")?.to_str().ok()?.trim().parse().ok()
}

/// A resource as Slipway sent it: typed for reading (it derefs to `T`), and serialised back
/// exactly as it came, so `--output json` prints the API's own JSON, not a re-encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource<T> {
    value: T,
    raw: Value,
}

impl<T> Resource<T> {
    /// The JSON as Slipway sent it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: DeserializeOwned> Resource<T> {
    pub fn from_value(raw: Value) -> Result<Self, serde_json::Error> {
        Ok(Resource { value: T::deserialize(&raw)?, raw })
    }
}

impl<T> std::ops::Deref for Resource<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Serialize for Resource<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Resource<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Resource::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
pub struct Data<T> {
    pub data: T,
}

/// An action accepted to run in the background (HTTP 202): what happens next, and the resource.
#[derive(Debug, Deserialize, Serialize)]
pub struct Accepted<T> {
    pub message: String,
    pub data: T,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub meta: Value,
    pub links: Value,
}

/// A token as the API shows it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub abilities: Vec<String>,
    pub organization_id: Option<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub created_at: String,
    pub created_via: String,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A token just created or rotated, with its secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub token: Token,
    pub plain_text_token: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Membership {
    pub id: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub two_factor_enabled: bool,
    pub organizations: Vec<Membership>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abilities: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateToken {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abilities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
}

/// Called with the wait before each retry of a rate-limited request (HTTP 429).
pub type RateLimitNotice = Arc<dyn Fn(Duration) + Send + Sync>;

/// How many times a rate-limited request is retried before the 429 is returned.
const RATE_LIMIT_RETRIES: u32 = 10;

pub struct Client {
    http: reqwest::Client,
    /// For server-sent events: no total timeout, but a read timeout (the server sends a
    /// keep-alive comment every 15 s).
    streaming: reqwest::Client,
    base: String,
    token: Option<Secret<String>>,
    on_rate_limited: Option<RateLimitNotice>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("token", &self.token).finish()
    }
}

impl Client {
    pub fn new(base_url: &str, token: Option<String>) -> Self {
        // One TLS crypto provider for the process: ring, which the database driver uses too.
        // Installing twice is harmless (the second attempt is refused and ignored).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("slipway-cli/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(15))
        };
        let http =
            builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client with default settings builds");
        let streaming = builder()
            .read_timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client with default settings builds");
        Self {
            http,
            streaming,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.map(Secret::new),
            on_rate_limited: None,
        }
    }

    /// Calls `notice` before waiting out a rate limit (so a user is not left looking at a
    /// silent terminal).
    pub fn on_rate_limited(mut self, notice: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.on_rate_limited = Some(Arc::new(notice));
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request; when rate limited, waits as long as Slipway asks (`Retry-After`) and
    /// tries again, a bounded number of times.
    async fn send(
        &self,
        http: &reqwest::Client,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut waits = 0;
        loop {
            let mut request = http.request(method.clone(), &url);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            if let Some(body) = &body {
                request = request.header("content-type", "application/json").body(body.clone());
            }
            let response =
                request.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
            if response.status().as_u16() != 429 || waits == RATE_LIMIT_RETRIES {
                return Ok(response);
            }
            let wait = Duration::from_secs(retry_after(response.headers()).unwrap_or(5).clamp(1, 120));
            if let Some(notice) = &self.on_rate_limited {
                notice(wait);
            }
            waits += 1;
            tokio::time::sleep(wait).await;
        }
    }

    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Option<T>, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Unexpected { status: 0, detail: format!("cannot encode the request: {e}") })?;
        let accept = [("accept", "application/json".to_string())];
        let response = self.send(&self.http, method, path, body, &accept).await?;
        let status = response.status().as_u16();
        let bytes =
            response.bytes().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        if status == 204 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(error_from(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Unexpected { status, detail: format!("cannot read the response: {e}") })
    }

    async fn expect<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        self.request(method, path, body)
            .await?
            .ok_or_else(|| ClientError::Unexpected { status: 204, detail: "no content where data was expected".into() })
    }

    pub async fn login(&self, request: &LoginRequest) -> Result<NewToken, ClientError> {
        Ok(self.expect::<Data<NewToken>>(Method::POST, "/api/v1/login", Some(request)).await?.data)
    }

    pub async fn logout(&self) -> Result<(), ClientError> {
        self.request::<Value>(Method::POST, "/api/v1/logout", Some(&serde_json::json!({}))).await.map(|_| ())
    }

    pub async fn user(&self) -> Result<User, ClientError> {
        Ok(self.expect::<Data<User>>(Method::GET, "/api/v1/user", None::<&()>).await?.data)
    }

    pub async fn current_token(&self) -> Result<Token, ClientError> {
        Ok(self.expect::<Data<Token>>(Method::GET, "/api/v1/tokens/current", None::<&()>).await?.data)
    }

    pub async fn tokens(&self, page: u32) -> Result<Page<Token>, ClientError> {
        self.expect(Method::GET, &format!("/api/v1/tokens?page={page}&per_page=100"), None::<&()>).await
    }

    pub async fn create_token(&self, request: &CreateToken) -> Result<NewToken, ClientError> {
        Ok(self.expect::<Data<NewToken>>(Method::POST, "/api/v1/tokens", Some(request)).await?.data)
    }

    pub async fn rotate_token(&self, id: &str) -> Result<NewToken, ClientError> {
        let path = format!("/api/v1/tokens/{}/rotate", encode_segment(id));
        Ok(self.expect::<Data<NewToken>>(Method::POST, &path, Some(&serde_json::json!({}))).await?.data)
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.delete_path(&format!("/api/v1/tokens/{}", encode_segment(id))).await
    }

    /// A backup's bytes, to read as they arrive (`chunk()`); `Content-Length` and
    /// `X-Checksum-SHA256` say what to expect. Not retried on 429: the limit is per hour.
    /// Starts a restore or a verification of a backup; returns the operation that does it.
    pub async fn backup_action(&self, id: &str, action: BackupAction, body: &Value) -> Result<Value, ClientError> {
        let path = format!("/api/v1/backups/{}/{}", encode_segment(id), action.path());
        Ok(self.expect::<Data<Value>>(Method::POST, &path, Some(body)).await?.data)
    }

    pub async fn backup_download(&self, id: &str) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}/api/v1/backups/{}/download", self.base, encode_segment(id));
        let mut request = self.streaming.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response =
            request.send().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes =
                response.bytes().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
            return Err(error_from(status, &bytes));
        }
        Ok(response)
    }

    /// `DELETE path` of a resource that answers `204 No Content`.
    pub async fn delete_path(&self, path: &str) -> Result<(), ClientError> {
        self.request::<Value>(Method::DELETE, path, None::<&()>).await.map(|_| ())
    }
}

impl Client {
    pub async fn servers(&self, page: u32) -> Result<Page<Resource<Server>>, ClientError> {
        self.expect(Method::GET, &format!("/api/v1/servers?page={page}&per_page=100"), None::<&()>).await
    }

    pub async fn create_server(&self, request: &Value) -> Result<Resource<CreatedServer>, ClientError> {
        Ok(self.expect::<Data<Resource<CreatedServer>>>(Method::POST, "/api/v1/servers", Some(request)).await?.data)
    }

    /// The organization's public key and the command that installs it on the server.
    pub async fn server_authorization(&self, id: &str) -> Result<Authorization, ClientError> {
        let path = format!("/api/v1/servers/{}/authorization", encode_segment(id));
        Ok(self.expect::<Data<Authorization>>(Method::GET, &path, None::<&()>).await?.data)
    }

    pub async fn server(&self, id: &str) -> Result<Resource<Server>, ClientError> {
        Ok(self
            .expect::<Data<Resource<Server>>>(
                Method::GET,
                &format!("/api/v1/servers/{}", encode_segment(id)),
                None::<&()>,
            )
            .await?
            .data)
    }

    pub async fn update_server(&self, id: &str, body: &Value) -> Result<Resource<Server>, ClientError> {
        let path = format!("/api/v1/servers/{}", encode_segment(id));
        Ok(self.expect::<Data<Resource<Server>>>(Method::PUT, &path, Some(body)).await?.data)
    }

    /// Forgets a server (nothing on the machine is changed).
    pub async fn delete_server(&self, id: &str) -> Result<(), ClientError> {
        self.delete_path(&format!("/api/v1/servers/{}", encode_segment(id))).await
    }

    pub async fn server_operations(&self, id: &str) -> Result<Page<Resource<Operation>>, ClientError> {
        self.expect(Method::GET, &format!("/api/v1/servers/{}/logs?per_page=100", encode_segment(id)), None::<&()>)
            .await
    }

    pub async fn operation(&self, id: &str) -> Result<Resource<Operation>, ClientError> {
        Ok(self
            .expect::<Data<Resource<Operation>>>(
                Method::GET,
                &format!("/api/v1/operations/{}", encode_segment(id)),
                None::<&()>,
            )
            .await?
            .data)
    }

    /// Log lines after `after`, oldest first.
    pub async fn operation_log(&self, id: &str, after: i64) -> Result<Vec<LogLine>, ClientError> {
        let path = format!("/api/v1/operations/{}/log?after={after}", encode_segment(id));
        Ok(self.expect::<Data<Vec<LogLine>>>(Method::GET, &path, None::<&()>).await?.data)
    }
}

/// Server actions the client can start; each answers with an operation.
#[derive(Debug, Clone, Copy)]
pub enum ServerAction {
    Verify,
    Provision,
    Restart,
    AcceptHostKey,
    /// Import the databases already on the server.
    SyncDatabases,
}

impl ServerAction {
    fn path(self) -> &'static str {
        match self {
            ServerAction::Verify => "verify",
            ServerAction::Provision => "provision",
            ServerAction::Restart => "restart",
            ServerAction::AcceptHostKey => "accept-host-key",
            ServerAction::SyncDatabases => "databases/sync",
        }
    }
}

/// The things kept on a server, by their path under `/servers/{server}`.
#[derive(Debug, Clone, Copy)]
pub enum ServerItems {
    SshKeys,
    NetworkRules,
    Daemons,
    Crontabs,
    Databases,
}

impl ServerItems {
    fn path(self) -> &'static str {
        match self {
            ServerItems::SshKeys => "ssh-keys",
            ServerItems::NetworkRules => "network-rules",
            ServerItems::Daemons => "daemons",
            ServerItems::Crontabs => "crontabs",
            ServerItems::Databases => "databases",
        }
    }

    /// What one item is called, in words.
    pub fn noun(self) -> &'static str {
        match self {
            ServerItems::SshKeys => "SSH key",
            ServerItems::NetworkRules => "network rule",
            ServerItems::Daemons => "daemon",
            ServerItems::Crontabs => "cron job",
            ServerItems::Databases => "database",
        }
    }
}

impl Client {
    /// Starts an action on a server; returns the operation.
    pub async fn server_action(
        &self,
        id: &str,
        action: ServerAction,
        body: &Value,
    ) -> Result<Resource<Operation>, ClientError> {
        let path = format!("/api/v1/servers/{}/{}", encode_segment(id), action.path());
        Ok(self.expect::<Data<Resource<Operation>>>(Method::POST, &path, Some(body)).await?.data)
    }

    pub async fn server_items(&self, server: &str, kind: ServerItems) -> Result<Page<Value>, ClientError> {
        self.items(&kind.collection(server)).await
    }

    /// Adds an item; the answer carries `operation_id` when a change was queued.
    pub async fn create_server_item(
        &self,
        server: &str,
        kind: ServerItems,
        body: &Value,
    ) -> Result<Value, ClientError> {
        self.create_item(&kind.collection(server), body).await
    }

    pub async fn delete_server_item(&self, server: &str, kind: ServerItems, item: &str) -> Result<Value, ClientError> {
        self.delete_item(&kind.collection(server), item).await
    }

    /// The items of a collection (`/api/v1/servers/{server}/daemons`,
    /// [`queue_workers_path`]`(server, site)`), up to 100.
    pub async fn items(&self, collection: &str) -> Result<Page<Value>, ClientError> {
        self.expect(Method::GET, &format!("{collection}?per_page=100"), None::<&()>).await
    }

    /// As [`Client::items`], narrowed by `filters` (`status=failed`), each value encoded.
    pub async fn items_where(&self, collection: &str, filters: &[(&str, &str)]) -> Result<Page<Value>, ClientError> {
        let query: String = filters.iter().map(|(k, v)| format!("&{k}={}", encode_segment(v))).collect();
        self.expect(Method::GET, &format!("{collection}?per_page=100{query}"), None::<&()>).await
    }

    pub async fn create_item(&self, collection: &str, body: &Value) -> Result<Value, ClientError> {
        Ok(self.expect::<Data<Value>>(Method::POST, collection, Some(body)).await?.data)
    }

    pub async fn item(&self, collection: &str, item: &str) -> Result<Value, ClientError> {
        let path = format!("{collection}/{}", encode_segment(item));
        Ok(self.expect::<Data<Value>>(Method::GET, &path, None::<&()>).await?.data)
    }

    pub async fn delete_item(&self, collection: &str, item: &str) -> Result<Value, ClientError> {
        let path = format!("{collection}/{}", encode_segment(item));
        Ok(self.expect::<Data<Value>>(Method::DELETE, &path, None::<&()>).await?.data)
    }

    /// Deletes an item whose deletion takes a body (a database: `{"confirm": name}`).
    pub async fn delete_item_with(&self, collection: &str, item: &str, body: &Value) -> Result<Value, ClientError> {
        let path = format!("{collection}/{}", encode_segment(item));
        Ok(self.expect::<Data<Value>>(Method::DELETE, &path, Some(body)).await?.data)
    }

    /// Restarts a daemon or a queue worker; the answer's `operation_id` does it.
    pub async fn restart_item(&self, collection: &str, item: &str) -> Result<Value, ClientError> {
        self.item_action(collection, item, "restart", &serde_json::json!({})).await
    }

    /// `POST {collection}/{item}/{action}` (`restart`, `activate`); the answer's `operation_id`
    /// does it.
    pub async fn item_action(
        &self,
        collection: &str,
        item: &str,
        action: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let path = format!("{collection}/{}/{action}", encode_segment(item));
        Ok(self.expect::<Data<Value>>(Method::POST, &path, Some(body)).await?.data)
    }

    /// The last `lines` lines of a daemon's or queue worker's log, read from the server.
    pub async fn item_log(&self, collection: &str, item: &str, lines: u32) -> Result<Vec<String>, ClientError> {
        #[derive(Deserialize)]
        struct Log {
            lines: Vec<String>,
        }
        let path = format!("{collection}/{}/log?lines={lines}", encode_segment(item));
        Ok(self.expect::<Data<Log>>(Method::GET, &path, None::<&()>).await?.data.lines)
    }

    /// One item, with its live status where its kind has one.
    pub async fn server_item(&self, server: &str, kind: ServerItems, item: &str) -> Result<Value, ClientError> {
        self.item(&kind.collection(server), item).await
    }

    /// A cron job's recorded runs, newest first (`page` of 100 each).
    pub async fn crontab_runs(&self, server: &str, job: &str, page: u32) -> Result<Page<Value>, ClientError> {
        let path = format!(
            "{}/{}/runs?page={page}&per_page=100",
            ServerItems::Crontabs.collection(server),
            encode_segment(job)
        );
        self.expect(Method::GET, &path, None::<&()>).await
    }
}

impl ServerItems {
    /// `/api/v1/servers/{server}/<kind>`.
    pub fn collection(self, server: &str) -> String {
        format!("/api/v1/servers/{}/{}", encode_segment(server), self.path())
    }
}

/// A site's redirects: `/api/v1/servers/{server}/sites/{site}/redirects`.
pub fn redirects_path(server: &str, site: &str) -> String {
    format!("{}/redirects", site_path(server, site))
}

/// A site's TLS certificates: `/api/v1/servers/{server}/sites/{site}/certificates`.
pub fn certificates_path(server: &str, site: &str) -> String {
    format!("{}/certificates", site_path(server, site))
}

/// A site's queue workers: `/api/v1/servers/{server}/sites/{site}/queues`.
pub fn queue_workers_path(server: &str, site: &str) -> String {
    format!("{}/queues", site_path(server, site))
}

/// A site's backup schedules: `/api/v1/servers/{server}/sites/{site}/backup-schedules`.
pub fn site_backup_schedules_path(server: &str, site: &str) -> String {
    format!("{}/backup-schedules", site_path(server, site))
}

/// A site's path: `/api/v1/servers/{server}/sites/{site}`.
fn site_path(server: &str, site: &str) -> String {
    format!("/api/v1/servers/{}/sites/{}", encode_segment(server), encode_segment(site))
}

/// Sites, their deployments, releases and environment variables. A site's changes run as
/// operations: their ids are in `operation_id`.
impl Client {
    pub async fn sites(&self, server: &str, page: u32) -> Result<Page<Resource<Site>>, ClientError> {
        let path = format!("/api/v1/servers/{}/sites?page={page}&per_page=100", encode_segment(server));
        self.expect(Method::GET, &path, None::<&()>).await
    }

    /// Creates a site; the answer's `operation_id` is the operation that installs it.
    pub async fn create_site(&self, server: &str, body: &Value) -> Result<Resource<Site>, ClientError> {
        let path = format!("/api/v1/servers/{}/sites", encode_segment(server));
        Ok(self.expect::<Data<Resource<Site>>>(Method::POST, &path, Some(body)).await?.data)
    }

    pub async fn site(&self, server: &str, site: &str) -> Result<Resource<Site>, ClientError> {
        Ok(self.expect::<Data<Resource<Site>>>(Method::GET, &site_path(server, site), None::<&()>).await?.data)
    }

    pub async fn update_site(&self, server: &str, site: &str, body: &Value) -> Result<Resource<Site>, ClientError> {
        Ok(self.expect::<Data<Resource<Site>>>(Method::PUT, &site_path(server, site), Some(body)).await?.data)
    }

    /// Starts removing a site; the answer's `operation_id` is the removal.
    pub async fn delete_site(&self, server: &str, site: &str) -> Result<Resource<Site>, ClientError> {
        Ok(self.expect::<Data<Resource<Site>>>(Method::DELETE, &site_path(server, site), None::<&()>).await?.data)
    }

    /// Suspends (nginx answers 503) or resumes a site; the answer's `operation_id` applies it.
    pub async fn suspend_site(&self, server: &str, site: &str, suspended: bool) -> Result<Resource<Site>, ClientError> {
        let path = format!("{}/{}", site_path(server, site), if suspended { "suspend" } else { "resume" });
        Ok(self.expect::<Data<Resource<Site>>>(Method::POST, &path, Some(&serde_json::json!({}))).await?.data)
    }

    /// Queues a deployment; `trigger` is `api`, `cli` or `dashboard`. The message says whether it
    /// waits behind another one.
    pub async fn deploy(
        &self,
        server: &str,
        site: &str,
        trigger: &str,
    ) -> Result<Accepted<Resource<Deployment>>, ClientError> {
        let path = format!("{}/deploy", site_path(server, site));
        self.expect(Method::POST, &path, Some(&serde_json::json!({"trigger": trigger}))).await
    }

    /// Queues a switch back to a kept release (default: the one before the live one).
    pub async fn rollback(
        &self,
        server: &str,
        site: &str,
        release: Option<&str>,
    ) -> Result<Accepted<Resource<Deployment>>, ClientError> {
        let path = format!("{}/rollback", site_path(server, site));
        self.expect(Method::POST, &path, Some(&serde_json::json!({"release": release}))).await
    }

    /// Converts an in-place site to zero-downtime releases: the conversion's deployment, or
    /// `None` when the site was never deployed and is converted at once.
    pub async fn enable_zero_downtime(
        &self,
        server: &str,
        site: &str,
    ) -> Result<Option<Accepted<Resource<Deployment>>>, ClientError> {
        let path = format!("{}/enable-zero-downtime", site_path(server, site));
        let reply: Value = self.expect(Method::POST, &path, Some(&serde_json::json!({"trigger": "cli"}))).await?;
        if reply.get("message").is_none() {
            return Ok(None);
        }
        serde_json::from_value(reply)
            .map(Some)
            .map_err(|e| ClientError::Unexpected { status: 202, detail: e.to_string() })
    }

    /// Deployments, newest first.
    pub async fn deployments(
        &self,
        server: &str,
        site: &str,
        page: u32,
    ) -> Result<Page<Resource<Deployment>>, ClientError> {
        let path = format!("{}/deployments?page={page}&per_page=100", site_path(server, site));
        self.expect(Method::GET, &path, None::<&()>).await
    }

    pub async fn deployment(&self, server: &str, site: &str, id: &str) -> Result<Resource<Deployment>, ClientError> {
        let path = format!("{}/deployments/{}", site_path(server, site), encode_segment(id));
        Ok(self.expect::<Data<Resource<Deployment>>>(Method::GET, &path, None::<&()>).await?.data)
    }

    /// Log lines after `after` (a `seq`), oldest first, at most 1000 at a time.
    pub async fn deployment_log(
        &self,
        server: &str,
        site: &str,
        id: &str,
        after: i64,
    ) -> Result<Vec<LogLine>, ClientError> {
        let path = format!("{}/deployments/{}/log?after={after}", site_path(server, site), encode_segment(id));
        Ok(self.expect::<Data<Vec<LogLine>>>(Method::GET, &path, None::<&()>).await?.data)
    }

    /// The deployment's log as server-sent events from the line after `after` (sent as
    /// `Last-Event-ID`): `line` events (data: a log line), then `end` (data: the deployment),
    /// or `error` (data: `{"message"}`) when Slipway could not read the log.
    pub async fn deployment_log_stream(
        &self,
        server: &str,
        site: &str,
        id: &str,
        after: i64,
    ) -> Result<EventStream, ClientError> {
        let path = format!("{}/deployments/{}/log/stream", site_path(server, site), encode_segment(id));
        let mut headers = vec![("accept", "text/event-stream".to_string())];
        if after > 0 {
            headers.push(("last-event-id", after.to_string()));
        }
        let response = self.send(&self.streaming, Method::GET, &path, None, &headers).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes =
                response.bytes().await.map_err(|source| ClientError::Unreachable { url: self.base.clone(), source })?;
            return Err(error_from(status, &bytes));
        }
        Ok(EventStream::new(response, self.base.clone()))
    }

    pub async fn cancel_deployment(
        &self,
        server: &str,
        site: &str,
        id: &str,
    ) -> Result<Accepted<Resource<Deployment>>, ClientError> {
        let path = format!("{}/deployments/{}/cancel", site_path(server, site), encode_segment(id));
        self.expect(Method::POST, &path, Some(&serde_json::json!({}))).await
    }

    /// Releases kept on the server, newest first; `current` marks the live one.
    pub async fn releases(&self, server: &str, site: &str) -> Result<Vec<Resource<Release>>, ClientError> {
        self.every(&format!("{}/releases?", site_path(server, site))).await
    }

    /// Environment variables by key; values are `null` unless `reveal`.
    pub async fn env_vars(&self, server: &str, site: &str, reveal: bool) -> Result<Vec<Value>, ClientError> {
        self.every(&format!("{}/environment-variables?reveal={reveal}&", site_path(server, site))).await
    }

    /// Every item of a list, page after page of 100; `path` ends in `?` or `&`.
    async fn every<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        for page in 1.. {
            let reply: Page<T> =
                self.expect(Method::GET, &format!("{path}per_page=100&page={page}"), None::<&()>).await?;
            all.extend(reply.data);
            if !reply.links.get("next").is_some_and(Value::is_string) {
                break;
            }
        }
        Ok(all)
    }

    /// Sets variables; with `deploy`, the answer's `deployment` is the deployment it started.
    pub async fn set_env_vars(
        &self,
        server: &str,
        site: &str,
        variables: &BTreeMap<String, String>,
        deploy: bool,
    ) -> Result<Value, ClientError> {
        let path = format!("{}/environment-variables?deploy={deploy}", site_path(server, site));
        let body = serde_json::json!({"variables": variables});
        Ok(self.expect::<Data<Value>>(Method::POST, &path, Some(&body)).await?.data)
    }

    /// Starts importing the server's `.env`; returns the operation that does it.
    pub async fn pull_env(&self, server: &str, site: &str) -> Result<Resource<Operation>, ClientError> {
        let path = format!("{}/environment-variables/pull", site_path(server, site));
        Ok(self.expect::<Data<Resource<Operation>>>(Method::POST, &path, Some(&serde_json::json!({}))).await?.data)
    }

    pub async fn unset_env_var(&self, server: &str, site: &str, key: &str, deploy: bool) -> Result<Value, ClientError> {
        let path = format!("{}/environment-variables/{}?deploy={deploy}", site_path(server, site), encode_segment(key));
        Ok(self.expect::<Data<Value>>(Method::DELETE, &path, None::<&()>).await?.data)
    }
}

/// Slipway's address as a user types it, made a base URL: `https://slipway.example.com`, or
/// without a scheme, `http://` for this machine (`localhost`, `127.0.0.1:8080`, `[::1]`) and
/// `https://` for any other host. The error says what is wrong.
pub fn base_url(input: &str) -> Result<String, String> {
    let input = input.trim();
    let example = "write it like https://slipway.example.com or 127.0.0.1:8080";
    if input.is_empty() {
        return Err(format!("the Slipway URL is empty: {example}"));
    }
    let url = match input.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
            input.trim_end_matches('/').to_string()
        }
        Some((scheme, _)) => return Err(format!("{input:?} is not an http:// or https:// URL (it says {scheme}://)")),
        None => {
            let host = match input.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or(""),
                None => input.split([':', '/']).next().unwrap_or(""),
            };
            let local = host.eq_ignore_ascii_case("localhost")
                || host.to_ascii_lowercase().ends_with(".localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            format!("{}://{}", if local { "http" } else { "https" }, input.trim_end_matches('/'))
        }
    };
    // Parsed as typed: `http://` must not pass as a host with its slashes trimmed away.
    let parsed = reqwest::Url::parse(if input.contains("://") { input } else { &url })
        .map_err(|e| format!("{input:?} is not a valid URL ({e}): {example}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{input:?} has no host name: {example}"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{input:?} has a query or fragment; give only Slipway's address: {example}"));
    }
    Ok(url)
}

/// Percent-encodes a path segment, so an id typed by a user cannot change the path.
/// What can be done to a stored backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupAction {
    Restore,
    Verify,
}

impl BackupAction {
    fn path(self) -> &'static str {
        match self {
            BackupAction::Restore => "restore",
            BackupAction::Verify => "verify",
        }
    }
}

fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_segment("01HZABC"), "01HZABC");
        assert_eq!(encode_segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
    }

    #[test]
    fn base_urls_get_the_scheme_their_host_needs() {
        for (typed, url) in [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("localhost:8080/", "http://localhost:8080"),
            ("[::1]:8080", "http://[::1]:8080"),
            ("slipway.example.com", "https://slipway.example.com"),
            ("203.0.113.10:8080", "https://203.0.113.10:8080"),
            ("HTTP://example.com/slipway/", "HTTP://example.com/slipway"),
            (" https://slipway.example.com ", "https://slipway.example.com"),
        ] {
            assert_eq!(base_url(typed).as_deref(), Ok(url), "{typed}");
        }
        for (typed, says) in [
            ("", "is empty"),
            ("ftp://example.com", "not an http:// or https:// URL"),
            ("http://", "not a valid URL"),
            ("example.com:port", "not a valid URL"),
            ("https://example.com/?x=1", "query or fragment"),
        ] {
            let e = base_url(typed).unwrap_err();
            assert!(e.contains(says), "{typed}: {e}");
        }
    }

    #[test]
    fn api_errors_read_well() {
        let e = ClientError::Api {
            status: 422,
            message: "The given data was invalid.".into(),
            errors: BTreeMap::from([(
                "email".to_string(),
                vec!["The email must be a valid email address.".to_string()],
            )]),
        };
        assert_eq!(
            e.to_string(),
            "The given data was invalid. (HTTP 422)\n  email: The email must be a valid email address."
        );
        assert_eq!(e.field_error("email"), Some("The email must be a valid email address."));
        assert!(!format!("{:?}", Client::new("http://x", Some("slp_secret".into()))).contains("slp_secret"));
    }
}
