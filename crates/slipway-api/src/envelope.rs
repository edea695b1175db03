//! Response envelopes: `{"data": …}` for one resource, `data` + `meta` + `links` for a page,
//! `message` + `data` for accepted actions.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use slipway_core::{PageMeta, PageRequest};
use utoipa::ToSchema;

/// One resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// An action that was accepted and runs asynchronously: 202 with a message and the operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted<T> {
    pub message: String,
    pub data: T,
}

impl<T: Serialize> IntoResponse for Accepted<T> {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, Json(self)).into_response()
    }
}

/// Absolute URLs of the neighbouring pages; `next`/`prev` are `null` at the ends.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct PageLinks {
    pub first: String,
    /// `null` when the total is not known (the list goes on past the counting horizon).
    pub last: Option<String>,
    pub next: Option<String>,
    pub prev: Option<String>,
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub data: Vec<T>,
    #[schema(value_type = PageMetaSchema)]
    pub meta: PageMeta,
    pub links: PageLinks,
}

/// Pagination metadata (the `meta` object of every list).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PageMeta)]
pub struct PageMetaSchema {
    current_page: u32,
    /// Position of the first item on this page (1-based); null for an empty page.
    from: Option<u64>,
    /// Null when `total` is.
    last_page: Option<u32>,
    per_page: u32,
    /// Position of the last item on this page; null for an empty page.
    to: Option<u64>,
    /// The number of items, counted up to 10,000 past this page; null when there are more
    /// (follow `links.next`).
    total: Option<u64>,
}

impl<T: Serialize> IntoResponse for Paginated<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// What a list handler needs to build its links: the page asked for and the URL it was asked
/// at, without its `page` parameter.
#[derive(Debug, Clone)]
pub struct PageCursor {
    pub request: PageRequest,
    /// Absolute URL ending in `?` or `&`, ready for `page=N`.
    pub link_base: String,
}

impl PageCursor {
    /// `counted`: the matching items, counted up to `request.count_limit()` or all of them.
    pub fn page<T>(&self, items: Vec<T>, counted: u64) -> Paginated<T> {
        let meta = PageMeta::new(self.request, items.len(), counted);
        let link = |n: u32| format!("{}page={n}", self.link_base);
        let links = PageLinks {
            first: link(1),
            last: meta.last_page.map(link),
            next: meta.next_page().map(link),
            prev: meta.prev_page().map(link),
        };
        Paginated { data: items, meta, links }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_the_reference_shape() {
        let cursor = PageCursor {
            request: PageRequest { page: 2, per_page: 15 },
            link_base: "https://cp.example/api/v1/servers?".into(),
        };
        let page = cursor.page(vec![0; 15], 42);
        assert_eq!(
            page.links,
            PageLinks {
                first: "https://cp.example/api/v1/servers?page=1".into(),
                last: Some("https://cp.example/api/v1/servers?page=3".into()),
                next: Some("https://cp.example/api/v1/servers?page=3".into()),
                prev: Some("https://cp.example/api/v1/servers?page=1".into()),
            }
        );
        assert_eq!((page.meta.from, page.meta.to), (Some(16), Some(30)));
        // Counted past the horizon: no last page, and a next one.
        let page = cursor.page(vec![0; 15], u64::try_from(cursor.request.count_limit()).unwrap());
        assert_eq!((page.links.last, page.meta.total), (None, None));
        assert_eq!(page.links.next.as_deref(), Some("https://cp.example/api/v1/servers?page=3"));
    }
}
