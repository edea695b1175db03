//! Pagination rules: `?page=` (default 1) and `?per_page=` (default 15, at most 100). A value
//! out of range is an error, never silently clamped, so a client learns at once that it asked
//! for something it will not get.

use serde::Serialize;

use crate::FieldErrors;

pub const DEFAULT_PER_PAGE: u32 = 15;
pub const MAX_PER_PAGE: u32 = 100;
/// Far beyond any real listing; keeps `offset` arithmetic well inside `i64`.
pub const MAX_PAGE: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, per_page: DEFAULT_PER_PAGE }
    }
}

impl PageRequest {
    /// Validates raw query values (as text, so that `page=abc` gets a field error too).
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let page = parse_bounded(&mut errors, "page", page, 1, 1, MAX_PAGE);
        let per_page = parse_bounded(&mut errors, "per_page", per_page, DEFAULT_PER_PAGE, 1, MAX_PER_PAGE);
        errors.into_result()?;
        Ok(Self { page, per_page })
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
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
    pub last_page: u32,
    pub per_page: u32,
    /// Position of the last item on this page, `null` when the page is empty.
    pub to: Option<u64>,
    pub total: u64,
}

impl PageMeta {
    pub fn new(request: PageRequest, items_on_page: usize, total: u64) -> Self {
        let per_page = u64::from(request.per_page);
        let last_page = total.div_ceil(per_page).max(1);
        let first = u64::from(request.page - 1) * per_page + 1;
        let (from, to) =
            if items_on_page == 0 { (None, None) } else { (Some(first), Some(first + items_on_page as u64 - 1)) };
        Self {
            current_page: request.page,
            from,
            last_page: u32::try_from(last_page).unwrap_or(u32::MAX),
            per_page: request.per_page,
            to,
            total,
        }
    }

    pub fn next_page(&self) -> Option<u32> {
        (self.current_page < self.last_page).then(|| self.current_page + 1)
    }

    pub fn prev_page(&self) -> Option<u32> {
        (self.current_page > 1).then(|| (self.current_page - 1).min(self.last_page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_valid_values() {
        assert_eq!(PageRequest::parse(None, None).unwrap(), PageRequest { page: 1, per_page: 15 });
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
        let m = PageMeta::new(PageRequest { page: 1, per_page: 15 }, 15, 42);
        assert_eq!((m.from, m.to, m.last_page, m.next_page(), m.prev_page()), (Some(1), Some(15), 3, Some(2), None));
        let m = PageMeta::new(PageRequest { page: 3, per_page: 15 }, 12, 42);
        assert_eq!((m.from, m.to, m.next_page(), m.prev_page()), (Some(31), Some(42), None, Some(2)));
    }

    #[test]
    fn empty_lists_and_pages_past_the_end() {
        let m = PageMeta::new(PageRequest::default(), 0, 0);
        assert_eq!((m.from, m.to, m.last_page, m.next_page(), m.prev_page()), (None, None, 1, None, None));
        let m = PageMeta::new(PageRequest { page: 9, per_page: 15 }, 0, 20);
        assert_eq!((m.from, m.to, m.last_page, m.next_page(), m.prev_page()), (None, None, 2, None, Some(2)));
    }
}
