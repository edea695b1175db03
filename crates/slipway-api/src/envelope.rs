//! Response envelopes: `{"data": …}` for one resource, `data` + `meta` + `links` for a page,
//! `message` + `data` for accepted actions.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use slipway_core::{PageMeta, PageRequest, SeekId};
use utoipa::ToSchema;

/// One resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct Data<T> {
    pub data: T,
}

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        json(StatusCode::OK, &self)
    }
}

/// What `axum::Json` does, with a buffer that starts at 1 KiB: axum's starts at 128 bytes, so a
/// resource of a few hundred bytes was copied twice while it was written, and a page many times.
fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
        }
        Err(e) => crate::ApiError::internal(format!("serialising the response: {e}")).into_response(),
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
        json(StatusCode::ACCEPTED, &self)
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
    /// The number of items, counted up to 1,000 past this page; null when there are more
    /// (follow `links.next`).
    total: Option<u64>,
}

impl<T: Serialize> IntoResponse for Paginated<T> {
    fn into_response(self) -> Response {
        json(StatusCode::OK, &self)
    }
}

/// What a list handler needs to build its links: the page asked for and the URL it was asked
/// at, without its `page` and `cursor` parameters.
#[derive(Debug, Clone)]
pub struct PageCursor {
    /// The page by number (what a list without a cursor reads).
    pub request: PageRequest,
    /// Absolute URL ending in `?` or `&`, ready for `page=N`.
    pub link_base: String,
    /// `?cursor=`, for the lists ordered by id that take one.
    pub seek: Option<SeekId>,
}

impl PageCursor {
    /// `counted`: the matching items, counted up to `request.count_limit()` or all of them.
    pub fn page<T>(&self, items: Vec<T>, counted: u64) -> Paginated<T> {
        self.links(self.request, items, counted, None)
    }

    /// The items of the page asked for, out of a short list read whole (a site's releases or
    /// variables, a server's items of a kind): paged here rather than in SQL. Its total is
    /// `all.len()`.
    pub fn slice<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        let skip = usize::try_from(self.request.offset()).unwrap_or(usize::MAX).min(all.len());
        let take = usize::try_from(self.request.limit()).unwrap_or(usize::MAX);
        &all[skip..skip.saturating_add(take).min(all.len())]
    }

    /// The page as a list ordered by id reads it: past the cursor when one was given.
    pub fn seeking(&self) -> PageRequest {
        PageRequest { seek: self.seek, ..self.request }
    }

    /// A page read with [`Self::seeking`]: its `next` link carries the last item's id as the
    /// cursor, so a walk along `next` never reads the rows before its page.
    pub fn seek_page<T>(&self, items: Vec<T>, counted: u64, id: impl Fn(&T) -> &str) -> Paginated<T> {
        let last = items.last().and_then(|item| SeekId::parse(id(item)));
        self.links(self.seeking(), items, counted, last)
    }

    fn links<T>(&self, request: PageRequest, items: Vec<T>, counted: u64, next_from: Option<SeekId>) -> Paginated<T> {
        let meta = PageMeta::new(request, items.len(), counted);
        let link = |n: u32| format!("{}page={n}", self.link_base);
        let next = |n: u32| match next_from {
            Some(cursor) => format!("{}page={n}&cursor={}", self.link_base, cursor.as_str()),
            None => link(n),
        };
        let links = PageLinks {
            first: link(1),
            last: meta.last_page.map(link),
            next: meta.next_page().map(next),
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
            request: PageRequest::new(2, 15),
            link_base: "https://cp.example/api/v1/servers?".into(),
            seek: None,
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

    #[test]
    fn a_list_ordered_by_id_leads_on_past_its_last_item() {
        let ids = ["01KS0000000000000000000016", "01KS0000000000000000000030"];
        let cursor = PageCursor {
            request: PageRequest::new(2, 2),
            link_base: "https://cp.example/api/v1/servers?".into(),
            seek: SeekId::parse("01KS0000000000000000000002"),
        };
        assert_eq!(cursor.seeking().seek, cursor.seek);
        // Five items from the cursor on, two before it: page 2 of 4.
        let page = cursor.seek_page(ids.to_vec(), 5, |id| id);
        assert_eq!(
            page.links.next.as_deref(),
            Some("https://cp.example/api/v1/servers?page=3&cursor=01KS0000000000000000000030")
        );
        assert_eq!(
            (page.meta.from, page.meta.total, page.links.prev.as_deref()),
            (Some(3), Some(7), Some("https://cp.example/api/v1/servers?page=1"))
        );
        // The last page has no next link, with a cursor or without.
        let page = cursor.seek_page(ids.to_vec(), 2, |id| id);
        assert_eq!((page.links.next, page.meta.last_page), (None, Some(2)));
    }
}
