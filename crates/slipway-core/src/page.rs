//! Pagination rules: `?page=` (default 1) and `?per_page=` (default 15, at most 100). A value
//! out of range is an error, never silently clamped, so a client learns at once that it asked
//! for something it will not get.
//!
//! Totals are counted only so far past the page asked for ([`COUNT_HORIZON`]): counting a
//! million audit events on every request would make the first page of a long list as slow as
//! reading the whole list. Within the horizon `total` and `last_page` are exact; past it they
//! are unknown (`null`), and `next` still leads on.
//!
//! A deep page by number steps over the rows before it (stores step through the list's index
//! alone, and count from the page's first row, but the step remains). Lists ordered by id also
//! take a cursor (`?cursor=`, the id of the last item of the page before, which their `next`
//! link carries): a store then seeks past it through the index ([`PageRequest::skip`] is 0) and
//! counts from there, so every page of a walk costs what the first does, and items added or
//! removed behind the walk do not shift it. The page number still labels the page (`from`,
//! `to`, `total`).

use serde::Serialize;

use crate::FieldErrors;

pub const DEFAULT_PER_PAGE: u32 = 15;
pub const MAX_PER_PAGE: u32 = 100;
/// Far beyond any real listing; keeps `offset` arithmetic well inside `i64`.
pub const MAX_PAGE: u32 = 1_000_000;
/// How many items past the end of the page asked for a list's total is counted: ten pages at
/// the largest page size. A database counts row by row, so on a long list the count is what a
/// first page costs most (see docs/architecture.md).
pub const COUNT_HORIZON: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
    /// Where the page starts in a list ordered by id: just past this id (in the list's order).
    pub seek: Option<SeekId>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::new(1, DEFAULT_PER_PAGE)
    }
}

/// A page cursor: an id as Slipway issues them (26 characters of Crockford's base32), kept
/// inline so that a [`PageRequest`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SeekId([u8; 26]);

impl SeekId {
    /// `None` unless `raw` has the shape of an id (which also keeps it out of any SQL text).
    /// Stricter than [`crate::id::looks_like_id`], which takes lower case too: a cursor is
    /// compared with stored ids as text, where only the upper case they are issued in sorts
    /// right.
    pub fn parse(raw: &str) -> Option<Self> {
        let bytes: [u8; 26] = raw.as_bytes().try_into().ok()?;
        let crockford = |b: &u8| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(b));
        bytes.iter().all(crockford).then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for SeekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeekId({})", self.as_str())
    }
}

impl PageRequest {
    pub const fn new(page: u32, per_page: u32) -> Self {
        Self { page, per_page, seek: None }
    }

    /// Validates raw query values (as text, so that `page=abc` gets a field error too).
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let page = parse_bounded(&mut errors, "page", page, 1, 1, MAX_PAGE);
        let per_page = parse_bounded(&mut errors, "per_page", per_page, DEFAULT_PER_PAGE, 1, MAX_PER_PAGE);
        errors.into_result()?;
        Ok(Self::new(page, per_page))
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    /// The position of the page's first item, less one: the items before it.
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// The rows a store skips to reach the page: none past a cursor, else those before it.
    pub fn skip(&self) -> i64 {
        if self.seek.is_some() { 0 } else { self.offset() }
    }

    /// How many matching rows a store counts for this page at most (from the cursor, if any):
    /// the items skipped and on the page, the horizon, and one more, which tells a total that
    /// was cut short from one that ended exactly at the horizon.
    pub fn count_limit(&self) -> i64 {
        self.skip() + self.limit() + COUNT_HORIZON + 1
    }
}

fn parse_bounded(errors: &mut FieldErrors, field: &str, raw: Option<&str>, default: u32, min: u32, max: u32) -> u32 {
    let Some(raw) = raw else { return default };
    match raw.parse::<u64>() {
        Ok(n) if n < u64::from(min) => errors.add(field, format!("The {field} must be at least {min}.")),
        Ok(n) if n > u64::from(max) => errors.add(field, format!("The {field} may not be greater than {max}.")),
        Ok(n) => return n as u32,
        Err(_) => errors.add(field, format!("The {field} must be an integer.")),
    }
    default
}

/// The `meta` object of a paginated list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageMeta {
    pub current_page: u32,
    /// Position of the first item on this page (1-based), `null` when the page is empty.
    pub from: Option<u64>,
    /// `null` when the total is not known (see the module's notes).
    pub last_page: Option<u32>,
    pub per_page: u32,
    /// Position of the last item on this page, `null` when the page is empty.
    pub to: Option<u64>,
    /// `null` when the list goes on past the counting horizon.
    pub total: Option<u64>,
}

impl PageMeta {
    /// `counted`: the matching rows, counted up to `request.count_limit()` (or all of them),
    /// from the cursor when there is one (the page number says how many came before it).
    pub fn new(request: PageRequest, items_on_page: usize, counted: u64) -> Self {
        let per_page = u64::from(request.per_page);
        let before_cursor = u64::try_from(request.offset() - request.skip()).unwrap_or(0);
        let total =
            (counted < u64::try_from(request.count_limit()).unwrap_or(u64::MAX)).then_some(counted + before_cursor);
        let last_page = total.map(|total| u32::try_from(total.div_ceil(per_page).max(1)).unwrap_or(u32::MAX));
        let first = u64::from(request.page - 1) * per_page + 1;
        let (from, to) =
            if items_on_page == 0 { (None, None) } else { (Some(first), Some(first + items_on_page as u64 - 1)) };
        Self { current_page: request.page, from, last_page, per_page: request.per_page, to, total }
    }

    /// Past the horizon there are more items than this page reaches, so there is a next page.
    pub fn next_page(&self) -> Option<u32> {
        self.last_page.is_none_or(|last| self.current_page < last).then(|| self.current_page + 1)
    }

    pub fn prev_page(&self) -> Option<u32> {
        (self.current_page > 1).then(|| (self.current_page - 1).min(self.last_page.unwrap_or(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_valid_values() {
        assert_eq!(PageRequest::parse(None, None).unwrap(), PageRequest::new(1, 15));
        let r = PageRequest::parse(Some("3"), Some("100")).unwrap();
        assert_eq!((r.page, r.per_page, r.offset(), r.limit()), (3, 100, 200, 100));
    }

    #[test]
    fn out_of_range_is_an_error_not_a_clamp() {
        let e = PageRequest::parse(Some("0"), Some("101")).unwrap_err();
        assert_eq!(e.get("page").unwrap(), ["The page must be at least 1."]);
        assert_eq!(e.get("per_page").unwrap(), ["The per_page may not be greater than 100."]);
        let e = PageRequest::parse(Some("abc"), Some("-1")).unwrap_err();
        assert_eq!(e.get("page").unwrap(), ["The page must be an integer."]);
        assert_eq!(e.get("per_page").unwrap(), ["The per_page must be an integer."]);
        let e = PageRequest::parse(Some("99999999999999999999999"), None).unwrap_err();
        assert_eq!(e.get("page").unwrap(), ["The page must be an integer."]);
        assert!(PageRequest::parse(Some("1000001"), None).is_err());
    }

    #[test]
    fn meta_matches_the_reference_example() {
        // 42 items, 15 per page: pages of 15, 15, 12.
        let m = PageMeta::new(PageRequest::new(1, 15), 15, 42);
        assert_eq!(
            (m.from, m.to, m.last_page, m.next_page(), m.prev_page()),
            (Some(1), Some(15), Some(3), Some(2), None)
        );
        let m = PageMeta::new(PageRequest::new(3, 15), 12, 42);
        assert_eq!((m.from, m.to, m.next_page(), m.prev_page()), (Some(31), Some(42), None, Some(2)));
    }

    #[test]
    fn a_cursor_is_an_id_and_the_page_number_still_places_the_page() {
        let id = "01KT0000000000000000089984";
        assert_eq!(SeekId::parse(id).map(|s| s.as_str().to_string()).as_deref(), Some(id));
        for bad in
            ["", "01KT", "01kt0000000000000000089984", "01KT000000000000000008998I", "01KT0000000000000000089984X"]
        {
            assert!(SeekId::parse(bad).is_none(), "{bad:?}");
        }
        let request = PageRequest { seek: SeekId::parse(id), ..PageRequest::new(3, 15) };
        assert_eq!((request.skip(), request.offset()), (0, 30), "nothing skipped past a cursor");
        assert_eq!(request.count_limit(), 15 + COUNT_HORIZON + 1, "counted from the cursor");
        // 20 items from the cursor on, 30 before it: items 31 to 45 of 50.
        let m = PageMeta::new(request, 15, 20);
        assert_eq!(
            (m.from, m.to, m.total, m.last_page, m.next_page()),
            (Some(31), Some(45), Some(50), Some(4), Some(4))
        );
        let m = PageMeta::new(request, 15, u64::try_from(request.count_limit()).unwrap());
        assert_eq!((m.total, m.next_page()), (None, Some(4)), "past the horizon from the cursor");
    }

    #[test]
    fn empty_lists_and_pages_past_the_end() {
        let m = PageMeta::new(PageRequest::default(), 0, 0);
        assert_eq!((m.from, m.to, m.last_page, m.next_page(), m.prev_page()), (None, None, Some(1), None, None));
        let m = PageMeta::new(PageRequest::new(9, 15), 0, 20);
        assert_eq!((m.from, m.to, m.last_page, m.next_page(), m.prev_page()), (None, None, Some(2), None, Some(2)));
    }

    #[test]
    fn totals_are_exact_up_to_the_horizon_and_unknown_past_it() {
        let page = PageRequest::new(2, 15);
        assert_eq!(page.count_limit(), 30 + COUNT_HORIZON + 1);
        // A list that ends exactly at the horizon (1,030 items, 69 pages) is still counted whole.
        let at_horizon = u64::try_from(30 + COUNT_HORIZON).unwrap();
        let m = PageMeta::new(page, 15, at_horizon);
        assert_eq!((m.total, m.last_page, m.next_page()), (Some(at_horizon), Some(69), Some(3)));
        // One more and the count was cut short: the total is unknown, the next page is there.
        let m = PageMeta::new(page, 15, at_horizon + 1);
        assert_eq!((m.total, m.last_page, m.from, m.to), (None, None, Some(16), Some(30)));
        assert_eq!((m.next_page(), m.prev_page()), (Some(3), Some(1)));
    }
}
