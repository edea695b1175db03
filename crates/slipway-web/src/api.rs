//! The API, called in process with the session's token: the dashboard's only way to read or
//! change anything.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::error::WebError;

/// What the dashboard shares between requests.
#[derive(Clone)]
pub struct Web {
    api: axum::Router,
    /// Cookies get `Secure` (and the `__Host-` prefix) when Slipway is served over HTTPS.
    pub secure: bool,
    /// The public URL's origin (`https://slipway.example.com`): forms may come from it even
    /// when a proxy in front changes the `Host` header.
    pub origin: String,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("secure", &self.secure).finish_non_exhaustive()
    }
}

impl Web {
    pub fn new(api: axum::Router, public_url: &str) -> Self {
        // scheme://host[:port], without any path.
        let origin = match public_url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or_default()),
            None => String::new(),
        };
        Web { api, secure: public_url.starts_with("https://"), origin: origin.to_ascii_lowercase() }
    }

    /// The API as seen by one caller (a session's token, or none for the login itself).
    pub fn caller(&self, token: Option<&str>, peer: Option<SocketAddr>) -> InProcessApi {
        InProcessApi { api: self.api.clone(), token: token.map(str::to_string), peer }
    }
}

/// One caller of the API in process. Requests carry the browser's address (for token IP
/// restrictions, the login rate limit and the audit log) and the [`slipway_api::InProcess`]
/// mark, so the API's per-token rate limit counts the page once rather than each read it makes.
#[derive(Clone)]
pub struct InProcessApi {
    api: axum::Router,
    token: Option<String>,
    peer: Option<SocketAddr>,
}

impl std::fmt::Debug for InProcessApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessApi").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// An API answer: its status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The envelope's `data`, typed; an error answer becomes the page's error.
    pub fn data<T: DeserializeOwned>(self) -> Result<T, WebError> {
        let reply = self.success()?;
        serde_json::from_value(reply.body.get("data").cloned().unwrap_or(Value::Null))
            .map_err(|e| WebError::Internal(format!("unexpected API answer: {e}")))
    }

    /// A list answer's items and whether there are more pages (its `links.next`: a long list's
    /// total may be unknown, its next page never is).
    pub fn page<T: DeserializeOwned>(self) -> Result<(Vec<T>, bool), WebError> {
        let reply = self.success()?;
        let more = reply.body.pointer("/links/next").is_some_and(Value::is_string);
        let items = serde_json::from_value(reply.body.get("data").cloned().unwrap_or(Value::Null))
            .map_err(|e| WebError::Internal(format!("unexpected API answer: {e}")))?;
        Ok((items, more))
    }

    /// This answer when it is a success; otherwise the error it stands for.
    pub fn success(self) -> Result<Reply, WebError> {
        if self.is_success() { Ok(self) } else { Err(WebError::from_api(self.status, &self.body)) }
    }

    /// The API's message for an error answer.
    pub fn message(&self) -> String {
        self.body.get("message").and_then(Value::as_str).unwrap_or("The request failed.").to_string()
    }

    /// Field messages of a 422 answer, field by field.
    pub fn field_errors(&self) -> Vec<(String, Vec<String>)> {
        let Some(errors) = self.body.get("errors").and_then(Value::as_object) else { return vec![] };
        errors
            .iter()
            .map(|(field, messages)| {
                let list =
                    messages.as_array().map(|m| m.iter().filter_map(Value::as_str).map(str::to_string).collect());
                (field.clone(), list.unwrap_or_default())
            })
            .collect()
    }
}

impl InProcessApi {
    pub async fn get(&self, path: &str) -> Result<Reply, WebError> {
        self.send(Method::GET, path, None).await
    }

    /// Every item of a list, page after page of 100 (`path` may carry a query of its own).
    pub async fn every<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, WebError> {
        let join = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 1.. {
            let (items, more) = self.get(&format!("{path}{join}per_page=100&page={page}")).await?.page::<T>()?;
            all.extend(items);
            if !more {
                break;
            }
        }
        Ok(all)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Reply, WebError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<Reply, WebError> {
        let response = self.raw(method, path, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| WebError::Internal(format!("reading an API answer: {e}")))?
            .to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok(Reply { status, body })
    }

    /// The API's response as it is (for streams passed on to the browser).
    pub async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Result<Response, WebError> {
        let mut request = Request::builder().method(method).uri(path).header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(|e| WebError::Internal(format!("building an API call: {e}")))?;
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        request.extensions_mut().insert(slipway_api::InProcess);
        self.api.clone().oneshot(request).await.map_err(|e| match e {})
    }
}

/// Percent-encodes a value for a query string or a path segment.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
