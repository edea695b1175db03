//! The store conformance suite: every case runs against SQLite and against PostgreSQL, so no
//! behaviour can exist on one backend only. Add a case to `cases` and list it in `conformance!`.

use slipway_store::testing::TestDatabase;

mod cases {
    use std::sync::Arc;

    use slipway_store::testing::TestDatabase;
    use slipway_store::{Backend, Store, StoreError};

    pub async fn migrations_apply_once_and_are_idempotent(db: &TestDatabase) {
        let store = db.connect().await;
        let first = store.migrate().await.unwrap();
        assert!(first >= 1, "a fresh database gets every migration");
        assert_eq!(store.migrate().await.unwrap(), 0, "a second run applies nothing");
        store.ping().await.unwrap();
    }

    pub async fn settings_round_trip_and_overwrite(db: &TestDatabase) {
        let store = db.store().await;
        assert_eq!(store.setting("missing").await.unwrap(), None);
        store.put_setting("k", "v1").await.unwrap();
        assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("v1"));
        store.put_setting("k", "v2 with 'quotes' and ünïcode").await.unwrap();
        assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("v2 with 'quotes' and ünïcode"));
    }

    pub async fn init_setting_keeps_the_first_writer(db: &TestDatabase) {
        let store = db.store().await;
        assert_eq!(store.init_setting("instance", "first").await.unwrap(), "first");
        assert_eq!(store.init_setting("instance", "second").await.unwrap(), "first");
        // Racing writers all agree on one value.
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store: Arc<dyn Store> = store.clone();
                tokio::spawn(async move { store.init_setting("raced", &format!("v{i}")).await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for h in handles {
            seen.push(h.await.unwrap());
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "all racers see the same winner: {seen:?}");
    }

    pub async fn closed_store_reports_not_ready(db: &TestDatabase) {
        let store = db.store().await;
        store.close().await;
        assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    }

    pub async fn reports_its_backend(db: &TestDatabase) {
        let store = db.store().await;
        let expected = match db {
            TestDatabase::Sqlite { .. } => Backend::Sqlite,
            TestDatabase::Postgres { .. } => Backend::Postgres,
        };
        assert_eq!(store.backend(), expected);
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::cases::$case(&super::TestDatabase::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $case() { super::cases::$case(&super::TestDatabase::postgres().await).await })*
        }
    };
}

conformance!(
    migrations_apply_once_and_are_idempotent,
    settings_round_trip_and_overwrite,
    init_setting_keeps_the_first_writer,
    closed_store_reports_not_ready,
    reports_its_backend,
);

#[tokio::test]
async fn unknown_url_schemes_are_refused_with_a_clear_error() {
    let err = slipway_store::connect("mysql://root:pw@localhost/db", &Default::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("use sqlite://PATH or postgres://"), "{text}");
    assert!(!text.contains("pw@"), "the password must not appear: {text}");
}
