//! The SQL implementation of [`Store`], written once and instantiated for SQLite and PostgreSQL.
//!
//! Each part of the store (a trait such as `ServerStore`, see the crate root) is implemented
//! in a file of its own (`servers.rs`): an `impl_…_store!` macro holds its methods once, and the
//! file instantiates it for `SqlStore<Sqlite>` and `SqlStore<Postgres>`. This file holds the
//! store itself, what the parts share, and `Store` proper (migrations, readiness, closing).
//!
//! Rules for code in the `impl_…!` macros: placeholders are `$1`, `$2`, …; only types both
//! drivers encode alike are bound (text, integers, bool, bytes, `chrono::DateTime<Utc>`); a
//! statement that truly differs between the two branches on the backend and is covered by the
//! conformance suite.

mod activity;
mod audit;
mod backups;
mod git;
mod identity;
mod jobs;
mod limits;
mod notifications;
mod retention;
mod servers;
mod settings;
mod sites;
mod tokens;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::{Database, Pool, Postgres, Sqlite};

use crate::cache::ReadCache;
use crate::error::StoreError;
use crate::{Backend, Store};

/// Binds each id, comma-separated, and closes the `IN (` list the caller opened.
macro_rules! push_id_list {
    ($q:expr, $ids:expr) => {{
        let mut list = $q.separated(", ");
        for id in $ids {
            list.push_bind(id.clone());
        }
        $q.push(")");
    }};
}
pub(crate) use push_id_list;

/// Whether a list runs from the lowest id or from the highest (newest first).
#[derive(Clone, Copy)]
pub(crate) enum IdOrder {
    Ascending,
    Descending,
}

/// ` AND id > $id` (`<` for a list newest first; `>=`/`<=` when `inclusive`): where a page or
/// its count starts, found through the id's index.
fn push_id_bound<DB>(q: &mut sqlx::QueryBuilder<DB>, order: IdOrder, inclusive: bool, id: &str)
where
    DB: Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(match (order, inclusive) {
        (IdOrder::Ascending, false) => " AND id > ",
        (IdOrder::Ascending, true) => " AND id >= ",
        (IdOrder::Descending, false) => " AND id < ",
        (IdOrder::Descending, true) => " AND id <= ",
    });
    q.push_bind(id.to_string());
}

/// ` AND id > $cursor` (`<` for a list newest first) when the page has a cursor: the page then
/// starts just past it, found through the id's index (see `slipway_core::page`).
pub(crate) fn push_seek<DB>(q: &mut sqlx::QueryBuilder<DB>, page: Option<slipway_core::PageRequest>, order: IdOrder)
where
    DB: Database,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(seek) = page.and_then(|p| p.seek) {
        push_id_bound(q, order, false, seek.as_str());
    }
}

/// Ends a list's `SELECT <fields> FROM <table> WHERE ` with the rows of one page, in id order.
/// A page reached by number makes the database step over every row before it, and stepping
/// over whole rows reads each one; so past the first page the page's ids are found first, by
/// the filter alone, and only the page's own rows are read. Where an `(…, id)` index holds the
/// whole filter (an organisation's servers or sites, a server's sites, a site's deployments)
/// the step reads no row at all; other filters (a status) still read the rows they test.
pub(crate) fn push_page_rows<DB>(
    q: &mut sqlx::QueryBuilder<DB>,
    table: &str,
    filter: impl Fn(&mut sqlx::QueryBuilder<DB>),
    order: IdOrder,
    (limit, skip): (i64, i64),
) where
    DB: Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let order_by = match order {
        IdOrder::Ascending => " ORDER BY id",
        IdOrder::Descending => " ORDER BY id DESC",
    };
    if skip == 0 {
        filter(q);
        q.push(order_by).push(" LIMIT ").push_bind(limit);
        return;
    }
    q.push("id IN (SELECT id FROM ").push(table).push(" WHERE ");
    filter(q);
    q.push(order_by).push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(skip).push(")");
    q.push(order_by);
}

/// One page of a list and its total, in a list method of an `impl_…_store!` macro. `$fields` is
/// the row's column list (`thing_fields!(columns!())`); `$filter` pushes the list's conditions;
/// `$bounds` is [`page_bounds`]. Evaluates to `(rows, total)`.
///
/// A page that skips nothing (the first, or one reached by cursor) is counted in its own
/// statement (see [`Counted`]): one round trip to the database fewer on the requests nearly
/// every client makes. A page past the first by number is read first (see [`push_page_rows`])
/// and then counted from its first row (see [`PageCount`]).
macro_rules! list_page {
    ($self:ident, $db:ty, $row:ty, $fields:expr, $table:literal, $filter:expr, $order:expr, $bounds:expr) => {{
        let (limit, skip, count_limit) = $bounds;
        let filter = $filter;
        let source = |q: &mut sqlx::QueryBuilder<$db>| {
            q.push(concat!($table, " WHERE "));
            filter(q);
        };
        let mut select = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", $fields));
        // Without a page (every row), the rows are the total.
        let whole_list = limit == i64::MAX;
        let counted_with_page = skip == 0 && !whole_list;
        if counted_with_page {
            select.push(", (");
            $crate::sql::PageCount::new(0, count_limit, None).push_query(&mut select, &source, $order);
            select.push(") AS page_total");
        }
        select.push(concat!(" FROM ", $table, " WHERE "));
        $crate::sql::push_page_rows(&mut select, $table, filter, $order, (limit, skip));
        if counted_with_page {
            let rows: Vec<$crate::sql::Counted<$row>> =
                select.build_query_as().fetch_all(&$self.pool).await.map_err(StoreError::from_sqlx)?;
            // No row, no count: with nothing skipped, an empty page means nothing from where it starts.
            let total = $crate::sql::as_u64(rows.first().map_or(0, |r| r.total));
            (rows.into_iter().map(|r| r.row).collect::<Vec<$row>>(), total)
        } else {
            let rows: Vec<$row> =
                select.build_query_as().fetch_all(&$self.pool).await.map_err(StoreError::from_sqlx)?;
            let total = if whole_list {
                rows.len() as u64
            } else {
                let count = $crate::sql::PageCount::new(skip, count_limit, rows.first().map(|r| r.id.as_str()));
                let mut query = sqlx::QueryBuilder::<$db>::new("");
                count.push_query(&mut query, &source, $order);
                let counted: i64 =
                    query.build_query_scalar().fetch_one(&$self.pool).await.map_err(StoreError::from_sqlx)?;
                count.total(counted)
            };
            (rows, total)
        }
    }};
}
pub(crate) use list_page;

/// A page's (rows on it, rows skipped to reach it, rows to count at most); every row and no
/// cap without a page.
pub(crate) fn page_bounds(page: Option<slipway_core::PageRequest>) -> (i64, i64, i64) {
    page.map_or((i64::MAX, 0, i64::MAX), |p| (p.limit(), p.skip(), p.count_limit()))
}

/// How a list counts its total for one page. Past the first page by number, from the page's
/// first row, adding the rows skipped to reach it: counting those again cost more than stepping
/// over them (for page 6,000 of 100,000 sites, 8–12 ms against 6 ms in `sqlite3`). The
/// limit stays where it was (the rows skipped, the page and the horizon), so `total` means the
/// same. A page that came back empty, past the list's end, is counted from the start: its total
/// tells the client where the list ends.
pub(crate) struct PageCount<'a> {
    /// The id of the page's first row, when counting from it.
    from: Option<&'a str>,
    skipped: i64,
    /// The most rows to count (from where counting starts).
    limit: i64,
}

impl<'a> PageCount<'a> {
    /// For a page that skipped `skip` rows, counted up to `count_limit` rows from the list's
    /// start (`PageRequest::count_limit`), whose first row is `first_id`.
    pub fn new(skip: i64, count_limit: i64, first_id: Option<&'a str>) -> PageCount<'a> {
        match first_id.filter(|_| skip > 0) {
            Some(id) => PageCount { from: Some(id), skipped: skip, limit: count_limit.saturating_sub(skip) },
            None => PageCount { from: None, skipped: 0, limit: count_limit },
        }
    }

    /// `SELECT COUNT(*)` of the rows `source` gives (it pushes what follows `FROM`: the table
    /// and its `WHERE …`), from where this count starts (` AND id >= $first`, `<=` newest
    /// first) and up to its limit, pushed onto `q` (a statement of its own, or a subquery).
    pub fn push_query<DB>(
        &self,
        q: &mut sqlx::QueryBuilder<DB>,
        source: impl Fn(&mut sqlx::QueryBuilder<DB>),
        order: IdOrder,
    ) where
        DB: Database,
        for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        q.push("SELECT COUNT(*) FROM (SELECT 1 FROM ");
        source(q);
        if let Some(first) = self.from {
            push_id_bound(q, order, true, first);
        }
        q.push(" LIMIT ").push_bind(self.limit).push(") AS counted");
    }

    /// The total to report for `counted` rows from where counting started.
    pub fn total(&self, counted: i64) -> u64 {
        as_u64(self.skipped.saturating_add(counted))
    }
}

/// A list's row with the page's total beside it (the `page_total` column, a scalar subquery
/// the database runs once for the statement), so that a page and its count are one round trip.
pub(crate) struct Counted<T> {
    pub row: T,
    pub total: i64,
}

impl<'r, R, T> sqlx::FromRow<'r, R> for Counted<T>
where
    R: sqlx::Row,
    T: sqlx::FromRow<'r, R>,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Counted { row: T::from_row(row)?, total: row.try_get("page_total")? })
    }
}

// Columns are declared once per table. A table whose rows the store reads or writes whole
// declares them in its file, as a macro that hands the list to another macro:
//
//     macro_rules! server_fields {
//         ($m:ident!($($args:tt)*)) => { $m! { $($args)*; id, organization_id, name, … } };
//     }
//
// The names are the row type's fields and the table's columns alike, so the statements follow
// from that one list, and a value cannot be bound in another column's place:
//
//     server_fields!(exact_fields!(Server));   // compiles only if `Server` has exactly these
//     concat!("SELECT ", server_fields!(columns!()), " FROM servers WHERE id = $1")
//     server_fields!(insert_into!($db, "servers", server)).build().execute(&self.pool)

/// The column list `a, b, c` as one string literal, for `concat!`. With a prefix
/// (`columns!("s."; a, b)`) each column gets it: `s.a, s.b`.
macro_rules! columns {
    ($prefix:literal; $first:ident $(, $rest:ident)* $(,)?) => {
        concat!($prefix, stringify!($first) $(, ", ", $prefix, stringify!($rest))*)
    };
    (; $($field:ident),+ $(,)?) => {
        $crate::sql::columns!(""; $($field),+)
    };
}
pub(crate) use columns;

/// Compiles only if the struct `$ty` has exactly these fields, so that a field added to a row
/// type cannot be left out of its table's declaration, nor a removed one left in.
/// `exact_fields!(Row, not_stored(a, b))` names the fields that are no column (`#[sqlx(skip)]`).
macro_rules! exact_fields {
    ($ty:ident; $($field:ident),+ $(,)?) => {
        const _: fn($ty) -> $ty = |row| $ty { $($field: row.$field),+ };
    };
    ($ty:ident, not_stored($($skip:ident),+); $($field:ident),+ $(,)?) => {
        const _: fn($ty) -> $ty = |row| $ty { $($field: row.$field,)+ $($skip: row.$skip),+ };
    };
}
pub(crate) use exact_fields;

/// `INSERT INTO $table (<fields>) VALUES (<row.field, bound, for each field>)` as a
/// `QueryBuilder`, which the caller may extend (`ON CONFLICT …`) before building it. Options,
/// after the row:
///
/// - `value = m`: `m!(values, row, field)` pushes each value instead, so that a column can be
///   computed in SQL (`site_value!`); it ends with `insert_into!(@value _, values, row, field)`
///   for the fields it leaves as they are.
/// - `extra(column = sql("…"), column = bind(expr), …)`: columns the row type does not have,
///   set to SQL text or to a bound value, after the fields.
macro_rules! insert_into {
    (
        @build $db:ty, $table:literal, $row:expr, $value:tt, [$($column:ident = $how:ident($($v:tt)*)),*];
        $($field:ident),+
    ) => {{
        let row = $row;
        let mut insert = ::sqlx::QueryBuilder::<$db>::new(concat!(
            "INSERT INTO ", $table, " (", $crate::sql::columns!(; $($field),+ $(, $column)*), ") VALUES ("
        ));
        let mut values = insert.separated(", ");
        $( $crate::sql::insert_into!(@value $value, values, row, $field); )+
        $( $crate::sql::insert_into!(@extra values, $how($($v)*)); )*
        insert.push(")");
        insert
    }};
    (@value _, $values:ident, $row:ident, $field:ident) => {
        $values.push_bind(&$row.$field);
    };
    (@value $value:ident, $values:ident, $row:ident, $field:ident) => {
        $value!($values, $row, $field);
    };
    (@extra $values:ident, sql($sql:literal)) => {
        $values.push($sql);
    };
    (@extra $values:ident, bind($bind:expr)) => {
        $values.push_bind($bind);
    };
    ($db:ty, $table:literal, $row:expr; $($field:ident),+ $(,)?) => {
        $crate::sql::insert_into!(@build $db, $table, $row, _, []; $($field),+)
    };
    ($db:ty, $table:literal, $row:expr, value = $value:ident; $($field:ident),+ $(,)?) => {
        $crate::sql::insert_into!(@build $db, $table, $row, $value, []; $($field),+)
    };
    (
        $db:ty, $table:literal, $row:expr, extra($($column:ident = $how:ident($($v:tt)*)),+ $(,)?);
        $($field:ident),+ $(,)?
    ) => {
        $crate::sql::insert_into!(@build $db, $table, $row, _, [$($column = $how($($v)*)),+]; $($field),+)
    };
}
pub(crate) use insert_into;

fn as_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

pub(crate) struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    /// Only where this process makes every write (SQLite); see `cache.rs`.
    cache: Option<ReadCache>,
    /// Wakes the readers of a job's log when it is appended, its worker ends the job or its
    /// deployment changes (`JobStore::job_activity`; see `activity.rs`).
    activity: activity::Activity,
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self { pool, cache: None, activity: Default::default() }
    }

    pub(crate) fn with_read_cache(pool: Pool<DB>) -> Self {
        Self { pool, cache: Some(ReadCache::default()), activity: Default::default() }
    }

    /// Evicts when the returned guard drops, i.e. after the write has committed (or failed):
    /// evicting before the write would let a concurrent read cache the old row again.
    fn evict_after<F: FnOnce(&ReadCache)>(&self, f: F) -> EvictOnDrop<'_, F> {
        EvictOnDrop { cache: self.cache.as_ref(), evict: Some(f) }
    }
}

struct EvictOnDrop<'a, F: FnOnce(&ReadCache)> {
    cache: Option<&'a ReadCache>,
    evict: Option<F>,
}

impl<F: FnOnce(&ReadCache)> Drop for EvictOnDrop<'_, F> {
    fn drop(&mut self) {
        if let (Some(cache), Some(evict)) = (self.cache, self.evict.take()) {
            evict(cache);
        }
    }
}

impl<DB: Database> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("backend", &DB::NAME).finish_non_exhaustive()
    }
}

macro_rules! impl_store {
    ($db:ty, $backend:expr, $migrator:expr) => {
        #[async_trait]
        impl Store for SqlStore<$db> {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn migrate(&self) -> Result<usize, StoreError> {
                let before = applied_count(&self.pool).await?;
                $migrator.run(&self.pool).await?;
                let after = applied_count(&self.pool).await?;
                Ok(after.saturating_sub(before))
            }

            async fn ping(&self) -> Result<(), StoreError> {
                if self.pool.is_closed() {
                    return Err(StoreError::Closed);
                }
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(StoreError::from_sqlx)?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

impl_store!(Sqlite, Backend::Sqlite, SQLITE_MIGRATIONS);
impl_store!(Postgres, Backend::Postgres, POSTGRES_MIGRATIONS);

/// Number of migrations recorded as applied (0 before the first run).
async fn applied_count<DB>(pool: &Pool<DB>) -> Result<usize, StoreError>
where
    DB: Database,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // The table does not exist before the first migration; that counts as zero.
    match sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = true")
        .fetch_one(pool)
        .await
    {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(sqlx::Error::Database(_)) => Ok(0),
        Err(e) => Err(StoreError::from_sqlx(e)),
    }
}
