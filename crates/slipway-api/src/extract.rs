//! Request extractors whose failures are [`ApiError`]s, so a bad request gets the same JSON
//! envelope as every other error and a 422 names the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use slipway_core::{FieldErrors, PageRequest, SeekId};

use crate::envelope::PageCursor;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON request body. Unlike `axum::Json`, a type mismatch becomes a 422 with the field path
/// (`{"errors": {"limits.max": ["invalid type: …"]}}`) and a missing field reads
/// "The name field is required.".
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // A body without any content type is read as JSON (it is the only type accepted);
        // one that says it is something else is refused.
        let content_type = req.headers().get(header::CONTENT_TYPE);
        let json_type = content_type.is_none() || is_json_content_type(content_type);
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest("The request body could not be read.".into())
            }
        })?;
        // No body at all reads as `{}`, whatever the content type: an action whose
        // body is optional (`curl -X POST …/deploy`) just works, and one with required fields
        // answers 422 naming them, not a JSON syntax error.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse_json(b"{}").map(Json);
        }
        if !json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(Json)
    }
}

/// The configured body limit, put in request extensions so errors can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn is_json_content_type(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else { return false };
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Bodies are objects. serde would otherwise read a struct from an array (`[null, null]`
    // is a valid "empty" PATCH to it), which no client means.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(_) => Err(ApiError::validation("body", "The request body must be a JSON object.")),
            Err(e) => Err(ApiError::BadRequest(format!("The request body is not valid JSON: {e}."))),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => match de.end() {
            Ok(()) => Ok(value),
            Err(trailing) => Err(ApiError::BadRequest(format!("The request body is not valid JSON: {trailing}."))),
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => Err(ApiError::Validation(data_error(&path, &inner))),
                _ => Err(ApiError::BadRequest(format!("The request body is not valid JSON: {inner}."))),
            }
        }
    }
}

/// Turns a serde data error into a field error with a readable message.
fn data_error(path: &str, error: &serde_json::Error) -> FieldErrors {
    let text = error.to_string();
    // serde appends the position; the field path says more to an API user.
    let text = text.split(" at line ").next().unwrap_or(&text);
    let parent = if path == "." { "" } else { path };
    if let Some(field) = text.strip_prefix("missing field `").and_then(|t| t.strip_suffix('`')) {
        let full = if parent.is_empty() { field.to_string() } else { format!("{parent}.{field}") };
        return FieldErrors::one(full.clone(), format!("The {full} field is required."));
    }
    let field = if parent.is_empty() { "body" } else { parent };
    FieldErrors::one(field, format!("The {field} field is invalid: {text}."))
}

/// Query parameters. Unlike `axum::extract::Query`, a value that does not parse is a 422 naming
/// the parameter (`{"errors": {"reveal": ["The reveal parameter is invalid: …"]}}`), the same
/// shape as a field error in a body, never a 400.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let text = err.into_inner().to_string();
        if let Some(field) = text.strip_prefix("missing field `").and_then(|t| t.strip_suffix('`')) {
            return ApiError::validation(field, format!("The {field} parameter is required."));
        }
        let field = if path == "." { "query" } else { path.as_str() };
        ApiError::validation(field, format!("The {field} parameter is invalid: {text}."))
    })
}

/// A position in a log (`?after=`): only lines with a greater sequence number. A whole number
/// from 0 to 2^63 − 1; anything else is a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct After(pub i64);

impl<'de> serde::Deserialize<'de> for After {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(After(n)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a sequence number (a whole number from 0 to {})",
                i64::MAX
            ))),
        }
    }
}

/// One named segment of the matched path (`{server}`), or 404: resource extractors use it, so a
/// missing or odd segment reads as "no such resource".
pub async fn path_param(parts: &mut Parts, state: &AppState, name: &str) -> Result<String, ApiError> {
    let axum::extract::Path(mut params) =
        axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
    params.remove(name).ok_or(ApiError::NotFound)
}

/// The pagination query parameters as the OpenAPI document describes them (list handlers
/// read them through [`Page`]).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number (default 1).
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// Items per page (default 15, at most 100; more is a 422, not a silent clamp).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

/// The cursor of a list ordered by id, as the OpenAPI document describes it (read through
/// [`Page`] with the page number).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorParams {
    /// Where the page starts: just past this id, the last one of the page before, as
    /// `links.next` gives it. Costs the same at any depth, and items added or removed before
    /// it do not shift the walk; `page` still numbers the page.
    #[param(pattern = "^[0-9A-HJKMNP-TV-Z]{26}$")]
    pub cursor: Option<String>,
}

/// `?page=` and `?per_page=`, validated (422 when out of range), plus what is needed to build
/// absolute links to other pages with every other query parameter kept.
#[derive(Debug, Clone)]
pub struct Page(pub PageCursor);

impl FromRequestParts<AppState> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let (mut page, mut per_page, mut cursor) = (None, None, None);
        let mut kept = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "page" => page = Some(value.into_owned()),
                "cursor" => cursor = Some(value.into_owned()),
                "per_page" => {
                    kept.append_pair(&key, &value);
                    per_page = Some(value.into_owned());
                }
                _ => {
                    kept.append_pair(&key, &value);
                }
            }
        }
        let request = PageRequest::parse(page.as_deref(), per_page.as_deref())?;
        let not_an_id = || ApiError::validation("cursor", "The cursor must be an id, as links.next gives it.");
        let seek = cursor.map(|raw| SeekId::parse(&raw).ok_or_else(not_an_id)).transpose()?;
        let kept = kept.finish();
        let separator = if kept.is_empty() { "" } else { "&" };
        let link_base = format!("{}{}?{kept}{separator}", state.config.public_url, parts.uri.path());
        Ok(Page(PageCursor { request, link_base, seek }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Limits,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        max: u32,
    }

    fn field_errors(result: Result<Body, ApiError>) -> FieldErrors {
        match result {
            Err(ApiError::Validation(e)) => e,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = field_errors(parse_json(br#"{"name": "a", "limits": {"max": "ten"}}"#));
        let messages = e.get("limits.max").expect("error on limits.max");
        assert!(messages[0].starts_with("The limits.max field is invalid: invalid type: string"), "{messages:?}");
        assert!(!messages[0].contains("line 1"), "{messages:?}");
    }

    #[test]
    fn missing_fields_read_like_the_reference() {
        let e = field_errors(parse_json(br#"{"limits": {"max": 1}}"#));
        assert_eq!(e.get("name").unwrap(), ["The name field is required."]);
        let e = field_errors(parse_json(br#"{"name": "x", "limits": {}}"#));
        assert_eq!(e.get("limits.max").unwrap(), ["The limits.max field is required."]);
        for body in [&b"1"[..], b"[null, null]", b" \"text\"", b"null"] {
            let e = field_errors(parse_json(body));
            assert_eq!(e.get("body").unwrap(), ["The request body must be a JSON object."], "{body:?}");
        }
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_400() {
        for body in [&br#"{"name": "#[..], br#"{"name": "a", "limits": {"max": 1}} {}"#, b"", b"\xff"] {
            assert!(matches!(parse_json::<Body>(body), Err(ApiError::BadRequest(_))), "{body:?}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Params {
        reveal: Option<bool>,
        after: Option<After>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let invalid = |query: &str| match parse_query::<Params>(query) {
            Err(ApiError::Validation(e)) => e,
            other => panic!("{query}: expected a validation error, got {other:?}"),
        };
        assert!(invalid("reveal=AAA").get("reveal").is_some());
        for after in ["-1", "9223372036854775808", "1.5", "x", ""] {
            let e = invalid(&format!("after={after}"));
            assert!(e.get("after").unwrap()[0].contains("not a sequence number"), "{e:?}");
        }
        let ok = parse_query::<Params>("after=9223372036854775807&reveal=true&other=1").unwrap();
        assert_eq!((ok.after, ok.reveal), (Some(After(i64::MAX)), Some(true)));
        assert_eq!(parse_query::<Params>("").unwrap().after, None);
    }

    #[test]
    fn json_content_types() {
        let ok = |v: &str| is_json_content_type(Some(&axum::http::HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!is_json_content_type(None));
    }
}
