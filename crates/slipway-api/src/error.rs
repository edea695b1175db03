//! The one error type at the HTTP boundary. Every failure a handler, extractor or middleware
//! produces becomes one of these variants and leaves as the same JSON envelope:
//! `{"message": "..."}`, plus `errors` for validation failures.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use slipway_core::FieldErrors;
use utoipa::ToSchema;

pub const VALIDATION_MESSAGE: &str = "The given data was invalid.";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body could not be parsed at all.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that are invalid, expired or revoked.
    #[error("Unauthenticated.")]
    Unauthenticated { presented: bool },
    /// 401 for a signed delivery (a git webhook) whose signature is missing or wrong; no
    /// `WWW-Authenticate`, since no token would help.
    #[error("{0}")]
    BadSignature(String),
    /// 403: valid credentials that may not do this (the message says why).
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown route, or a resource that does not exist or is not visible to the caller.
    #[error("Not found.")]
    NotFound,
    /// 404 saying what was looked for (a server named in the path, say).
    #[error("{0}")]
    Missing(String),
    /// 405: the route exists but not for this method.
    #[error("The {0} method is not supported for this route.")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the resource's current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the configured limit.
    #[error("The request body is larger than the limit of {0} bytes.")]
    PayloadTooLarge(usize),
    /// 415: the body is not declared as JSON.
    #[error("The request body must be JSON, sent with Content-Type: application/json.")]
    UnsupportedMediaType,
    /// 422: the input was understood but is not acceptable.
    #[error("The given data was invalid.")]
    Validation(FieldErrors),
    /// 429: a rate limit was reached; the headers say when to retry.
    #[error("Too many requests. Retry after {} seconds.", .0.retry_after())]
    TooManyRequests(crate::ratelimit::Decision),
    /// 503: a dependency (the database) is not available right now.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure. The cause is logged once, never sent to the client.
    #[error("Server error.")]
    Internal(#[source] Cause),
}

/// The cause of an internal error: any error type, kept for the log, never sent to the client.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl ApiError {
    pub fn internal(cause: impl Into<Cause>) -> Self {
        ApiError::Internal(cause.into())
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(FieldErrors::one(field, message))
    }

    /// 403 naming the ability the route requires.
    pub fn missing_ability(ability: slipway_core::Ability) -> Self {
        ApiError::Forbidden(format!("This action requires the {ability} ability, which this token does not have."))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated { .. } | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<slipway_store::StoreError> for ApiError {
    fn from(e: slipway_store::StoreError) -> Self {
        match e {
            slipway_store::StoreError::LastOwner => {
                ApiError::Conflict("An organization must keep at least one owner.".into())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::Validation(e)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words meant for the person using the API.
    #[schema(example = "Not found.")]
    pub message: String,
}

/// The body of a 422 response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    #[schema(example = "The given data was invalid.")]
    pub message: String,
    /// Messages per field; nested fields use dotted paths (`limits.max`).
    #[schema(value_type = std::collections::BTreeMap<String, Vec<String>>)]
    pub errors: FieldErrors,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match self {
            ApiError::Unauthenticated { presented } => {
                let mut r = (status, Json(ErrorBody { message: "Unauthenticated.".into() })).into_response();
                let challenge = if presented {
                    "Bearer realm=\"slipway\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"slipway\""
                };
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
                r
            }
            ApiError::TooManyRequests(decision) => {
                let message = format!("Too many requests. Retry after {} seconds.", decision.retry_after());
                let mut r = (status, Json(ErrorBody { message })).into_response();
                decision.write_headers(r.headers_mut());
                r
            }
            ApiError::Validation(errors) => {
                (status, Json(ValidationErrorBody { message: VALIDATION_MESSAGE.into(), errors })).into_response()
            }
            ApiError::Internal(cause) => {
                // The one place a 500 is logged, with its cause; the request span adds the id.
                tracing::error!(error = %cause, "request failed");
                (status, Json(ErrorBody { message: "Server error.".into() })).into_response()
            }
            other => (status, Json(ErrorBody { message: other.to_string() })).into_response(),
        };
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_is_pinned() {
        let cases: Vec<(ApiError, u16)> = vec![
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Unauthenticated { presented: false }, 401),
            (ApiError::Forbidden("no".into()), 403),
            (ApiError::NotFound, 404),
            (ApiError::MethodNotAllowed("PATCH".into()), 405),
            (ApiError::Conflict("busy".into()), 409),
            (ApiError::PayloadTooLarge(10), 413),
            (ApiError::UnsupportedMediaType, 415),
            (ApiError::validation("name", "required"), 422),
            (ApiError::Unavailable("db".into()), 503),
            (ApiError::internal(std::io::Error::other("disk on fire at /var/lib/x")), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.into_response().status().as_u16(), status);
        }
    }
}
