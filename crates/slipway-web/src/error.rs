//! What a page shows when it cannot do what was asked.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use crate::view;

#[derive(Debug)]
pub enum WebError {
    /// No session, or it ended: back to the login form.
    LoggedOut,
    /// The API refused or failed: its status and message.
    Api(StatusCode, String),
    /// A defect in the dashboard itself (logged, shown as a plain server error).
    Internal(String),
}

impl WebError {
    pub fn from_api(status: StatusCode, body: &Value) -> Self {
        if status == StatusCode::UNAUTHORIZED {
            return WebError::LoggedOut;
        }
        let message = body.get("message").and_then(Value::as_str).unwrap_or("The request failed.");
        WebError::Api(status, message.to_string())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::LoggedOut => return Redirect::to("/login").into_response(),
            WebError::Api(StatusCode::NOT_FOUND, _) => {
                (StatusCode::NOT_FOUND, "Not found", "There is nothing here, or it is not visible to you.".to_string())
            }
            WebError::Api(StatusCode::FORBIDDEN, message) => (StatusCode::FORBIDDEN, "Not allowed", message),
            WebError::Api(StatusCode::TOO_MANY_REQUESTS, message) => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many requests", message)
            }
            WebError::Api(status, message) => (status, "That did not work", message),
            WebError::Internal(cause) => {
                tracing::error!(error = %cause, "dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "Something went wrong on Slipway's side; it is in its log.".into(),
                )
            }
        };
        (status, view::error_page(title, &message)).into_response()
    }
}
