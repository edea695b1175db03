//! A read cache for the three lookups on every authenticated request (token by hash, user,
//! memberships), used only on SQLite, where one process makes every write, so each write can
//! evict exactly what it changed and a revoked token is refused on the very next request.
//! (On PostgreSQL, replicas write concurrently and no cache is used.) Tokens, users and
//! memberships are kept as `Arc`s and handed out shared: a hit copies nothing.
//!
//! Invariant for anyone adding a write: if it changes a token, a user or a membership, it must
//! evict here. Processes other than the server (`slipway admin …`) must not change cached rows
//! of a running server (today they only create users and add brand-new users to organisations).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::{AccessToken, OrganizationWithRole, User};

/// Entries per map before the map is simply cleared; far above one instance's active tokens.
const MAX_ENTRIES: usize = 10_000;

/// A backstop, not the mechanism: eviction makes changes visible at once. If a write is
/// abandoned mid-flight (its request cancelled) and commits after its eviction ran, a read in
/// between could cache the old row; entries older than this are read again.
const MAX_AGE: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bumped by every eviction: a read that started before an eviction must not store its
    /// (possibly stale) result after it.
    generation: u64,
    tokens_by_hash: HashMap<String, (Instant, Arc<AccessToken>)>,
    users: HashMap<String, (Instant, Arc<User>)>,
    memberships: HashMap<String, (Instant, Arc<[OrganizationWithRole]>)>,
}

fn bounded_insert<V>(map: &mut HashMap<String, (Instant, V)>, key: String, value: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, (Instant::now(), value));
}

fn fresh<V: Clone>(map: &HashMap<String, (Instant, V)>, key: &str) -> Option<V> {
    map.get(key).filter(|(at, _)| at.elapsed() < MAX_AGE).map(|(_, v)| v.clone())
}

impl ReadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn token(&self, hash: &str) -> Option<Arc<AccessToken>> {
        fresh(&self.lock().tokens_by_hash, hash)
    }

    pub fn put_token(&self, seen_generation: u64, token: &Arc<AccessToken>) {
        let mut inner = self.lock();
        if inner.generation == seen_generation {
            bounded_insert(&mut inner.tokens_by_hash, token.token_hash.clone(), Arc::clone(token));
        }
    }

    pub fn evict_token(&self, id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.tokens_by_hash.retain(|_, (_, t)| t.id != id);
    }

    pub fn user(&self, id: &str) -> Option<Arc<User>> {
        fresh(&self.lock().users, id)
    }

    pub fn put_user(&self, seen_generation: u64, user: &Arc<User>) {
        let mut inner = self.lock();
        if inner.generation == seen_generation {
            bounded_insert(&mut inner.users, user.id.clone(), Arc::clone(user));
        }
    }

    pub fn evict_user(&self, id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.users.remove(id);
    }

    pub fn memberships(&self, user_id: &str) -> Option<Arc<[OrganizationWithRole]>> {
        fresh(&self.lock().memberships, user_id)
    }

    pub fn put_memberships(&self, seen_generation: u64, user_id: &str, rows: &Arc<[OrganizationWithRole]>) {
        let mut inner = self.lock();
        if inner.generation == seen_generation {
            bounded_insert(&mut inner.memberships, user_id.to_string(), rows.clone());
        }
    }

    pub fn evict_memberships(&self, user_id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.memberships.remove(user_id);
    }

    /// An organisation changed (name, lifetime): every user's list may show it.
    pub fn evict_all_memberships(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.memberships.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Arc<User> {
        Arc::new(User {
            id: id.into(),
            email: "e".into(),
            name: "n".into(),
            password_hash: "h".into(),
            totp_secret: None,
            totp_enabled: false,
            totp_last_counter: None,
            recovery_codes: None,
            created_at: slipway_core::time::now(),
            updated_at: slipway_core::time::now(),
        })
    }

    #[test]
    fn a_read_that_raced_an_eviction_is_not_cached() {
        let cache = ReadCache::default();
        let seen = cache.generation();
        cache.evict_user("u1"); // a write finished while the read was in flight
        cache.put_user(seen, &user("u1"));
        assert!(cache.user("u1").is_none(), "the possibly stale row was dropped");
        let seen = cache.generation();
        cache.put_user(seen, &user("u1"));
        assert!(cache.user("u1").is_some());
        cache.evict_user("u1");
        assert!(cache.user("u1").is_none());
    }

    #[test]
    fn maps_stay_bounded() {
        let cache = ReadCache::default();
        for i in 0..(MAX_ENTRIES + 5) {
            cache.put_user(cache.generation(), &user(&format!("u{i}")));
        }
        assert!(cache.lock().users.len() <= MAX_ENTRIES);
    }
}
