//! The store conformance suite: every case runs against SQLite and against PostgreSQL, so no
//! behaviour can exist on one backend only. Add a case to `cases` and list it in `conformance!`.

use slipway_store::testing::TestDatabase;

mod cases {
    use slipway_core::site_input::ProjectType;
    use slipway_core::{BackupStatus, DeliveryStatus, InstallStatus, RunStatus, ServerStatus};
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
        assert!(!store.swap_setting("k", "stale", "v3").await.unwrap(), "only from the expected value");
        assert!(store.swap_setting("k", "v2 with 'quotes' and ünïcode", "v3").await.unwrap());
        assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("v3"));
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

    /// On PostgreSQL the first reader of job activity starts the store's listener, which wakes
    /// every reader once it has connected: waits for that, so that it is not taken for (or does
    /// not hide the absence of) a write's wake-up.
    async fn listening(store: &dyn Store) {
        if store.backend() == Backend::Postgres {
            let mut first = store.job_activity("listening-probe");
            tokio::time::timeout(std::time::Duration::from_secs(10), first.changed())
                .await
                .expect("the listener connects within 10 s")
                .unwrap();
        }
    }

    pub async fn closed_store_reports_not_ready(db: &TestDatabase) {
        let store = db.store().await;
        store.close().await;
        assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    }

    use slipway_core::PageRequest;
    use slipway_core::time::now;
    use slipway_store::testing::server;
    use slipway_store::*;

    fn new_user(email: &str) -> NewUser {
        NewUser {
            id: slipway_core::new_id(),
            email: email.to_string(),
            email_normalized: email.to_lowercase(),
            name: "Test User".into(),
            password_hash: "$argon2id$placeholder".into(),
        }
    }

    fn token_for(user_id: &str, hash: &str) -> AccessToken {
        AccessToken {
            id: slipway_core::new_id(),
            kind: "personal".into(),
            user_id: Some(user_id.into()),
            organization_id: None,
            name: "ci".into(),
            token_hash: hash.into(),
            abilities: r#"["*"]"#.into(),
            server_ids: None,
            site_ids: None,
            allowed_ips: None,
            expires_at: None,
            created_at: now(),
            created_via: "api".into(),
            created_by: None,
            last_used_at: None,
            last_used_ip: None,
            revoked_at: None,
        }
    }

    const PAGE: PageRequest = PageRequest::new(1, 15);

    pub async fn users_are_unique_by_normalized_email(db: &TestDatabase) {
        let store = db.store().await;
        let ana = new_user("Ana@Example.com");
        store.create_user_with_organization(&ana, &slipway_core::new_id(), "Ana's org", "owner").await.unwrap();
        assert_eq!(store.count_users().await.unwrap(), 1);
        let found = store.user_by_email("ana@example.com").await.unwrap().unwrap();
        assert_eq!(
            (found.id.as_str(), found.email.as_str(), found.totp_enabled),
            (ana.id.as_str(), "Ana@Example.com", false)
        );
        let err = store.create_user(&new_user("ANA@example.com")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // A failed multi-row creation leaves nothing behind.
        let org = slipway_core::new_id();
        assert!(store.create_user_with_organization(&new_user("ana@example.com"), &org, "dup", "owner").await.is_err());
        assert!(store.organization(&org).await.unwrap().is_none());
        assert_eq!(store.count_users().await.unwrap(), 1);
    }

    pub async fn organizations_keep_at_least_one_owner(db: &TestDatabase) {
        let store = db.store().await;
        let (a, b) = (new_user("a@example.com"), new_user("b@example.com"));
        let org = slipway_core::new_id();
        store.create_user_with_organization(&a, &org, "Acme", "owner").await.unwrap();
        store.create_user(&b).await.unwrap();
        store.add_member(&org, &b.id, "viewer").await.unwrap();
        assert!(matches!(store.add_member(&org, &b.id, "admin").await, Err(StoreError::Conflict(_))));
        assert_eq!(store.role_of(&org, &b.id).await.unwrap().as_deref(), Some("viewer"));
        let (members, total) = store.members(&org, PAGE).await.unwrap();
        assert_eq!((members.len(), total), (2, 2));
        let (orgs, total) = store.organizations_of(&b.id, PAGE).await.unwrap();
        assert_eq!((orgs[0].name.as_str(), orgs[0].role.as_str(), total), ("Acme", "viewer", 1));
        let all = store.memberships_of(&b.id).await.unwrap();
        assert_eq!((all.len(), all[0].id.as_str(), all[0].role.as_str()), (1, org.as_str(), "viewer"));
        assert!(store.memberships_of("nobody").await.unwrap().is_empty());

        assert!(matches!(store.change_member_role(&org, &a.id, "admin").await, Err(StoreError::LastOwner)));
        assert!(matches!(store.remove_member(&org, &a.id).await, Err(StoreError::LastOwner)));
        assert!(store.change_member_role(&org, &b.id, "owner").await.unwrap());
        assert!(store.change_member_role(&org, &a.id, "admin").await.unwrap(), "another owner exists now");
        assert!(!store.remove_member(&org, "nobody").await.unwrap());
        assert!(store.remove_member(&org, &a.id).await.unwrap());
        assert_eq!(store.role_of(&org, &a.id).await.unwrap(), None);

        let named = store.organizations_named("Acme").await.unwrap();
        assert_eq!(named.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), [org.as_str()]);
        assert!(store.organizations_named("acme").await.unwrap().is_empty(), "names match exactly");
        store.update_organization(&org, Some("Acme Ltd"), Some(Some(86_400))).await.unwrap();
        let o = store.organization(&org).await.unwrap().unwrap();
        assert_eq!((o.name.as_str(), o.max_token_lifetime_seconds), ("Acme Ltd", Some(86_400)));
        store.update_organization(&org, None, Some(None)).await.unwrap();
        assert_eq!(store.organization(&org).await.unwrap().unwrap().max_token_lifetime_seconds, None);
    }

    pub async fn concurrent_owner_demotions_leave_one_owner(db: &TestDatabase) {
        let store = db.store().await;
        let org = slipway_core::new_id();
        let first = new_user("o1@example.com");
        store.create_user_with_organization(&first, &org, "Race", "owner").await.unwrap();
        let mut owners = vec![first.id.clone()];
        for i in 2..=4 {
            let u = new_user(&format!("o{i}@example.com"));
            store.create_user(&u).await.unwrap();
            store.add_member(&org, &u.id, "owner").await.unwrap();
            owners.push(u.id);
        }
        let tasks: Vec<_> = owners
            .iter()
            .map(|id| {
                let (store, org, id) = (store.clone(), org.clone(), id.clone());
                tokio::spawn(async move { store.change_member_role(&org, &id, "member").await })
            })
            .collect();
        let mut demoted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(true) => demoted += 1,
                Ok(false) => panic!("member vanished"),
                Err(StoreError::LastOwner) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(demoted, 3, "exactly one owner must remain");
    }

    pub async fn tokens_expiring_soon_are_found_by_window(db: &TestDatabase) {
        let store = db.store().await;
        let org = slipway_core::new_id();
        let user = new_user("x@example.com");
        store.create_user_with_organization(&user, &org, "X", "owner").await.unwrap();
        let at = now();
        let days = |n: i64| Some(at + chrono::Duration::days(n));
        let make = |hash: &str, organization: Option<&str>, expires_at| AccessToken {
            organization_id: organization.map(str::to_string),
            expires_at,
            ..token_for(&user.id, hash)
        };
        let soon = make("h-soon", Some(&org), days(3));
        let later = make("h-later", Some(&org), days(30));
        let personal = make("h-personal", None, days(3));
        let gone = make("h-gone", Some(&org), days(2));
        for t in [&soon, &later, &personal, &gone] {
            store.insert_token(t).await.unwrap();
        }
        store.revoke_token(&gone.id, at).await.unwrap();
        let found = store.tokens_expiring(at, at + chrono::Duration::days(7), None, 10).await.unwrap();
        assert_eq!(found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec![soon.id.as_str()]);
        assert!(
            store.tokens_expiring(at, at + chrono::Duration::days(7), Some(&soon.id), 10).await.unwrap().is_empty()
        );
    }

    pub async fn tokens_are_found_by_hash_listed_edited_revoked_and_rotated(db: &TestDatabase) {
        let store = db.store().await;
        let user = new_user("t@example.com");
        store.create_user(&user).await.unwrap();
        let t = token_for(&user.id, "hash-1");
        store.insert_token(&t).await.unwrap();
        assert_eq!(store.token_by_hash("hash-1").await.unwrap().unwrap().id, t.id);
        assert!(store.token_by_hash("hash-2").await.unwrap().is_none());

        let changes = TokenChanges {
            name: Some("renamed".into()),
            server_ids: Some(Some(r#"["s1"]"#.into())),
            expires_at: Some(Some(now())),
            ..Default::default()
        };
        assert!(store.update_token(&t.id, &changes).await.unwrap());
        let edited = store.token(&t.id).await.unwrap().unwrap();
        assert_eq!(
            (edited.name.as_str(), edited.server_ids.as_deref(), edited.abilities.as_str()),
            ("renamed", Some(r#"["s1"]"#), r#"["*"]"#)
        );
        assert!(edited.expires_at.is_some());
        let clear = TokenChanges { server_ids: Some(None), expires_at: Some(None), ..Default::default() };
        store.update_token(&t.id, &clear).await.unwrap();
        let cleared = store.token(&t.id).await.unwrap().unwrap();
        assert_eq!((cleared.server_ids, cleared.expires_at), (None, None));

        store.touch_token(&t.id, now(), Some("127.0.0.1")).await.unwrap();
        assert_eq!(store.token(&t.id).await.unwrap().unwrap().last_used_ip.as_deref(), Some("127.0.0.1"));

        let next = token_for(&user.id, "hash-2");
        assert!(store.rotate_token(&t.id, &next, now()).await.unwrap());
        assert!(store.token(&t.id).await.unwrap().unwrap().revoked_at.is_some());
        let again = token_for(&user.id, "hash-3");
        assert!(!store.rotate_token(&t.id, &again, now()).await.unwrap(), "a revoked token cannot be rotated twice");
        assert!(store.token_by_hash("hash-3").await.unwrap().is_none(), "nothing written by the refused rotation");

        let (listed, total) = store.tokens_of_user(&user.id, PAGE).await.unwrap();
        assert_eq!((listed.len(), total, listed[0].id.as_str()), (1, 1, next.id.as_str()));
        assert!(store.revoke_token(&next.id, now()).await.unwrap());
        assert!(!store.revoke_token(&next.id, now()).await.unwrap());
        assert_eq!(store.tokens_of_user(&user.id, PAGE).await.unwrap().1, 0);
        assert!(!store.update_token(&next.id, &changes).await.unwrap(), "revoked tokens are not edited");
    }

    pub async fn refresh_tokens_are_single_use(db: &TestDatabase) {
        let store = db.store().await;
        let user = new_user("r@example.com");
        store.create_user(&user).await.unwrap();
        let t = token_for(&user.id, "h");
        store.insert_token(&t).await.unwrap();
        let refresh = |hash: &str, family: &str| RefreshToken {
            id: slipway_core::new_id(),
            family_id: family.into(),
            token_hash: hash.into(),
            expires_at: now(),
            used_at: None,
            created_at: now(),
        };
        let family = slipway_core::new_id();
        let first = refresh("r1", &family);
        store.create_token_family(&family, &t.id, &first).await.unwrap();
        assert_eq!(store.active_token_family(&family).await.unwrap().as_deref(), Some(t.id.as_str()));
        let second = refresh("r2", &family);
        assert!(store.use_refresh_token(&first.id, now(), &second).await.unwrap());
        assert!(!store.use_refresh_token(&first.id, now(), &refresh("r3", &family)).await.unwrap());
        assert!(store.refresh_token_by_hash("r3").await.unwrap().is_none());
        assert!(store.refresh_token_by_hash("r1").await.unwrap().unwrap().used_at.is_some());
        store.revoke_token_family(&family, now()).await.unwrap();
        assert_eq!(store.active_token_family(&family).await.unwrap(), None);
        assert_eq!(store.token_family_parent(&family).await.unwrap().as_deref(), Some(t.id.as_str()), "revoked too");
        assert_eq!(store.token_family_parent("no-such-family").await.unwrap(), None);
    }

    pub async fn rate_limit_windows_count_and_expire(db: &TestDatabase) {
        let store = db.store().await;
        for expected in 1..=3 {
            assert_eq!(store.rate_limit_hit("token:x", 1000, 1060).await.unwrap(), expected);
        }
        assert_eq!(store.rate_limit_hit("token:x", 1060, 1120).await.unwrap(), 1, "a new window starts at 1");
        assert_eq!(store.rate_limit_hit("token:y", 1000, 1060).await.unwrap(), 1, "keys are independent");
        assert_eq!(store.prune(&PruneRule::RateLimits { now_unix: 1061 }, 100).await.unwrap(), 2);
        assert_eq!(store.rate_limit_hit("token:x", 1000, 1060).await.unwrap(), 1);
    }

    pub async fn idempotency_keys_replay_mismatch_and_expire(db: &TestDatabase) {
        let store = db.store().await;
        let old = now() - chrono::Duration::hours(25);
        let t = now();
        let cutoff = t - chrono::Duration::hours(24);
        let stale = t - chrono::Duration::seconds(20);
        assert_eq!(store.idempotency_begin("p", "k", "h1", t, cutoff, stale).await.unwrap(), IdempotencyBegin::Started);
        assert_eq!(
            store.idempotency_begin("p", "k", "h1", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::InProgress
        );
        assert_eq!(
            store.idempotency_begin("p", "k", "h2", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Mismatch
        );
        store.idempotency_finish("p", "k", 201, Some("application/json"), b"{\"a\":1}").await.unwrap();
        assert_eq!(
            store.idempotency_begin("p", "k", "h1", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Replay {
                status: 201,
                content_type: Some("application/json".into()),
                body: b"{\"a\":1}".to_vec()
            }
        );
        assert_eq!(
            store.idempotency_begin("other", "k", "h1", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Started,
            "keys are per principal"
        );
        store.idempotency_abandon("other", "k").await.unwrap();
        assert_eq!(
            store.idempotency_begin("other", "k", "h9", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Started,
            "abandoned keys are free"
        );
        assert_eq!(
            store.idempotency_begin("q", "k", "h", old, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Started
        );
        assert_eq!(
            store.idempotency_begin("q", "k", "other", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Started,
            "expired after 24 h"
        );
        // A request in progress whose holder stopped refreshing it (killed) frees its key; one
        // that refreshes keeps it.
        let earlier = t - chrono::Duration::seconds(60);
        assert_eq!(
            store.idempotency_begin("s", "k", "h", earlier, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Started
        );
        assert_eq!(
            store.idempotency_begin("s", "k", "h", t, cutoff, stale).await.unwrap(),
            IdempotencyBegin::Started,
            "a holder silent for a minute is gone"
        );
        store.idempotency_heartbeat("s", "k", t).await.unwrap();
        let later = t + chrono::Duration::seconds(10);
        assert_eq!(
            store.idempotency_begin("s", "k", "h", later, cutoff, later - chrono::Duration::seconds(20)).await.unwrap(),
            IdempotencyBegin::InProgress
        );
        let rule = PruneRule::IdempotencyKeys { before: t + chrono::Duration::seconds(1) };
        assert!(store.prune(&rule, 100).await.unwrap() >= 3);
    }

    /// A list's total is counted only so far past the page asked for: a long list's first page
    /// does not read the whole list, while a page near its end still gets the exact total.
    pub async fn list_totals_are_counted_up_to_the_horizon(db: &TestDatabase) {
        let store = db.store().await;
        let many = usize::try_from(slipway_core::COUNT_HORIZON).unwrap() + 20;
        let mut ids: Vec<String> = (0..many).map(|_| slipway_core::new_id()).collect();
        for batch in ids.chunks(50) {
            let mut inserts = tokio::task::JoinSet::new();
            for id in batch {
                let (store, id) = (store.clone(), id.clone());
                inserts.spawn(async move {
                    let event = AuditEvent {
                        id,
                        occurred_at: now(),
                        actor_user_id: Some("u1".into()),
                        token_id: None,
                        organization_id: Some("o1".into()),
                        action: "site.deploy".into(),
                        method: None,
                        route: None,
                        resource_id: None,
                        status: Some(202),
                        outcome: "success".into(),
                        client_ip: None,
                        user_agent: None,
                        request_id: None,
                        detail: None,
                    };
                    store.insert_audit_event(&event).await.unwrap();
                });
            }
            while inserts.join_next().await.is_some() {}
        }
        let visible = AuditFilter { organization_ids: vec!["o1".into()], ..Default::default() };
        let first = PageRequest::new(1, 15);
        let (rows, counted) = store.audit_events(&visible, first).await.unwrap();
        assert_eq!(rows.len(), 15);
        assert_eq!(counted, u64::try_from(first.count_limit()).unwrap(), "counting stopped at the page's limit");
        let meta = slipway_core::PageMeta::new(first, rows.len(), counted);
        assert_eq!((meta.total, meta.last_page, meta.next_page()), (None, None, Some(2)));
        // Near the end the horizon covers the rest: the total is exact.
        let pages = u32::try_from(many.div_ceil(15)).unwrap();
        let many_u64 = u64::try_from(many).unwrap();
        let last = PageRequest::new(pages, 15);
        let (rows, counted) = store.audit_events(&visible, last).await.unwrap();
        assert_eq!((rows.len(), counted), (15, many_u64));
        ids.sort();
        assert_eq!(rows.last().unwrap().id, ids[0], "the oldest event ends the list");
        let meta = slipway_core::PageMeta::new(last, rows.len(), counted);
        assert_eq!((meta.total, meta.last_page, meta.next_page()), (Some(many_u64), Some(pages), None));
        // The same page past a cursor (the last id of the page before, newest first) reads and counts
        // only from there, and says the same.
        let newest_first: Vec<&String> = ids.iter().rev().collect();
        let cursor = slipway_core::SeekId::parse(newest_first[(many.div_ceil(15) - 1) * 15 - 1]);
        let seeking = PageRequest { seek: cursor, ..last };
        let (by_cursor, counted) = store.audit_events(&visible, seeking).await.unwrap();
        assert_eq!((by_cursor.len(), counted), (15, 15));
        assert_eq!(by_cursor.iter().map(|e| &e.id).collect::<Vec<_>>(), rows.iter().map(|e| &e.id).collect::<Vec<_>>());
        let meta = slipway_core::PageMeta::new(seeking, by_cursor.len(), counted);
        assert_eq!(
            (meta.from, meta.total, meta.last_page, meta.next_page()),
            (Some((u64::from(pages) - 1) * 15 + 1), Some(many_u64), Some(pages), None)
        );

        // A first page is counted in its own statement (servers, sites, deployments): capped
        // at the same horizon, exact below it.
        let org = slipway_core::new_id();
        store.create_user_with_organization(&new_user("horizon@example.com"), &org, "Many", "owner").await.unwrap();
        let mut inserts = tokio::task::JoinSet::new();
        for n in 0..many {
            let (store, s) = (store.clone(), server(&org, &format!("web-{n}")));
            inserts.spawn(async move { store.insert_server(&s).await.unwrap() });
            if inserts.len() == 50 {
                inserts.join_next().await;
            }
        }
        while inserts.join_next().await.is_some() {}
        let orgs = [org];
        let (rows, counted) = store.servers_of(&orgs, None, first).await.unwrap();
        assert_eq!((rows.len(), counted), (15, u64::try_from(first.count_limit()).unwrap()));
        let (rows, counted) = store.servers_of(&orgs, None, PageRequest::new(1, 100)).await.unwrap();
        // A page of 100 sees further: the whole list is within the horizon, counted exactly.
        assert_eq!((rows.len(), counted), (100, many_u64));
        let (rows, counted) = store.servers_of(&orgs, None, last).await.unwrap();
        assert_eq!((rows.len(), counted), (15, u64::try_from(many).unwrap()), "counted from the page near the end");
    }

    pub async fn audit_events_filter_by_visibility_and_fields(db: &TestDatabase) {
        let store = db.store().await;
        let event = |actor: &str, org: Option<&str>, action: &str| AuditEvent {
            id: slipway_core::new_id(),
            occurred_at: now(),
            actor_user_id: Some(actor.into()),
            token_id: Some("tok".into()),
            organization_id: org.map(Into::into),
            action: action.into(),
            method: Some("POST".into()),
            route: Some("/api/v1/tokens".into()),
            resource_id: None,
            status: Some(201),
            outcome: "success".into(),
            client_ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: Some("r".into()),
            detail: None,
        };
        store.insert_audit_event(&event("u1", None, "login")).await.unwrap();
        store.insert_audit_event(&event("u2", Some("o1"), "token.create")).await.unwrap();
        store.insert_audit_event(&event("u2", Some("o2"), "token.create")).await.unwrap();
        let own = AuditFilter { own_user_id: Some("u1".into()), ..Default::default() };
        assert_eq!(store.audit_events(&own, PAGE).await.unwrap().1, 1);
        let admin =
            AuditFilter { own_user_id: Some("u1".into()), organization_ids: vec!["o1".into()], ..Default::default() };
        let (rows, total) = store.audit_events(&admin, PAGE).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows[0].action, "token.create", "newest first");
        // The caller's own event in an organisation they administer is seen, once.
        store.insert_audit_event(&event("u1", Some("o1"), "server.create")).await.unwrap();
        let (rows, total) = store.audit_events(&admin, PAGE).await.unwrap();
        let actions: Vec<&str> = rows.iter().map(|e| e.action.as_str()).collect();
        assert_eq!((total, actions), (3, vec!["server.create", "token.create", "login"]), "newest first, once each");
        // Pages after the first, by number, across both branches (these find ids first).
        for (number, action) in [(2, "token.create"), (3, "login")] {
            let (rows, total) = store.audit_events(&admin, PageRequest::new(number, 1)).await.unwrap();
            let actions: Vec<&str> = rows.iter().map(|e| e.action.as_str()).collect();
            assert_eq!((actions, total), (vec![action], 3), "page {number} of one");
        }
        let (past_end, total) = store.audit_events(&admin, PageRequest::new(4, 1)).await.unwrap();
        assert_eq!((past_end.len(), total), (0, 3));
        let own_elsewhere =
            AuditFilter { own_user_id: Some("u1".into()), organization_ids: vec!["o2".into()], ..Default::default() };
        assert_eq!(store.audit_events(&own_elsewhere, PAGE).await.unwrap().1, 3, "their own events and o2's");
        let filtered = AuditFilter { action: Some("login".into()), ..admin.clone() };
        assert_eq!(store.audit_events(&filtered, PAGE).await.unwrap().1, 1);
        // An action filter finds the action's sub-events, and only those.
        let denied = AuditEvent { outcome: "failure".into(), ..event("u1", None, "login.failed") };
        store.insert_audit_event(&denied).await.unwrap();
        store.insert_audit_event(&event("u1", None, "loginX.failed")).await.unwrap();
        store.insert_audit_event(&event("u1", None, "login_failed")).await.unwrap();
        let (rows, total) = store.audit_events(&filtered, PAGE).await.unwrap();
        assert_eq!(total, 2, "{rows:?}");
        let failed = AuditFilter { outcome: Some("failure".into()), ..filtered.clone() };
        assert_eq!(store.audit_events(&failed, PAGE).await.unwrap().0[0].action, "login.failed");
        assert_eq!(store.audit_events(&failed, PAGE).await.unwrap().1, 1);
        let exact = AuditFilter { action: Some("login.failed".into()), ..admin.clone() };
        assert_eq!(store.audit_events(&exact, PAGE).await.unwrap().1, 1);
        assert_eq!(store.audit_events(&AuditFilter::default(), PAGE).await.unwrap().1, 0, "no visibility, no rows");
        let future = AuditFilter { from: Some(now() + chrono::Duration::hours(1)), ..admin };
        assert_eq!(store.audit_events(&future, PAGE).await.unwrap().1, 0);
    }

    /// The reads on every authenticated request may be cached (SQLite); each must still see
    /// every write that changes it on the very next read.
    pub async fn hot_reads_see_every_write_at_once(db: &TestDatabase) {
        let store = db.store().await;
        let user = new_user("hot@example.com");
        let org = slipway_core::new_id();
        store.create_user_with_organization(&user, &org, "Hot", "owner").await.unwrap();
        let t = token_for(&user.id, "hot-hash");
        store.insert_token(&t).await.unwrap();

        for _ in 0..2 {
            assert!(store.token_by_hash("hot-hash").await.unwrap().unwrap().revoked_at.is_none());
        }
        let narrowed = TokenChanges { abilities: Some(r#"["site:read"]"#.into()), ..Default::default() };
        store.update_token(&t.id, &narrowed).await.unwrap();
        assert_eq!(store.token_by_hash("hot-hash").await.unwrap().unwrap().abilities, r#"["site:read"]"#);
        store.revoke_token(&t.id, now()).await.unwrap();
        assert!(store.token_by_hash("hot-hash").await.unwrap().unwrap().revoked_at.is_some());

        let r = token_for(&user.id, "rot-hash");
        store.insert_token(&r).await.unwrap();
        store.token_by_hash("rot-hash").await.unwrap();
        store.rotate_token(&r.id, &token_for(&user.id, "rot-hash-2"), now()).await.unwrap();
        assert!(store.token_by_hash("rot-hash").await.unwrap().unwrap().revoked_at.is_some());

        // A new password ends the user's other dashboard sessions, and only those.
        let session = |hash: &str| AccessToken { created_via: "dashboard".into(), ..token_for(&user.id, hash) };
        let (here, elsewhere, cli) = (session("here-hash"), session("elsewhere-hash"), token_for(&user.id, "cli-hash"));
        for t in [&here, &elsewhere, &cli] {
            store.insert_token(t).await.unwrap();
            store.token_by_hash(&t.token_hash).await.unwrap();
        }
        let (found, ended) = store.change_password(&user.id, "new-hash", Some(&here.id), now()).await.unwrap();
        assert_eq!((found, ended), (true, vec![elsewhere.id.clone()]));
        assert_eq!(store.user(&user.id).await.unwrap().unwrap().password_hash, "new-hash");
        assert!(
            store.token_by_hash("elsewhere-hash").await.unwrap().unwrap().revoked_at.is_some(),
            "evicted from any cache"
        );
        assert!(store.token_by_hash("here-hash").await.unwrap().unwrap().revoked_at.is_none());
        assert!(store.token_by_hash("cli-hash").await.unwrap().unwrap().revoked_at.is_none());
        assert_eq!(store.change_password("01NOSUCHUSER", "x", None, now()).await.unwrap(), (false, vec![]));

        assert!(!store.user(&user.id).await.unwrap().unwrap().totp_enabled);
        store.set_user_two_factor(&user.id, Some(b"sealed"), true, Some("[]")).await.unwrap();
        assert!(store.user(&user.id).await.unwrap().unwrap().totp_enabled);
        store.record_totp_counter(&user.id, 7).await.unwrap();
        assert_eq!(store.user(&user.id).await.unwrap().unwrap().totp_last_counter, Some(7));

        let other = new_user("hot2@example.com");
        store.create_user(&other).await.unwrap();
        assert!(store.memberships_of(&other.id).await.unwrap().is_empty());
        store.add_member(&org, &other.id, "viewer").await.unwrap();
        assert_eq!(store.memberships_of(&other.id).await.unwrap()[0].role, "viewer");
        store.change_member_role(&org, &other.id, "admin").await.unwrap();
        assert_eq!(store.memberships_of(&other.id).await.unwrap()[0].role, "admin");
        store.update_organization(&org, Some("Renamed"), None).await.unwrap();
        assert_eq!(store.memberships_of(&other.id).await.unwrap()[0].name, "Renamed");
        store.remove_member(&org, &other.id).await.unwrap();
        assert!(store.memberships_of(&other.id).await.unwrap().is_empty());
        let new_org = slipway_core::new_id();
        store.create_organization(&new_org, "Second", &other.id).await.unwrap();
        assert_eq!(store.memberships_of(&other.id).await.unwrap()[0].role, "owner");
    }

    fn job(resource: Option<&str>, idempotent: bool) -> NewJob {
        NewJob {
            id: slipway_core::new_id(),
            kind: "test.echo".into(),
            payload: "{}".into(),
            organization_id: None,
            resource_key: resource.map(Into::into),
            server_key: None,
            idempotent,
            max_attempts: 3,
            run_at: now() - chrono::Duration::seconds(1),
        }
    }

    fn lease() -> slipway_core::time::Timestamp {
        now() + chrono::Duration::seconds(60)
    }

    pub async fn jobs_are_claimed_in_order_one_per_resource(db: &TestDatabase) {
        let store = db.store().await;
        let (a1, a2, b1) = (job(Some("server:a"), true), job(Some("server:a"), true), job(Some("server:b"), true));
        for j in [&a1, &a2, &b1] {
            store.enqueue_job(j).await.unwrap();
        }
        let first = store.claim_job("w1", now(), lease()).await.unwrap().unwrap();
        assert_eq!((first.id.as_str(), first.status.as_str(), first.attempts), (a1.id.as_str(), "running", 1));
        assert_eq!(first.lease_owner.as_deref(), Some("w1"));
        let second = store.claim_job("w2", now(), lease()).await.unwrap().unwrap();
        assert_eq!(second.id, b1.id, "server:a is busy, so its second job waits");
        assert!(store.claim_job("w2", now(), lease()).await.unwrap().is_none());
        assert!(store.finish_job(&a1.id, "w1", &JobEnd::Succeeded, now()).await.unwrap());
        assert_eq!(store.claim_job("w2", now(), lease()).await.unwrap().unwrap().id, a2.id);
        let done = store.job(&a1.id).await.unwrap().unwrap();
        assert_eq!((done.status.as_str(), done.lease_owner), ("succeeded", None));
        assert!(done.finished_at.is_some() && done.started_at.is_some());
        assert_eq!(store.jobs_for_resource("server:a", PAGE).await.unwrap().1, 2);
    }

    pub async fn a_busy_server_leaves_slots_for_the_others(db: &TestDatabase) {
        let store = db.store().await;
        // Three sites of server a and one of server b, queued in that order.
        let on =
            |server: &str, site: &str| NewJob { server_key: Some(format!("server:{server}")), ..job(Some(site), true) };
        let (a1, a2, a3, b1) = (on("a", "site:1"), on("a", "site:2"), on("a", "site:3"), on("b", "site:4"));
        for j in [&a1, &a2, &a3, &b1] {
            store.enqueue_job(j).await.unwrap();
        }
        let claim = |worker: &'static str| {
            let store = store.clone();
            async move { store.claim_job_within(worker, now(), lease(), 2).await.unwrap().map(|j| j.id) }
        };
        assert_eq!(claim("w1").await, Some(a1.id.clone()));
        assert_eq!(claim("w2").await, Some(a2.id.clone()));
        assert_eq!(claim("w1").await, Some(b1.id.clone()), "server a has two running: b's job goes first");
        assert_eq!(claim("w2").await, None, "a's third waits for one of its two");
        assert!(store.finish_job(&a1.id, "w1", &JobEnd::Succeeded, now()).await.unwrap());
        assert_eq!(claim("w2").await, Some(a3.id.clone()));
        // Without a cap (`claim_job`), only the resource lock holds a job back.
        let a4 = on("a", "site:5");
        store.enqueue_job(&a4).await.unwrap();
        assert_eq!(store.claim_job("w3", now(), lease()).await.unwrap().map(|j| j.id), Some(a4.id.clone()));
        assert_eq!(store.job(&a4.id).await.unwrap().unwrap().server_key.as_deref(), Some("server:a"));
    }

    pub async fn log_lines_and_job_ends_wake_whoever_follows_them(db: &TestDatabase) {
        let store = db.store().await;
        let (j, other) = (job(None, false), job(None, false));
        store.enqueue_job(&j).await.unwrap();
        store.enqueue_job(&other).await.unwrap();
        listening(store.as_ref()).await;
        let mut activity = store.job_activity(&j.id);
        let (mut also, bystander) = (store.job_activity(&j.id), store.job_activity(&other.id));
        assert!(!activity.has_changed().unwrap(), "nothing written yet");
        store.claim_job("w1", now(), lease()).await.unwrap().unwrap();
        store.append_job_log(&j.id, 1, &[NewLogLine::now("stdout", "cloning")]).await.unwrap();
        assert!(activity.has_changed().unwrap(), "a log line wakes the reader");
        assert!(also.has_changed().unwrap(), "and every reader of that job");
        activity.mark_unchanged();
        store.finish_job(&j.id, "w1", &JobEnd::Succeeded, now()).await.unwrap();
        assert!(activity.has_changed().unwrap(), "the job's end wakes the reader");
        assert!(!bystander.has_changed().unwrap(), "another job's reader sleeps on");
        // A reader that left takes its channel with it; the job's next write wakes the others.
        drop(activity);
        also.mark_unchanged();
        store.append_job_log(&j.id, 2, &[NewLogLine::now("stdout", "late")]).await.unwrap();
        assert!(also.has_changed().unwrap());
        drop(also);
        store.append_job_log(&j.id, 3, &[NewLogLine::now("stdout", "unread")]).await.unwrap();
        assert_eq!(*store.job_activity(&j.id).borrow(), 0, "a new reader starts afresh");
    }

    pub async fn concurrent_workers_claim_each_job_exactly_once(db: &TestDatabase) {
        let store = db.store().await;
        for i in 0..24 {
            store.enqueue_job(&job(Some(&format!("server:{i}")), true)).await.unwrap();
        }
        for _ in 0..6 {
            store.enqueue_job(&job(Some("server:shared"), true)).await.unwrap();
        }
        let workers: Vec<_> = (0..6)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Some(j) = store.claim_job(&format!("w{w}"), now(), lease()).await.unwrap() {
                        mine.push((j.id, j.resource_key));
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        let mut ids: Vec<_> = all.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "no job claimed twice");
        assert_eq!(all.len(), 25, "every free job claimed, and only one of the shared resource's");
        assert_eq!(all.iter().filter(|(_, r)| r.as_deref() == Some("server:shared")).count(), 1);
    }

    pub async fn heartbeats_carry_cancellation_and_lost_leases(db: &TestDatabase) {
        let store = db.store().await;
        let j = job(Some("site:x"), false);
        store.enqueue_job(&j).await.unwrap();
        store.claim_job("w1", now(), lease()).await.unwrap().unwrap();
        assert_eq!(store.heartbeat_job(&j.id, "w1", lease()).await.unwrap(), Heartbeat::Held);
        assert_eq!(store.heartbeat_job(&j.id, "intruder", lease()).await.unwrap(), Heartbeat::Lost);
        assert_eq!(store.cancel_job(&j.id, now()).await.unwrap(), CancelOutcome::Requested);
        assert_eq!(store.heartbeat_job(&j.id, "w1", lease()).await.unwrap(), Heartbeat::CancelRequested);
        assert!(!store.finish_job(&j.id, "intruder", &JobEnd::Succeeded, now()).await.unwrap());
        let end = JobEnd::Cancelled { reason: "cancelled by a user".into() };
        assert!(store.finish_job(&j.id, "w1", &end, now()).await.unwrap());
        assert_eq!(store.cancel_job(&j.id, now()).await.unwrap(), CancelOutcome::AlreadyFinished);
        assert_eq!(store.cancel_job("missing", now()).await.unwrap(), CancelOutcome::NotFound);

        let queued = job(None, true);
        store.enqueue_job(&queued).await.unwrap();
        assert_eq!(store.cancel_job(&queued.id, now()).await.unwrap(), CancelOutcome::Cancelled);
        assert!(store.claim_job("w1", now(), lease()).await.unwrap().is_none(), "a cancelled job never starts");
        assert_eq!(store.job(&queued.id).await.unwrap().unwrap().status, RunStatus::Cancelled);
    }

    pub async fn the_reaper_retries_idempotent_jobs_and_fails_the_others(db: &TestDatabase) {
        let store = db.store().await;
        let (safe, unsafe_, exhausted) = (job(Some("s:1"), true), job(Some("s:2"), false), job(Some("s:3"), true));
        for j in [&safe, &unsafe_, &exhausted] {
            store.enqueue_job(j).await.unwrap();
        }
        let short = now() + chrono::Duration::milliseconds(1);
        for _ in 0..3 {
            store.claim_job("dead", now(), short).await.unwrap().unwrap();
        }
        use_up_attempts(&store, &exhausted.id).await;
        let later = now() + chrono::Duration::seconds(30);
        let retry_at = move |_attempts: i64| later;
        let reaped = store.reap_jobs(now() + chrono::Duration::seconds(1), &retry_at).await.unwrap();
        assert_eq!(reaped.requeued, vec![safe.id.clone()]);
        let mut failed = reaped.failed.clone();
        failed.sort();
        let mut expected = vec![unsafe_.id.clone(), exhausted.id.clone()];
        expected.sort();
        assert_eq!(failed, expected);
        let u = store.job(&unsafe_.id).await.unwrap().unwrap();
        assert_eq!((u.status.as_str(), u.failure_reason.as_deref()), ("failed", Some("interrupted")));
        assert_eq!(store.heartbeat_job(&unsafe_.id, "dead", lease()).await.unwrap(), Heartbeat::Lost);
        assert!(!store.finish_job(&unsafe_.id, "dead", &JobEnd::Succeeded, now()).await.unwrap());
        // The requeued job waits for its backoff, then runs again as attempt 2.
        assert!(store.claim_job("w2", now(), lease()).await.unwrap().is_none());
        let again = store.claim_job("w2", later + chrono::Duration::seconds(1), lease()).await.unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.attempts), (safe.id.as_str(), 2));
        assert!(store.reap_jobs(now(), &retry_at).await.unwrap() == Reaped::default(), "live leases are left alone");
    }

    /// Uses up a job's attempts through the queue itself: fail-and-retry until the last one.
    async fn use_up_attempts(store: &Arc<dyn Store>, id: &str) {
        // The job was claimed once (attempts = 1); two more claim/retry rounds make it 3 = max.
        for round in 0..2 {
            let end = JobEnd::Retry { run_at: now() - chrono::Duration::seconds(1), reason: format!("round {round}") };
            assert!(store.finish_job(id, "dead", &end, now()).await.unwrap());
            let short = now() + chrono::Duration::milliseconds(1);
            let claimed = store.claim_job("dead", now(), short).await.unwrap().unwrap();
            assert_eq!(claimed.id, id);
        }
        assert_eq!(store.job(id).await.unwrap().unwrap().attempts, 3);
    }

    pub async fn job_logs_number_lines_across_appends(db: &TestDatabase) {
        let store = db.store().await;
        let j = job(None, true);
        store.enqueue_job(&j).await.unwrap();
        let e = NewLogLine::now;
        assert_eq!(store.last_job_log_seq(&j.id).await.unwrap(), 0);
        // Each line keeps the time it was produced, whenever the batch is written.
        let early = NewLogLine { at: now() - chrono::Duration::milliseconds(1500), ..e("stdout", "one") };
        store.append_job_log(&j.id, 1, &[early.clone(), e("stdout", "two")]).await.unwrap();
        store.append_job_log(&j.id, 3, &[e("stderr", "three with 'quotes' and ünïcode")]).await.unwrap();
        store.append_job_log(&j.id, 4, &[]).await.unwrap();
        assert_eq!(store.last_job_log_seq(&j.id).await.unwrap(), 3);
        assert!(store.append_job_log(&j.id, 3, &[e("stdout", "duplicate")]).await.is_err(), "numbers are unique");
        let lines = store.job_log(&j.id, 0, 100).await.unwrap();
        let seen: Vec<(i64, &str, &str)> = lines.iter().map(|l| (l.seq, l.stream.as_str(), l.line.as_str())).collect();
        assert_eq!(
            seen,
            vec![(1, "stdout", "one"), (2, "stdout", "two"), (3, "stderr", "three with 'quotes' and ünïcode")]
        );
        assert_eq!(lines[0].at.timestamp_millis(), early.at.timestamp_millis());
        assert!((lines[1].at - lines[0].at).num_milliseconds() >= 1400, "{lines:?}");
        assert_eq!(store.job_log(&j.id, 2, 100).await.unwrap().len(), 1);
        assert_eq!(store.job_log(&j.id, 0, 1).await.unwrap().len(), 1);
    }

    pub async fn cancellation_survives_reaping_and_retries(db: &TestDatabase) {
        let store = db.store().await;
        let (reaped, retried) = (job(Some("c:1"), true), job(Some("c:2"), true));
        store.enqueue_job(&reaped).await.unwrap();
        store.enqueue_job(&retried).await.unwrap();
        let short = now() + chrono::Duration::milliseconds(1);
        store.claim_job("dead", now(), short).await.unwrap().unwrap();
        store.claim_job("w", now(), lease()).await.unwrap().unwrap();
        store.cancel_job(&reaped.id, now()).await.unwrap();
        store.cancel_job(&retried.id, now()).await.unwrap();
        let retry_at = |_: i64| now();
        let out = store.reap_jobs(now() + chrono::Duration::seconds(1), &retry_at).await.unwrap();
        assert!(out.requeued.is_empty());
        assert_eq!(store.job(&reaped.id).await.unwrap().unwrap().status, RunStatus::Cancelled, "not run again");
        let end = JobEnd::Retry { run_at: now(), reason: "connection reset".into() };
        assert!(store.finish_job(&retried.id, "w", &end, now()).await.unwrap());
        let j = store.job(&retried.id).await.unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.failure_reason.as_deref()), ("cancelled", Some("cancelled by request")));
        assert!(store.claim_job("w", now() + chrono::Duration::seconds(5), lease()).await.unwrap().is_none());
    }

    pub async fn servers_are_scoped_to_organizations_and_pin_host_keys(db: &TestDatabase) {
        let store = db.store().await;
        let (a, b) = (new_user("sa@example.com"), new_user("sb@example.com"));
        let (org_a, org_b) = (slipway_core::new_id(), slipway_core::new_id());
        store.create_user_with_organization(&a, &org_a, "A", "owner").await.unwrap();
        store.create_user_with_organization(&b, &org_b, "B", "owner").await.unwrap();
        let (s1, s2, s3) = (server(&org_a, "web-1"), server(&org_a, "web-2"), server(&org_b, "other"));
        for s in [&s1, &s2, &s3] {
            store.insert_server(s).await.unwrap();
        }
        let (rows, total) = store.servers_of(std::slice::from_ref(&org_a), None, PAGE).await.unwrap();
        assert_eq!((total, rows[0].name.as_str(), rows[1].name.as_str()), (2, "web-1", "web-2"));
        let only = vec![s2.id.clone(), s3.id.clone()];
        let (rows, total) = store.servers_of(std::slice::from_ref(&org_a), Some(&only), PAGE).await.unwrap();
        assert_eq!(
            (total, rows[0].id.as_str()),
            (1, s2.id.as_str()),
            "a restriction never reaches another organization"
        );
        assert_eq!(store.servers_of(&[], None, PAGE).await.unwrap().1, 0);
        // By name, within the given organizations only.
        let named = store.servers_named(&[org_a.clone(), org_b.clone()], "web-2").await.unwrap();
        assert_eq!(named.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![s2.id.as_str()]);
        assert!(store.servers_named(std::slice::from_ref(&org_b), "web-2").await.unwrap().is_empty());
        assert!(store.servers_named(&[], "web-2").await.unwrap().is_empty());

        let changes = ServerChanges {
            name: Some("web-one".into()),
            ssh_port: Some(2222),
            php_version: Some("8.2".into()),
            ..Default::default()
        };
        assert!(store.update_server(&s1.id, &changes).await.unwrap());
        let got = store.server(&s1.id).await.unwrap().unwrap();
        assert_eq!((got.name.as_str(), got.ssh_port, got.ip_address.as_str()), ("web-one", 2222, "127.0.0.1"));
        assert_eq!(got.php_version.as_deref(), Some("8.2"));

        store.record_server_contact(&s1.id, Some("ssh-ed25519 FIRST"), Some("debian 12")).await.unwrap();
        store.record_server_contact(&s1.id, Some("ssh-ed25519 SECOND"), None).await.unwrap();
        let got = store.server(&s1.id).await.unwrap().unwrap();
        assert_eq!(
            (got.host_key.as_deref(), got.os.as_deref()),
            (Some("ssh-ed25519 FIRST"), Some("debian 12")),
            "the first key stays pinned"
        );
        store.record_offered_host_key(&s1.id, "ssh-ed25519 SECOND").await.unwrap();
        let got = store.server(&s1.id).await.unwrap().unwrap();
        assert_eq!(
            (got.host_key.as_deref(), got.offered_host_key.as_deref()),
            (Some("ssh-ed25519 FIRST"), Some("ssh-ed25519 SECOND")),
            "an offered key is only remembered"
        );
        store.replace_host_key(&s1.id, Some("ssh-ed25519 SECOND")).await.unwrap();
        let got = store.server(&s1.id).await.unwrap().unwrap();
        assert_eq!((got.host_key.as_deref(), got.offered_host_key), (Some("ssh-ed25519 SECOND"), None));

        // Reachable again: only a server that still reads unreachable is set back.
        store.set_server_status(&s1.id, ServerStatus::Unreachable, Some("no answer")).await.unwrap();
        assert!(store.set_server_reachable(&s1.id, ServerStatus::Pending).await.unwrap());
        let got = store.server(&s1.id).await.unwrap().unwrap();
        assert_eq!((got.status, got.status_reason), (ServerStatus::Pending, None));
        store.set_server_status(&s1.id, ServerStatus::Provisioning, None).await.unwrap();
        assert!(!store.set_server_reachable(&s1.id, ServerStatus::Pending).await.unwrap());
        assert_eq!(store.server(&s1.id).await.unwrap().unwrap().status, ServerStatus::Provisioning);

        store.set_server_status(&s1.id, ServerStatus::Failed, Some("unsupported OS")).await.unwrap();
        assert_eq!(store.server(&s1.id).await.unwrap().unwrap().status_reason.as_deref(), Some("unsupported OS"));
        store.mark_provisioned(&s1.id, now()).await.unwrap();
        let got = store.server(&s1.id).await.unwrap().unwrap();
        assert_eq!((got.status.as_str(), got.status_reason, got.provisioned_at.is_some()), ("active", None, true));

        assert!(store.delete_server(&s1.id).await.unwrap());
        assert!(!store.delete_server(&s1.id).await.unwrap());
        assert!(store.server(&s1.id).await.unwrap().is_none());

        let first = store.organization_key(&org_a, ("ssh-ed25519 AAA", b"sealed-1")).await.unwrap();
        let second = store.organization_key(&org_a, ("ssh-ed25519 BBB", b"sealed-2")).await.unwrap();
        assert_eq!(first, ("ssh-ed25519 AAA".to_string(), b"sealed-1".to_vec()));
        assert_eq!(second, first, "the first key made for an organization is the one kept");
    }

    pub async fn server_items_are_listed_settled_and_removed(db: &TestDatabase) {
        let store = db.store().await;
        let user = new_user("items@example.com");
        let org = slipway_core::new_id();
        store.create_user_with_organization(&user, &org, "Items", "owner").await.unwrap();
        let (s1, s2) = (server(&org, "one"), server(&org, "two"));
        store.insert_server(&s1).await.unwrap();
        store.insert_server(&s2).await.unwrap();
        let item = |server: &Server, kind: &str, name: &str| ServerItem {
            id: slipway_core::new_id(),
            server_id: server.id.clone(),
            kind: kind.into(),
            name: name.into(),
            spec: r#"{"port":80}"#.into(),
            status: InstallStatus::Installing,
            status_reason: None,
            created_at: now(),
            updated_at: now(),
            state: None,
        };
        let (k1, k2, rule, elsewhere) = (
            item(&s1, "ssh_key", "laptop"),
            item(&s1, "ssh_key", "ci"),
            item(&s1, "network_rule", "web"),
            item(&s2, "ssh_key", "x"),
        );
        for i in [&k1, &k2, &rule, &elsewhere] {
            store.insert_server_item(i).await.unwrap();
        }
        let (keys, total) = store.server_items(&s1.id, "ssh_key", None).await.unwrap();
        assert_eq!((total, keys.len(), keys[0].name.as_str()), (2, 2, "laptop"));
        let (page, total) = store.server_items(&s1.id, "ssh_key", Some(PageRequest::new(2, 1))).await.unwrap();
        assert_eq!((total, page.len(), page[0].name.as_str()), (2, 1, "ci"));
        assert_eq!(store.server_item(&rule.id).await.unwrap().unwrap().spec, r#"{"port":80}"#);

        store
            .set_server_items_status(&[k1.id.clone(), k2.id.clone()], InstallStatus::Failed, Some("unreachable"))
            .await
            .unwrap();
        let got = store.server_item(&k1.id).await.unwrap().unwrap();
        assert_eq!((got.status.as_str(), got.status_reason.as_deref()), ("failed", Some("unreachable")));
        assert_eq!(
            store.server_item(&rule.id).await.unwrap().unwrap().status,
            InstallStatus::Installing,
            "others untouched"
        );

        // Only items still being removed are deleted, and a late sync cannot revive one.
        store.set_server_items_status(std::slice::from_ref(&k1.id), InstallStatus::Removing, None).await.unwrap();
        store.set_server_items_status(std::slice::from_ref(&k1.id), InstallStatus::Installed, None).await.unwrap();
        assert_eq!(store.server_item(&k1.id).await.unwrap().unwrap().status, InstallStatus::Removing);
        store.delete_removed_server_items(&[k1.id.clone(), k2.id.clone()]).await.unwrap();
        assert!(store.server_item(&k1.id).await.unwrap().is_none());
        assert!(store.server_item(&k2.id).await.unwrap().is_some());
        store.set_server_items_status(&[], InstallStatus::Installed, None).await.unwrap();
        store.delete_removed_server_items(&[]).await.unwrap();

        // An update replaces name and spec and waits for its sync again; never one being removed.
        store.set_server_items_status(std::slice::from_ref(&k2.id), InstallStatus::Failed, Some("old")).await.unwrap();
        assert!(store.update_server_item(&k2.id, "renamed", r#"{"new":true}"#).await.unwrap());
        let got = store.server_item(&k2.id).await.unwrap().unwrap();
        assert_eq!(
            (got.name.as_str(), got.spec.as_str(), got.status.as_str()),
            ("renamed", r#"{"new":true}"#, "installing")
        );
        assert_eq!(got.status_reason, None);
        store.set_server_items_status(std::slice::from_ref(&rule.id), InstallStatus::Removing, None).await.unwrap();
        assert!(!store.update_server_item(&rule.id, "x", "{}").await.unwrap());
        assert!(!store.update_server_item("01NOSUCHITEM", "x", "{}").await.unwrap());
        // A spec the server now has replaces the stored one and keeps the status.
        store.set_server_items_status(std::slice::from_ref(&k2.id), InstallStatus::Installed, None).await.unwrap();
        assert!(store.set_server_item_spec(&k2.id, r#"{"served":1}"#).await.unwrap());
        let got = store.server_item(&k2.id).await.unwrap().unwrap();
        assert_eq!((got.spec.as_str(), got.status.as_str()), (r#"{"served":1}"#, "installed"));
        assert!(!store.set_server_item_spec(&rule.id, "{}").await.unwrap());
        // A replacement holds only while the spec is the one read.
        assert!(!store.replace_server_item_spec(&k2.id, r#"{"stale":1}"#, r#"{"served":2}"#).await.unwrap());
        assert!(store.replace_server_item_spec(&k2.id, r#"{"served":1}"#, r#"{"served":2}"#).await.unwrap());
        assert_eq!(store.server_item(&k2.id).await.unwrap().unwrap().spec, r#"{"served":2}"#);
        assert!(!store.replace_server_item_spec(&rule.id, "{}", "{}").await.unwrap(), "not one being removed");

        // Every server's items of a kind, a batch at a time.
        let all = store.items_of_kind(&k2.kind, None, 100).await.unwrap();
        let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
        assert!(all.iter().all(|i| i.kind == "ssh_key"), "{all:?}");
        assert!(ids.contains(&k2.id.as_str()) && ids.contains(&elsewhere.id.as_str()), "across servers: {ids:?}");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        let first = store.items_of_kind(&k2.kind, None, 1).await.unwrap();
        let rest = store.items_of_kind(&k2.kind, Some(&first[0].id), 100).await.unwrap();
        assert_eq!(first.len() + rest.len(), all.len());

        // A server's items go with it.
        assert!(store.delete_server(&s1.id).await.unwrap());
        assert!(store.server_item(&k2.id).await.unwrap().is_none());
        assert!(store.server_item(&elsewhere.id).await.unwrap().is_some());
    }

    fn site(server: &Server, domain: &str) -> Site {
        Site {
            id: slipway_core::new_id(),
            server_id: server.id.clone(),
            organization_id: server.organization_id.clone(),
            domain: domain.into(),
            aliases: "[]".into(),
            project_type: ProjectType::Static,
            web_directory: "public".into(),
            repository_url: Some(b"sealed-url".to_vec()),
            repository_branch: "main".into(),
            deploy_script: "true".into(),
            app_command: None,
            health_check_path: "/".into(),
            health_check_status: 200,
            health_check_timeout: 30,
            zero_downtime: true,
            keep_releases: 5,
            app_port: 0,
            status: InstallStatus::Installing,
            status_reason: None,
            suspended: false,
            deployment_status: None,
            last_deployed_at: None,
            current_release: None,
            active_port: None,
            git_repository_id: None,
            created_at: now(),
            updated_at: now(),
            shared_paths: r#"["storage"]"#.into(),
        }
    }

    fn deployment(site: &Site, status: RunStatus) -> Deployment {
        Deployment {
            id: slipway_core::new_id(),
            site_id: site.id.clone(),
            server_id: site.server_id.clone(),
            organization_id: site.organization_id.clone(),
            job_id: slipway_core::new_id(),
            status,
            trigger_kind: "api".into(),
            triggered_by_user: None,
            triggered_by_token: None,
            release_of: None,
            commit_sha: None,
            commit_message: None,
            commit_author: None,
            port: None,
            failed_step: None,
            failure_reason: None,
            release_present: false,
            created_at: now(),
            started_at: None,
            finished_at: None,
            requested_commit: None,
            action: "deploy".into(),
            steps: None,
        }
    }

    pub async fn sites_deployments_and_environments(db: &TestDatabase) {
        let store = db.store().await;
        let user = new_user("sites@example.com");
        let org = slipway_core::new_id();
        store.create_user_with_organization(&user, &org, "Sites", "owner").await.unwrap();
        let (s1, s2) = (server(&org, "one"), server(&org, "two"));
        store.insert_server(&s1).await.unwrap();
        store.insert_server(&s2).await.unwrap();

        // Ports are handed out in pairs per server; a domain is unique per server.
        let a = store.insert_site(&site(&s1, "a.example.com")).await.unwrap();
        let b = store.insert_site(&site(&s1, "b.example.com")).await.unwrap();
        let c = store.insert_site(&site(&s2, "a.example.com")).await.unwrap();
        assert_eq!((a.app_port, b.app_port, c.app_port), (20000, 20002, 20000));
        assert!(matches!(store.insert_site(&site(&s1, "a.example.com")).await, Err(StoreError::Conflict(_))));
        let (rows, total) = store.sites_of_server(&s1.id, None, None).await.unwrap();
        assert_eq!(
            (total, rows[0].domain.as_str(), rows[0].repository_url.as_deref()),
            (2, "a.example.com", Some(&b"sealed-url"[..]))
        );
        // Restricted to some sites, the count and the page hold only those.
        let only = [b.id.clone(), c.id.clone()];
        let (rows, total) = store.sites_of_server(&s1.id, Some(&only), Some(PageRequest::new(1, 1))).await.unwrap();
        assert_eq!((total, rows.len(), rows[0].id.as_str()), (1, 1, b.id.as_str()));
        assert_eq!(store.sites_of_server(&s1.id, Some(&[]), None).await.unwrap().1, 0);
        // Across servers: by organisation, narrowed by the token's restrictions and by status.
        let orgs = [org.clone()];
        let all = SiteFilter { organization_ids: &orgs, ..Default::default() };
        let page = PageRequest::new(1, 2);
        let (rows, total) = store.sites_where(all, page).await.unwrap();
        assert_eq!((total, rows.len()), (3, 2));
        let second = store.sites_where(all, PageRequest::new(2, 2)).await.unwrap().0;
        assert_eq!(second.len(), 1);
        // Past a cursor (the last id of page 1): the same page, counted from the cursor.
        let past = |id: &str| PageRequest { seek: slipway_core::SeekId::parse(id), ..PageRequest::new(2, 2) };
        let (by_cursor, counted) = store.sites_where(all, past(&rows[1].id)).await.unwrap();
        assert_eq!((by_cursor[0].id.as_str(), counted), (second[0].id.as_str(), 1));
        let in_server = store.sites_of_server(&s1.id, None, None).await.unwrap().0;
        let (rest, counted) = store.sites_of_server(&s1.id, None, Some(past(&in_server[0].id))).await.unwrap();
        assert_eq!((rest.len(), rest[0].id.as_str(), counted), (1, in_server[1].id.as_str(), 1));
        let (by_number, total) = store.sites_of_server(&s1.id, None, Some(PageRequest::new(2, 1))).await.unwrap();
        assert_eq!((by_number.len(), by_number[0].id.as_str(), total), (1, in_server[1].id.as_str(), 2));
        let (servers, _) = store.servers_of(&orgs, None, PageRequest::new(1, 1)).await.unwrap();
        let (next, counted) = store.servers_of(&orgs, None, past(&servers[0].id)).await.unwrap();
        assert_eq!((next.len(), counted), (1, 1));
        assert_ne!(next[0].id, servers[0].id);
        let (by_number, total) = store.servers_of(&orgs, None, PageRequest::new(2, 1)).await.unwrap();
        assert_eq!((by_number.len(), by_number[0].id.as_str(), total), (1, next[0].id.as_str(), 2));
        // Past the end: no rows, and the total (counted from the start) says where it ended.
        let (past_end, total) = store.servers_of(&orgs, None, PageRequest::new(3, 1)).await.unwrap();
        assert_eq!((past_end.len(), total), (0, 2));
        let servers = [s2.id.clone()];
        let (rows, total) = store.sites_where(SiteFilter { server_ids: Some(&servers), ..all }, page).await.unwrap();
        assert_eq!((total, rows[0].id.as_str()), (1, c.id.as_str()));
        // Page 2 by number under a filter: the filter holds in the ids found first and in the count.
        let first_server = [s1.id.clone()];
        let on_first = SiteFilter { server_ids: Some(&first_server), ..all };
        let (rows, total) = store.sites_where(on_first, PageRequest::new(2, 1)).await.unwrap();
        assert_eq!((rows.len(), rows[0].id.as_str(), total), (1, in_server[1].id.as_str(), 2));
        let (_, total) = store.sites_where(SiteFilter { site_ids: Some(&only), ..all }, page).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(store.sites_where(SiteFilter { site_ids: Some(&[]), ..all }, page).await.unwrap().1, 0);
        let elsewhere = ["01NOSUCHORG".to_string()];
        let none = SiteFilter { organization_ids: &elsewhere, ..Default::default() };
        assert_eq!(store.sites_where(none, page).await.unwrap().1, 0);
        store.set_site_status(&b.id, InstallStatus::Failed, Some("nginx refused")).await.unwrap();
        let (rows, total) =
            store.sites_where(SiteFilter { status: Some(InstallStatus::Failed), ..all }, page).await.unwrap();
        assert_eq!((total, rows[0].id.as_str()), (1, b.id.as_str()));
        store.set_site_status(&b.id, InstallStatus::Installed, None).await.unwrap();
        assert_eq!(
            store.sites_where(SiteFilter { deployment_status: Some(RunStatus::Failed), ..all }, page).await.unwrap().1,
            0
        );
        assert_eq!(store.site_by_domain(&s1.id, "b.example.com").await.unwrap().unwrap().id, b.id);
        assert!(store.site_by_domain(&s2.id, "b.example.com").await.unwrap().is_none());
        let mut counts = store.site_counts(&[s1.id.clone(), s2.id.clone(), "01NOSUCH".into()]).await.unwrap();
        counts.sort();
        let mut expected = vec![(s1.id.clone(), 2), (s2.id.clone(), 1)];
        expected.sort();
        assert_eq!(counts, expected);

        let changes = SiteChanges {
            repository_url: Some(None),
            app_command: Some(Some("node server.js".into())),
            keep_releases: Some(3),
            zero_downtime: Some(false),
            ..Default::default()
        };
        assert!(store.update_site(&a.id, &changes).await.unwrap());
        let got = store.site(&a.id).await.unwrap().unwrap();
        assert_eq!(
            (got.repository_url, got.app_command.as_deref(), got.keep_releases, got.deploy_script.as_str()),
            (None, Some("node server.js"), 3, "true")
        );
        assert_eq!((got.zero_downtime, got.shared_paths.as_str()), (false, r#"["storage"]"#));
        let changes = SiteChanges { shared_paths: Some("[]".into()), ..Default::default() };
        assert!(store.update_site(&a.id, &changes).await.unwrap());
        let got = store.site(&a.id).await.unwrap().unwrap();
        assert_eq!((got.zero_downtime, got.shared_paths.as_str()), (false, "[]"));
        store.set_site_status(&a.id, InstallStatus::Installed, None).await.unwrap();

        // Deployments, newest first; releases are those still on the server.
        let d1 = deployment(&a, RunStatus::Queued);
        let d2 = Deployment { action: "enable-zero-downtime".into(), ..deployment(&a, RunStatus::Queued) };
        store.insert_deployment(&d1).await.unwrap();
        store.insert_deployment(&d2).await.unwrap();
        assert_eq!(store.unfinished_deployments_of_site(&a.id).await.unwrap(), 2);
        // An update wakes whoever follows the deployment's log (by its job), and no one else.
        listening(store.as_ref()).await;
        let (mut follows_d1, follows_d2) = (store.job_activity(&d1.job_id), store.job_activity(&d2.job_id));
        store.update_deployment(&d1.id, &DeploymentUpdate::default()).await.unwrap();
        assert!(follows_d1.has_changed().unwrap(), "a deployment's update wakes its log's reader");
        assert!(!follows_d2.has_changed().unwrap(), "not another deployment's");
        follows_d1.mark_unchanged();
        store.update_deployment("no-such-deployment", &DeploymentUpdate::default()).await.unwrap();
        assert!(!follows_d1.has_changed().unwrap());
        let update = DeploymentUpdate {
            status: Some(RunStatus::Succeeded),
            commit_sha: Some("abc123".into()),
            port: Some(20001),
            release_present: Some(true),
            finished_at: Some(now()),
            ..Default::default()
        };
        store.update_deployment(&d1.id, &update).await.unwrap();
        store
            .update_deployment(
                &d2.id,
                &DeploymentUpdate {
                    status: Some(RunStatus::Failed),
                    failed_step: Some("build".into()),
                    steps: Some(r#"[{"name":"build"}]"#.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let (rows, total) = store.deployments_of_site(&a.id, PAGE).await.unwrap();
        assert_eq!((total, rows[0].id.as_str(), rows[0].failed_step.as_deref()), (2, d2.id.as_str(), Some("build")));
        assert_eq!((rows[0].steps.as_deref(), rows[1].steps.as_deref()), (Some(r#"[{"name":"build"}]"#), None));
        assert_eq!(store.unfinished_deployments_of_site(&a.id).await.unwrap(), 0);
        assert_eq!((rows[0].action.as_str(), rows[1].action.as_str()), ("enable-zero-downtime", "deploy"));
        // Newest first: past the newest is the older one.
        let past_newest = PageRequest { seek: slipway_core::SeekId::parse(&d2.id), ..PageRequest::new(2, 1) };
        let (older, counted) = store.deployments_of_site(&a.id, past_newest).await.unwrap();
        assert_eq!((older.len(), older[0].id.as_str(), counted), (1, d1.id.as_str(), 1));
        let (by_number, total) = store.deployments_of_site(&a.id, PageRequest::new(2, 1)).await.unwrap();
        assert_eq!((by_number.len(), by_number[0].id.as_str(), total), (1, d1.id.as_str(), 2));
        let releases = store.releases_of_site(&a.id).await.unwrap();
        assert_eq!(
            (releases.len(), releases[0].commit_sha.as_deref(), releases[0].port),
            (1, Some("abc123"), Some(20001))
        );
        assert_eq!(store.deployment_by_job(&d1.job_id).await.unwrap().unwrap().id, d1.id);
        store
            .record_site_deployment(&a.id, RunStatus::Succeeded, Some((&d1.id, Some(20001))), Some(now()))
            .await
            .unwrap();
        store.record_site_deployment(&a.id, RunStatus::Running, None, None).await.unwrap();
        let got = store.site(&a.id).await.unwrap().unwrap();
        assert_eq!(
            (got.deployment_status, got.current_release.as_deref(), got.last_deployed_at.is_some()),
            (Some(RunStatus::Running), Some(d1.id.as_str()), true)
        );

        // Environment variables are upserted by key.
        store.put_site_env(&a.id, "B_KEY", b"sealed-1").await.unwrap();
        store.put_site_env(&a.id, "A_KEY", b"sealed-2").await.unwrap();
        store.put_site_env(&a.id, "B_KEY", b"sealed-3").await.unwrap();
        let env = store.site_env(&a.id).await.unwrap();
        assert_eq!(
            env.iter().map(|v| (v.key.as_str(), v.value.as_slice())).collect::<Vec<_>>(),
            vec![("A_KEY", &b"sealed-2"[..]), ("B_KEY", &b"sealed-3"[..])]
        );
        assert!(store.delete_site_env(&a.id, "A_KEY").await.unwrap());
        assert!(!store.delete_site_env(&a.id, "A_KEY").await.unwrap());

        // A site's deployments and variables go with it, and sites go with their server.
        assert!(store.delete_site(&a.id).await.unwrap());
        assert!(store.deployment(&d1.id).await.unwrap().is_none());
        assert!(store.site_env(&a.id).await.unwrap().is_empty());
        assert!(store.delete_server(&s1.id).await.unwrap());
        assert!(store.site(&b.id).await.unwrap().is_none());
    }

    pub async fn git_repositories_and_webhook_deliveries(db: &TestDatabase) {
        let store = db.store().await;
        let user = new_user("git@example.com");
        let (org, other) = (slipway_core::new_id(), slipway_core::new_id());
        store.create_user_with_organization(&user, &org, "Git", "owner").await.unwrap();
        store.create_user_with_organization(&new_user("other@example.com"), &other, "Other", "owner").await.unwrap();
        let provider = GitProvider {
            id: slipway_core::new_id(),
            organization_id: org.clone(),
            name: "GitHub".into(),
            kind: "github".into(),
            access_token: Some(b"sealed-token".to_vec()),
            created_at: now(),
            updated_at: now(),
        };
        store.insert_git_provider(&provider).await.unwrap();
        let repo = GitRepository {
            id: slipway_core::new_id(),
            organization_id: org.clone(),
            provider_id: Some(provider.id.clone()),
            kind: "github".into(),
            url: b"sealed-url".to_vec(),
            branch: "main".into(),
            deploy_key_public: None,
            deploy_key_private: None,
            webhook_uuid: "hook-uuid-1".into(),
            webhook_secret: None,
            created_at: now(),
            updated_at: now(),
        };
        store.insert_git_repository(&repo).await.unwrap();
        assert_eq!(store.git_providers_of(std::slice::from_ref(&org), PAGE).await.unwrap().1, 1);
        assert_eq!(store.git_repositories_of(std::slice::from_ref(&other), PAGE).await.unwrap().1, 0, "scoped");
        let changes = GitRepositoryChanges {
            deploy_key: Some(("ssh-ed25519 AAAA".into(), b"sealed-key".to_vec())),
            webhook_secret: Some(Some(b"sealed-secret".to_vec())),
            ..Default::default()
        };
        assert!(store.update_git_repository(&repo.id, &changes).await.unwrap());
        let got = store.git_repository_by_webhook("hook-uuid-1").await.unwrap().unwrap();
        assert_eq!(
            (got.deploy_key_public.as_deref(), got.webhook_secret.as_deref()),
            (Some("ssh-ed25519 AAAA"), Some(&b"sealed-secret"[..]))
        );
        let off = GitRepositoryChanges { webhook_secret: Some(None), ..Default::default() };
        store.update_git_repository(&repo.id, &off).await.unwrap();
        let got = store.git_repository(&repo.id).await.unwrap().unwrap();
        assert_eq!((got.webhook_secret, got.deploy_key_public.is_some()), (None, true), "only the secret changed");

        let s1 = server(&org, "web");
        store.insert_server(&s1).await.unwrap();
        let mut with_repo = site(&s1, "repo.example.com");
        with_repo.git_repository_id = Some(repo.id.clone());
        let with_repo = store.insert_site(&with_repo).await.unwrap();
        store.insert_site(&site(&s1, "plain.example.com")).await.unwrap();
        let using: Vec<String> =
            store.sites_of_repository(&repo.id).await.unwrap().into_iter().map(|s| s.domain).collect();
        assert_eq!(using, ["repo.example.com"]);
        for outcome in ["rejected", "accepted"] {
            let delivery = WebhookDelivery {
                id: slipway_core::new_id(),
                repository_id: repo.id.clone(),
                site_id: Some(with_repo.id.clone()),
                received_at: now(),
                event: Some("push".into()),
                branch: Some("main".into()),
                commit_sha: Some("abc1234".into()),
                outcome: outcome.into(),
                reason: None,
                deployment_id: None,
                delivery_id: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            };
            store.insert_webhook_delivery(&delivery).await.unwrap();
        }
        let (rows, total) = store.webhook_deliveries_of_site(&with_repo.id, PAGE).await.unwrap();
        assert_eq!((total, rows[0].outcome.as_str()), (2, "accepted"), "newest first");
        assert_eq!(rows[1].delivery_id, rows[0].delivery_id, "history rows may share a delivery id (a replay)");

        // Deleting the repository leaves the site, without it; deleting a provider leaves repos.
        assert!(store.delete_git_provider(&provider.id).await.unwrap());
        assert_eq!(store.git_repository(&repo.id).await.unwrap().unwrap().provider_id, None);
        assert!(store.delete_git_repository(&repo.id).await.unwrap());
        assert_eq!(store.site(&with_repo.id).await.unwrap().unwrap().git_repository_id, None);
        assert_eq!(store.webhook_deliveries_of_site(&with_repo.id, PAGE).await.unwrap().1, 0);
    }

    pub async fn events_channels_and_deliveries(db: &TestDatabase) {
        let store = db.store().await;
        let (org, other) = (slipway_core::new_id(), slipway_core::new_id());
        store.create_user_with_organization(&new_user("n@example.com"), &org, "N", "owner").await.unwrap();
        store.create_user_with_organization(&new_user("o@example.com"), &other, "O", "owner").await.unwrap();
        let event = |organization_id: &str, event_type: &str, resource_id: &str| Event {
            id: slipway_core::new_id(),
            organization_id: organization_id.into(),
            event_type: event_type.into(),
            resource_type: "deployment".into(),
            resource_id: resource_id.into(),
            resource_name: "example.com".into(),
            resource_path: Some("/api/v1/x".into()),
            server_id: Some("s1".into()),
            site_id: None,
            summary: "Deployment failed".into(),
            data: "{}".into(),
            occurred_at: now(),
        };
        let (failed, succeeded, theirs) = (
            event(&org, "deployment.failed", "d1"),
            event(&org, "deployment.succeeded", "d2"),
            event(&other, "x", "d3"),
        );
        for e in [&failed, &succeeded, &theirs] {
            assert!(store.insert_event(e).await.unwrap());
        }
        // Stored once: a dispatch that runs again keeps the first.
        assert!(!store.insert_event(&failed).await.unwrap());
        assert_eq!(store.event(&failed.id).await.unwrap().as_ref(), Some(&failed));
        let mine = std::slice::from_ref(&org);
        let (rows, total) = store.events_of(mine, &EventFilter::default(), PAGE).await.unwrap();
        assert_eq!((total, rows[0].id.as_str()), (2, succeeded.id.as_str()), "newest first, only mine");
        let only_failed = EventFilter { event_type: Some("deployment.failed".into()), ..Default::default() };
        let (rows, total) = store.events_of(mine, &only_failed, PAGE).await.unwrap();
        assert_eq!((total, rows[0].id.as_str()), (1, failed.id.as_str()));
        let by_server = EventFilter { server_id: Some("s2".into()), ..Default::default() };
        assert_eq!(store.events_of(mine, &by_server, PAGE).await.unwrap().1, 0);

        let channel = NotificationChannel {
            id: slipway_core::new_id(),
            organization_id: org.clone(),
            name: "ops".into(),
            kind: "webhook".into(),
            config: "{}".into(),
            secret: b"sealed".to_vec(),
            created_at: now(),
            updated_at: now(),
        };
        store.insert_notification_channel(&channel).await.unwrap();
        assert_eq!(store.notification_channel(&channel.id).await.unwrap().as_ref(), Some(&channel));
        assert_eq!(store.notification_channels_of(mine, PAGE).await.unwrap().1, 1);
        assert_eq!(store.notification_channels_of(std::slice::from_ref(&other), PAGE).await.unwrap().1, 0);
        let renamed = NotificationChannel { name: "renamed".into(), updated_at: now(), ..channel.clone() };
        assert!(store.update_notification_channel(&renamed).await.unwrap());

        let delivery = |e: &Event| NotificationDelivery {
            id: slipway_core::new_id(),
            channel_id: channel.id.clone(),
            organization_id: org.clone(),
            event_id: e.id.clone(),
            event_type: e.event_type.clone(),
            group_key: format!("{}:{}", e.event_type, e.resource_id),
            status: DeliveryStatus::Pending,
            attempts: 0,
            repeats: 0,
            folded: 0,
            response_code: None,
            duration_ms: None,
            error: None,
            next_attempt_at: None,
            deadline_at: now(),
            created_at: now(),
            updated_at: now(),
        };
        let first = delivery(&failed);
        assert!(store.insert_notification_delivery(&first).await.unwrap());
        // One delivery per channel and event, whatever its id.
        assert!(!store.insert_notification_delivery(&delivery(&failed)).await.unwrap());
        assert!(store.insert_notification_delivery(&delivery(&succeeded)).await.unwrap());
        assert_eq!(store.notification_deliveries_of_event(&failed.id).await.unwrap().len(), 1);
        let latest = store.latest_notification_delivery(&channel.id, &first.group_key).await.unwrap().unwrap();
        assert_eq!(latest.id, first.id);
        store.add_notification_repeat(&first.id).await.unwrap();
        store.add_notification_repeat(&first.id).await.unwrap();
        assert_eq!(store.notification_delivery(&first.id).await.unwrap().unwrap().repeats, 2);

        // Attempts are recorded in order; an attempt recorded twice (a job run again) is refused.
        let sent = NotificationDelivery {
            status: DeliveryStatus::Succeeded,
            attempts: 1,
            response_code: Some(200),
            duration_ms: Some(12),
            updated_at: now(),
            ..first.clone()
        };
        assert!(store.record_notification_attempt(&sent).await.unwrap());
        assert!(
            !store
                .record_notification_attempt(&NotificationDelivery { status: DeliveryStatus::Failed, ..sent.clone() })
                .await
                .unwrap()
        );
        assert_eq!(store.notification_delivery(&first.id).await.unwrap().unwrap().status, DeliveryStatus::Succeeded);
        assert!(store.reopen_notification_delivery(&first.id, now()).await.unwrap());
        assert!(!store.reopen_notification_delivery(&first.id, now()).await.unwrap(), "already pending");
        let again = store.notification_delivery(&first.id).await.unwrap().unwrap();
        assert_eq!((again.status.as_str(), again.attempts), ("pending", 1));
        let (rows, total) = store.notification_deliveries_of(&channel.id, PAGE).await.unwrap();
        assert_eq!((total, rows.len()), (2, 2));

        // Events are pruned with their deliveries; deleting a channel deletes its deliveries.
        let later = now() + chrono::Duration::seconds(1);
        assert!(store.prune(&PruneRule::Events { before: later }, 100).await.unwrap() >= 5);
        assert!(store.notification_delivery(&first.id).await.unwrap().is_none());
        assert!(store.delete_notification_channel(&channel.id).await.unwrap());
        assert!(store.notification_channel(&channel.id).await.unwrap().is_none());
    }

    pub async fn backup_storages_are_kept_per_organization(db: &TestDatabase) {
        let store = db.store().await;
        let (org, other) = (slipway_core::new_id(), slipway_core::new_id());
        store.create_user_with_organization(&new_user("b@example.com"), &org, "B", "owner").await.unwrap();
        store.create_user_with_organization(&new_user("c@example.com"), &other, "C", "owner").await.unwrap();
        let storage = |organization_id: &str, name: &str| BackupStorage {
            id: slipway_core::new_id(),
            organization_id: organization_id.into(),
            name: name.into(),
            kind: "s3".into(),
            config: r#"{"bucket":"b"}"#.into(),
            secret: Some(b"sealed".to_vec()),
            created_at: now(),
            updated_at: now(),
        };
        let (first, second, theirs) = (storage(&org, "one"), storage(&org, "two"), storage(&other, "x"));
        for s in [&first, &second, &theirs] {
            store.insert_backup_storage(s).await.unwrap();
        }
        assert_eq!(store.backup_storage(&first.id).await.unwrap().as_ref(), Some(&first));
        let (rows, total) = store.backup_storages_of(std::slice::from_ref(&org), PAGE).await.unwrap();
        assert_eq!((total, rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>()), (2, vec!["one", "two"]));
        assert_eq!(store.backup_storages_of(&[], PAGE).await.unwrap().1, 0);
        let changed = BackupStorage { name: "renamed".into(), secret: None, updated_at: now(), ..first.clone() };
        assert!(store.update_backup_storage(&changed).await.unwrap());
        assert_eq!(store.backup_storage(&first.id).await.unwrap().unwrap().secret, None);
        assert!(store.delete_backup_storage(&first.id).await.unwrap());
        assert!(!store.delete_backup_storage(&first.id).await.unwrap());
        assert!(!store.update_backup_storage(&changed).await.unwrap());

        // Backups: newest first, filtered by status, kind and database; outcomes replaced.
        let backup = |kind: &str, status: BackupStatus| Backup {
            id: slipway_core::new_id(),
            organization_id: org.clone(),
            kind: kind.into(),
            server_id: "s".into(),
            database_id: Some("d".into()),
            site_id: None,
            storage_id: second.id.clone(),
            object_key: "k".into(),
            status,
            size_bytes: None,
            sha256: None,
            manifest: None,
            error: None,
            job_id: None,
            started_at: None,
            finished_at: None,
            created_at: now(),
            verified_at: None,
            verification_error: None,
            restored_at: None,
            schedule_id: None,
        };
        let (old, new) = (backup("database", BackupStatus::Pending), backup("database", BackupStatus::Failed));
        let app = backup("application", BackupStatus::Pending);
        for b in [&old, &new, &app] {
            store.insert_backup(b).await.unwrap();
        }
        let orgs = std::slice::from_ref(&org);
        let (rows, total) = store.backups_of(orgs, &BackupFilter::default(), PAGE).await.unwrap();
        assert_eq!((total, rows[0].id.as_str()), (3, app.id.as_str()), "newest first");
        let pending =
            BackupFilter { status: Some(BackupStatus::Pending), kind: Some("database".into()), ..Default::default() };
        assert_eq!(store.backups_of(orgs, &pending, PAGE).await.unwrap().0, vec![old.clone()]);
        assert_eq!(store.backups_of(std::slice::from_ref(&other), &BackupFilter::default(), PAGE).await.unwrap().1, 0);
        let done = Backup {
            status: BackupStatus::Completed,
            size_bytes: Some(5_000_000_000),
            sha256: Some("ab".repeat(32)),
            manifest: Some("{}".into()),
            started_at: Some(now()),
            finished_at: Some(now()),
            verified_at: Some(now()),
            verification_error: Some("table bulk: 3 rows, the manifest says 4".into()),
            restored_at: Some(now()),
            ..old.clone()
        };
        assert!(store.update_backup(&done).await.unwrap());
        let stored = store.backup(&old.id).await.unwrap().unwrap();
        assert_eq!(stored.size_bytes, Some(5_000_000_000));
        assert_eq!(stored.verification_error, done.verification_error);
        assert!(stored.verified_at.is_some() && stored.restored_at.is_some(), "{stored:?}");

        // Schedules: per database or site, walked in id order, updated, deleted; backups by
        // schedule.
        let schedule = BackupSchedule {
            id: slipway_core::new_id(),
            organization_id: org.clone(),
            server_id: "s".into(),
            database_id: Some("d".into()),
            site_id: None,
            storage_id: second.id.clone(),
            frequency: "daily".into(),
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            verify: true,
            next_run_at: Some(now()),
            created_at: now(),
            updated_at: now(),
        };
        store.insert_backup_schedule(&schedule).await.unwrap();
        let other_schedule = BackupSchedule {
            id: slipway_core::new_id(),
            database_id: None,
            site_id: Some("d".into()),
            ..schedule.clone()
        };
        store.insert_backup_schedule(&other_schedule).await.unwrap();
        assert_eq!(store.backup_schedule(&schedule.id).await.unwrap().map(|s| s.verify), Some(true));
        let of_database = store.backup_schedules_of(BackupTarget::Database("d")).await.unwrap();
        assert_eq!(of_database, vec![schedule.clone()]);
        let of_site = store.backup_schedules_of(BackupTarget::Site("d")).await.unwrap();
        assert_eq!(of_site.iter().map(|s| s.target()).collect::<Vec<_>>(), vec![BackupTarget::Site("d")]);
        // A schedule names a database or a site, never both.
        let both = BackupSchedule { id: slipway_core::new_id(), site_id: Some("x".into()), ..schedule.clone() };
        assert!(store.insert_backup_schedule(&both).await.is_err());
        let walked = store.backup_schedules_after(None, 1).await.unwrap();
        assert_eq!(walked[0].id, schedule.id);
        let rest = store.backup_schedules_after(Some(&schedule.id), 10).await.unwrap();
        assert_eq!(rest.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![other_schedule.id.clone()]);
        let changed = BackupSchedule { frequency: "0 3 * * *".into(), keep_last: 5, verify: false, ..schedule.clone() };
        assert!(store.update_backup_schedule(&changed).await.unwrap());
        let read = store.backup_schedule(&schedule.id).await.unwrap().unwrap();
        assert_eq!((read.frequency.as_str(), read.keep_last, read.verify), ("0 3 * * *", 5, false));
        let planned = read.next_run_at.unwrap();
        let later = planned + chrono::Duration::hours(1);
        assert!(store.move_backup_schedule_run(&schedule.id, planned, later).await.unwrap());
        assert!(!store.move_backup_schedule_run(&schedule.id, planned, later).await.unwrap(), "moved already");
        let read = store.backup_schedule(&schedule.id).await.unwrap().unwrap();
        assert_eq!((read.next_run_at, read.frequency.as_str()), (Some(later), "0 3 * * *"));
        let scheduled = Backup { id: slipway_core::new_id(), schedule_id: Some(schedule.id.clone()), ..old.clone() };
        store.insert_backup(&scheduled).await.unwrap();
        let by_schedule = BackupFilter { schedule_id: Some(schedule.id.clone()), ..Default::default() };
        assert_eq!(store.backups_of(orgs, &by_schedule, PAGE).await.unwrap().0, vec![scheduled.clone()]);
        assert!(store.delete_backup(&scheduled.id).await.unwrap());
        assert!(!store.delete_backup(&scheduled.id).await.unwrap());
        assert!(store.delete_backup_schedule(&schedule.id).await.unwrap());
        assert_eq!(store.backup_schedule(&schedule.id).await.unwrap(), None);
        // Forgetting a server forgets its schedules (the other schedule is on server "s").
        store.delete_server("s").await.unwrap();
        assert_eq!(store.backup_schedule(&other_schedule.id).await.unwrap(), None);
    }

    fn git_repository(org: &str, webhook_uuid: &str) -> GitRepository {
        GitRepository {
            id: slipway_core::new_id(),
            organization_id: org.into(),
            provider_id: None,
            kind: "github".into(),
            url: b"sealed-url".to_vec(),
            branch: "main".into(),
            deploy_key_public: None,
            deploy_key_private: None,
            webhook_uuid: webhook_uuid.into(),
            webhook_secret: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    pub async fn webhook_delivery_ids_are_claimed_once_per_repository(db: &TestDatabase) {
        let store = db.store().await;
        let org = slipway_core::new_id();
        store.create_user_with_organization(&new_user("hooks@example.com"), &org, "Hooks", "owner").await.unwrap();
        let repository = |uuid: &str| git_repository(&org, uuid);
        let (a, b) = (repository("hook-a"), repository("hook-b"));
        store.insert_git_repository(&a).await.unwrap();
        store.insert_git_repository(&b).await.unwrap();

        assert!(store.claim_webhook_delivery(&a.id, "delivery-1", now()).await.unwrap(), "first time");
        assert!(!store.claim_webhook_delivery(&a.id, "delivery-1", now()).await.unwrap(), "a replay");
        assert!(store.claim_webhook_delivery(&b.id, "delivery-1", now()).await.unwrap(), "ids are per repository");
        assert!(store.claim_webhook_delivery(&a.id, "Delivery-1", now()).await.unwrap(), "compared exactly");

        // Released (the delivery failed before it did anything): it may come again, once.
        assert!(store.release_webhook_delivery(&a.id, "delivery-1").await.unwrap());
        assert!(!store.release_webhook_delivery(&a.id, "delivery-1").await.unwrap());
        assert!(store.claim_webhook_delivery(&a.id, "delivery-1", now()).await.unwrap());

        // Racing replays of one delivery: exactly one wins.
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (store, id): (Arc<dyn Store>, String) = (store.clone(), a.id.clone());
                tokio::spawn(async move { store.claim_webhook_delivery(&id, "raced", now()).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for h in handles {
            winners += usize::from(h.await.unwrap());
        }
        assert_eq!(winners, 1, "one of the racing deliveries proceeds");

        // The ids go with their repository.
        assert!(store.delete_git_repository(&a.id).await.unwrap());
        store.insert_git_repository(&a).await.unwrap();
        assert!(store.claim_webhook_delivery(&a.id, "raced", now()).await.unwrap(), "nothing left of the old one");
    }

    pub async fn reports_its_backend(db: &TestDatabase) {
        let store = db.store().await;
        let expected = match db {
            TestDatabase::Sqlite { .. } => Backend::Sqlite,
            TestDatabase::Postgres { .. } => Backend::Postgres,
        };
        assert_eq!(store.backend(), expected);
    }

    /// Applies a rule in batches of two until nothing is left; returns the rows deleted.
    async fn drain(store: &dyn Store, rule: &PruneRule) -> u64 {
        let mut total = 0;
        loop {
            let n = store.prune(rule, 2).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    fn audit_at(at: slipway_core::time::Timestamp, token: Option<&str>) -> AuditEvent {
        AuditEvent {
            id: slipway_core::new_id(),
            occurred_at: at,
            actor_user_id: Some("someone".into()),
            token_id: token.map(Into::into),
            organization_id: None,
            action: "token.create".into(),
            method: Some("POST".into()),
            route: None,
            resource_id: None,
            status: Some(201),
            outcome: "success".into(),
            client_ip: None,
            user_agent: None,
            request_id: None,
            detail: None,
        }
    }

    /// A job that ran, logged `lines` lines and finished at `at`.
    async fn finished_job(store: &dyn Store, id: &str, lines: usize, at: slipway_core::time::Timestamp) {
        store.enqueue_job(&NewJob { id: id.into(), ..job(None, false) }).await.unwrap();
        let claimed = store.claim_job("w", now(), lease()).await.unwrap().unwrap();
        assert_eq!(claimed.id, id);
        let entries: Vec<NewLogLine> =
            (0..lines).map(|i| NewLogLine { at, ..NewLogLine::now("stdout", format!("line {i}")) }).collect();
        store.append_job_log(id, 1, &entries).await.unwrap();
        assert!(store.finish_job(id, "w", &JobEnd::Succeeded, at).await.unwrap());
    }

    pub async fn retention_prunes_each_kind_and_nothing_younger(db: &TestDatabase) {
        let store = db.store().await;
        let store = store.as_ref();
        let days = chrono::Duration::days;
        let t = now();
        let (old, cutoff, young) = (t - days(10), t - days(5), t - days(1));

        // Audit events, by when they occurred.
        for at in [old, old, old, young] {
            store.insert_audit_event(&audit_at(at, None)).await.unwrap();
        }
        assert_eq!(drain(store, &PruneRule::AuditEvents { before: cutoff }).await, 3);
        let everyone = AuditFilter { own_user_id: Some("someone".into()), ..Default::default() };
        let (left, total) = store.audit_events(&everyone, PAGE).await.unwrap();
        assert_eq!((total, left[0].occurred_at), (1, young));

        // Tokens revoked or expired before the cutoff go, with their JWT families; the audit
        // events naming them stay readable.
        let user = new_user("retention@example.com");
        store.create_user(&user).await.unwrap();
        let token = |hash: &str, revoked: Option<_>, expires: Option<_>| AccessToken {
            revoked_at: revoked,
            expires_at: expires,
            ..token_for(&user.id, hash)
        };
        let revoked_old = token("revoked-old", Some(old), None);
        let expired_old = token("expired-old", None, Some(old));
        let revoked_young = token("revoked-young", Some(young), None);
        let expired_young = token("expired-young", None, Some(young));
        let live = token("live", None, Some(t + days(30)));
        for tk in [&revoked_old, &expired_old, &revoked_young, &expired_young, &live] {
            store.insert_token(tk).await.unwrap();
        }
        let refresh = |hash: &str, family: &str, expires| RefreshToken {
            id: slipway_core::new_id(),
            family_id: family.into(),
            token_hash: hash.into(),
            expires_at: expires,
            used_at: None,
            created_at: old,
        };
        let (gone_with_token, revoked_family, spent_family, active_family) =
            (slipway_core::new_id(), slipway_core::new_id(), slipway_core::new_id(), slipway_core::new_id());
        store
            .create_token_family(&gone_with_token, &revoked_old.id, &refresh("f1", &gone_with_token, young))
            .await
            .unwrap();
        store
            .create_token_family(&revoked_family, &live.id, &refresh("f2", &revoked_family, t + days(1)))
            .await
            .unwrap();
        store.revoke_token_family(&revoked_family, old).await.unwrap();
        store.create_token_family(&spent_family, &live.id, &refresh("f3", &spent_family, old)).await.unwrap();
        store.create_token_family(&active_family, &live.id, &refresh("f4", &active_family, young)).await.unwrap();
        store.insert_audit_event(&audit_at(young, Some(&revoked_old.id))).await.unwrap();

        assert!(drain(store, &PruneRule::Tokens { before: cutoff }).await >= 5);
        assert!(store.token(&revoked_old.id).await.unwrap().is_none());
        assert!(store.token(&expired_old.id).await.unwrap().is_none());
        for kept in [&revoked_young, &expired_young, &live] {
            assert!(store.token(&kept.id).await.unwrap().is_some(), "{} is younger than the cutoff", kept.token_hash);
        }
        assert!(store.token_by_hash("revoked-old").await.unwrap().is_none());
        for (hash, kept) in [("f1", false), ("f2", false), ("f3", false), ("f4", true)] {
            assert_eq!(store.refresh_token_by_hash(hash).await.unwrap().is_some(), kept, "refresh token {hash}");
        }
        assert_eq!(store.active_token_family(&active_family).await.unwrap().as_deref(), Some(live.id.as_str()));
        let by_token = AuditFilter { token: Some(revoked_old.id.clone()), ..everyone.clone() };
        assert_eq!(store.audit_events(&by_token, PAGE).await.unwrap().1, 1, "its history stays");

        // Job logs: a site's last deployment keeps its log whatever its age; other finished
        // jobs lose theirs after the cutoff, and then the jobs themselves go.
        let org = slipway_core::new_id();
        store.create_organization(&org, "Retention", &user.id).await.unwrap();
        let srv = server(&org, "web");
        store.insert_server(&srv).await.unwrap();
        let st = store.insert_site(&site(&srv, "retention.example.com")).await.unwrap();
        let deployments = [
            deployment(&st, RunStatus::Succeeded),
            deployment(&st, RunStatus::Failed),
            deployment(&st, RunStatus::Succeeded),
        ];
        for d in &deployments {
            finished_job(store, &d.job_id, 5, old).await;
            store.insert_deployment(d).await.unwrap();
        }
        let (plain_old, plain_young, running) =
            (slipway_core::new_id(), slipway_core::new_id(), slipway_core::new_id());
        finished_job(store, &plain_old, 3, old).await;
        finished_job(store, &plain_young, 3, young).await;
        store.enqueue_job(&NewJob { id: running.clone(), ..job(None, false) }).await.unwrap();
        store.claim_job("w", now(), lease()).await.unwrap().unwrap();
        let line = NewLogLine { at: old, ..NewLogLine::now("stdout", "still going") };
        store.append_job_log(&running, 1, &[line]).await.unwrap();

        let keep_deployments = 1;
        assert_eq!(drain(store, &PruneRule::JobLogs { before: cutoff, keep_deployments }).await, 5 + 5 + 3);
        let lines = |id: String| async move { store.job_log(&id, 0, 100).await.unwrap().len() };
        assert_eq!(lines(deployments[0].job_id.clone()).await, 0);
        assert_eq!(lines(deployments[1].job_id.clone()).await, 0);
        assert_eq!(lines(deployments[2].job_id.clone()).await, 5, "the site's last deployment keeps its log");
        assert_eq!(lines(plain_old.clone()).await, 0);
        assert_eq!(lines(plain_young.clone()).await, 3);
        assert_eq!(lines(running.clone()).await, 1, "a running job is never pruned");

        let jobs_rule = PruneRule::Jobs { before: cutoff, logs_before: cutoff, keep_deployments };
        assert_eq!(drain(store, &jobs_rule).await, 3);
        assert!(store.job(&deployments[0].job_id).await.unwrap().is_none());
        assert!(store.job(&plain_old).await.unwrap().is_none());
        for kept in [&deployments[2].job_id, &plain_young, &running] {
            assert!(store.job(kept).await.unwrap().is_some());
        }
        let (listed, total) = store.deployments_of_site(&st.id, PAGE).await.unwrap();
        assert_eq!((total, listed.len()), (3, 3), "deployments stay; a pruned one has an empty log");
        // A job younger than the log setting keeps its row even past the jobs setting.
        let logs_longer = PruneRule::Jobs { before: t, logs_before: cutoff, keep_deployments };
        assert_eq!(drain(store, &logs_longer).await, 0);

        // Webhook deliveries and the delivery ids claimed to refuse replays.
        let repo = git_repository(&org, "retention-hook");
        store.insert_git_repository(&repo).await.unwrap();
        for (delivery, at) in [("d-old", old), ("d-young", young)] {
            store
                .insert_webhook_delivery(&WebhookDelivery {
                    id: slipway_core::new_id(),
                    repository_id: repo.id.clone(),
                    site_id: Some(st.id.clone()),
                    received_at: at,
                    event: Some("push".into()),
                    branch: None,
                    commit_sha: None,
                    outcome: "ignored".into(),
                    reason: None,
                    deployment_id: None,
                    delivery_id: Some(delivery.into()),
                })
                .await
                .unwrap();
            assert!(store.claim_webhook_delivery(&repo.id, delivery, at).await.unwrap());
        }
        assert_eq!(drain(store, &PruneRule::WebhookDeliveries { before: cutoff }).await, 2);
        let (left, _) = store.webhook_deliveries_of_site(&st.id, PAGE).await.unwrap();
        assert_eq!(left.iter().map(|d| d.delivery_id.as_deref()).collect::<Vec<_>>(), [Some("d-young")]);
        assert!(store.claim_webhook_delivery(&repo.id, "d-old", now()).await.unwrap(), "its claim is forgotten");
        assert!(!store.claim_webhook_delivery(&repo.id, "d-young", now()).await.unwrap(), "a young claim holds");

        // Idempotency records and rate-limit windows.
        let long_ago = t - days(100);
        for (key, at) in [("old-1", old), ("old-2", old), ("young", young)] {
            store.idempotency_begin("p", key, "h", at, long_ago, long_ago).await.unwrap();
        }
        assert_eq!(drain(store, &PruneRule::IdempotencyKeys { before: cutoff }).await, 2);
        assert_eq!(
            store.idempotency_begin("p", "young", "h", t, long_ago, long_ago).await.unwrap(),
            IdempotencyBegin::InProgress,
            "a young record is kept"
        );
        for (key, expires) in [("a", 1000), ("b", 1000), ("c", 3000)] {
            store.rate_limit_hit(key, 0, expires).await.unwrap();
        }
        assert_eq!(drain(store, &PruneRule::RateLimits { now_unix: 2000 }).await, 2);
        assert_eq!(store.rate_limit_hit("c", 0, 3000).await.unwrap(), 2, "a current window keeps counting");

        // What the pruning job reports, and compaction.
        let counts = store.table_counts().await.unwrap();
        assert_eq!(counts.len(), COUNTED_TABLES.len());
        let count = |table: &str| counts.iter().find(|(t, _)| *t == table).unwrap().1;
        assert_eq!((count("audit_events"), count("access_tokens"), count("jobs")), (2, 3, 3));
        // d-young, and d-old claimed again above.
        assert_eq!((count("job_logs"), count("webhook_delivery_ids"), count("rate_limits")), (5 + 3 + 1, 2, 1));
        assert!(store.database_size().await.unwrap() > 0);
        store.reclaim_free_pages().await.unwrap();
        store.compact().await.unwrap();
        assert_eq!(store.table_counts().await.unwrap(), counts, "compaction keeps every row");
    }

    pub async fn audit_events_page_by_cursor_and_export_oldest_first(db: &TestDatabase) {
        let store = db.store().await;
        let t = now();
        let events: Vec<AuditEvent> = (0..5).map(|i| audit_at(t - chrono::Duration::minutes(10 - i), None)).collect();
        for e in &events {
            store.insert_audit_event(e).await.unwrap();
        }
        let everyone = AuditFilter { own_user_id: Some("someone".into()), ..Default::default() };
        let two = PageRequest::new(1, 2);
        let (first, _) = store.audit_events(&everyone, two).await.unwrap();
        assert_eq!(first.iter().map(|e| &e.id).collect::<Vec<_>>(), [&events[4].id, &events[3].id]);
        // The oldest rows are pruned and new ones arrive: the cursor still gives the next page.
        let before = chrono::Duration::minutes(8);
        assert_eq!(store.prune(&PruneRule::AuditEvents { before: t - before }, 10).await.unwrap(), 2);
        store.insert_audit_event(&audit_at(now(), None)).await.unwrap();
        let next = AuditFilter { before: Some(first[1].id.clone()), ..everyone.clone() };
        let (second, _) = store.audit_events(&next, two).await.unwrap();
        assert_eq!(second.iter().map(|e| &e.id).collect::<Vec<_>>(), [&events[2].id]);

        // Export: oldest first from a time, paged by id.
        let since = t - chrono::Duration::minutes(8);
        let page = store.audit_events_since(since, None, 1).await.unwrap();
        assert_eq!(page[0].id, events[2].id);
        let rest = store.audit_events_since(since, Some(&page[0].id), 10).await.unwrap();
        assert_eq!(rest.len(), 3);
        assert_eq!((&rest[0].id, &rest[1].id), (&events[3].id, &events[4].id));
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
    users_are_unique_by_normalized_email,
    organizations_keep_at_least_one_owner,
    concurrent_owner_demotions_leave_one_owner,
    tokens_are_found_by_hash_listed_edited_revoked_and_rotated,
    tokens_expiring_soon_are_found_by_window,
    refresh_tokens_are_single_use,
    rate_limit_windows_count_and_expire,
    idempotency_keys_replay_mismatch_and_expire,
    audit_events_filter_by_visibility_and_fields,
    list_totals_are_counted_up_to_the_horizon,
    hot_reads_see_every_write_at_once,
    jobs_are_claimed_in_order_one_per_resource,
    a_busy_server_leaves_slots_for_the_others,
    log_lines_and_job_ends_wake_whoever_follows_them,
    concurrent_workers_claim_each_job_exactly_once,
    heartbeats_carry_cancellation_and_lost_leases,
    the_reaper_retries_idempotent_jobs_and_fails_the_others,
    job_logs_number_lines_across_appends,
    cancellation_survives_reaping_and_retries,
    servers_are_scoped_to_organizations_and_pin_host_keys,
    server_items_are_listed_settled_and_removed,
    sites_deployments_and_environments,
    git_repositories_and_webhook_deliveries,
    backup_storages_are_kept_per_organization,
    events_channels_and_deliveries,
    webhook_delivery_ids_are_claimed_once_per_repository,
    retention_prunes_each_kind_and_nothing_younger,
    audit_events_page_by_cursor_and_export_oldest_first,
);

#[tokio::test]
async fn unknown_url_schemes_are_refused_with_a_clear_error() {
    let err = slipway_store::connect("mysql://root:pw@localhost/db", &Default::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("use sqlite://PATH or postgres://"), "{text}");
    assert!(!text.contains("pw@"), "the password must not appear: {text}");
}

/// PostgreSQL replicas share the database: a log line written through one wakes a reader on
/// another (through `NOTIFY`), not only on the process that wrote it.
#[tokio::test]
async fn a_log_line_written_by_one_replica_wakes_readers_on_another() {
    let db = TestDatabase::postgres().await;
    let (writer, reader) = (db.store().await, db.connect().await);
    let job = slipway_store::NewJob {
        id: slipway_core::new_id(),
        kind: "test.echo".into(),
        payload: "{}".into(),
        organization_id: None,
        resource_key: None,
        server_key: None,
        idempotent: false,
        max_attempts: 1,
        run_at: slipway_core::time::now(),
    };
    writer.enqueue_job(&job).await.unwrap();
    let mut activity = reader.job_activity(&job.id);
    let mut bystander = reader.job_activity("another-job");
    // The reader's listener has connected once it has sent its first wake-up, to every reader
    // (nothing else has written through the reader).
    if *activity.borrow_and_update() == 0 {
        tokio::time::timeout(std::time::Duration::from_secs(10), activity.changed())
            .await
            .expect("the reader listens within 10 s")
            .unwrap();
    }
    assert!(bystander.has_changed().unwrap(), "the listener's start wakes every reader");
    bystander.mark_unchanged();
    let line = slipway_store::NewLogLine::now("stdout", "cloning");
    writer.append_job_log(&job.id, 1, &[line]).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), activity.changed())
        .await
        .expect("the other replica's reader is woken")
        .unwrap();
    assert_eq!(reader.job_log(&job.id, 0, 10).await.unwrap().len(), 1);
    // Notifications arrive in order on the one listening connection: had this write woken the
    // other job's reader, it would have done so by now.
    assert!(!bystander.has_changed().unwrap(), "a reader of another job is not woken");

    // A replica's own write wakes its readers once, at the write: its notification, coming back
    // to its listener, is skipped (it arrives before the other replica's next one).
    let own = slipway_store::NewJob { id: slipway_core::new_id(), ..job.clone() };
    writer.enqueue_job(&own).await.unwrap();
    let mut mine = reader.job_activity(&own.id);
    reader.append_job_log(&own.id, 1, &[slipway_store::NewLogLine::now("stdout", "mine")]).await.unwrap();
    assert!(mine.has_changed().unwrap(), "woken at the write");
    mine.mark_unchanged();
    writer.append_job_log(&job.id, 2, &[slipway_store::NewLogLine::now("stdout", "theirs")]).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), activity.changed())
        .await
        .expect("the other replica's reader is woken again")
        .unwrap();
    assert!(!mine.has_changed().unwrap(), "not again by its own notification");
}

/// A PostgreSQL store listens for the other replicas only once someone follows a log: a process
/// that never does (`slipway admin`, `migrate`) holds no listening connection.
#[tokio::test]
async fn a_replica_listens_only_once_a_reader_follows() {
    let db = TestDatabase::postgres().await;
    let store = db.connect().await;
    let probe = sqlx::PgPool::connect(db.url()).await.unwrap();
    let listeners = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
        )
        .fetch_one(&probe)
        .await
        .unwrap()
    };
    store.ping().await.unwrap();
    // A listener started at connect would be there well within a second.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    for _ in 0..10 {
        tick.tick().await;
        assert_eq!(listeners().await, 0, "nobody follows a log yet");
    }
    let mut activity = store.job_activity("a-job");
    tokio::time::timeout(std::time::Duration::from_secs(10), activity.changed())
        .await
        .expect("the listener connects within 10 s")
        .unwrap();
    assert_eq!(listeners().await, 1, "the first reader starts one listener");
    let _second = store.job_activity("another-job");
    assert_eq!(listeners().await, 1, "and only one");
    probe.close().await;
}

/// On PostgreSQL the rate-limit windows, counted on every API request, are not written to the
/// write-ahead log (a crash may only reset a window), and still count across replicas.
#[tokio::test]
async fn rate_limit_windows_are_unlogged_and_shared_on_postgres() {
    let db = TestDatabase::postgres().await;
    let (one, other) = (db.store().await, db.connect().await);
    let probe = sqlx::PgPool::connect(db.url()).await.unwrap();
    let persistence: String =
        sqlx::query_scalar("SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_limits'")
            .fetch_one(&probe)
            .await
            .unwrap();
    assert_eq!(persistence, "u", "rate_limits is an unlogged table");
    assert_eq!(one.rate_limit_hit("token:shared", 0, 60).await.unwrap(), 1);
    assert_eq!(other.rate_limit_hit("token:shared", 0, 60).await.unwrap(), 2, "the other replica sees the count");
}
