//! A request whose body the server never reads (a 401 or 403 from the guard, a 404, a 413)
//! must not leave the connection in doubt. HTTP/1.1 cannot carry the next request until the
//! unread body is off the wire, so hyper closes such a connection after the response, without
//! saying so: a client still sending the body (it arrives in a later packet) then sees "remote
//! disconnected" instead of the answer. This layer finds bodies a handler left unread and
//! either reads what is left, within bounds, so the connection stays usable, or answers with
//! `Connection: close` so the client knows the connection ends with this response.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use crate::state::AppState;

/// How long to wait for the rest of an unread body before giving up on the connection.
const DRAIN_TIME: Duration = Duration::from_secs(5);

pub async fn settle(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && length.unwrap_or(0) == 0 {
        return next.run(request).await;
    }
    // A client waiting for `100 Continue` has sent nothing: asking for the body only to drop it
    // would make it send the body for nothing. Closing is the cheaper answer.
    let expects_continue =
        headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let limit = state.config.max_body_bytes as u64;
    let (parts, body) = request.into_parts();
    let (leftover_tx, mut leftover) = oneshot::channel();
    let body = Body::new(Watched { inner: Some(body), leftover: Some(leftover_tx) });
    let mut response = next.run(Request::from_parts(parts, body)).await;

    let settled = match leftover.try_recv() {
        // Read to its end: nothing is left on the wire.
        Err(oneshot::error::TryRecvError::Closed) => true,
        // Still held by something that outlives the response: its fate is unknown.
        Err(oneshot::error::TryRecvError::Empty) => false,
        Ok(_) if expects_continue || length.is_some_and(|l| l > limit) => false,
        Ok(rest) => {
            let bounded = http_body_util::Limited::new(rest, limit as usize);
            matches!(tokio::time::timeout(DRAIN_TIME, bounded.collect()).await, Ok(Ok(_)))
        }
    };
    if !settled {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The request body, which hands what is left of itself back to [`settle`] when it is dropped
/// before its end.
struct Watched {
    inner: Option<Body>,
    leftover: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let frame = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            // Read to the end: nothing to hand back.
            self.inner = None;
            self.leftover = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(http_body::Body::size_hint).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let (Some(inner), Some(tx)) = (self.inner.take(), self.leftover.take())
            && !http_body::Body::is_end_stream(&inner)
        {
            let _ = tx.send(inner);
        }
    }
}
