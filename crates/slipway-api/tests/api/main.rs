//! The API's integration tests, in one binary (one build and link instead of eight): the app
//! in process, on throwaway SQLite and PostgreSQL databases. `common` holds what they share.

mod authorization;
mod common;
mod conventions;
mod docs;
mod identity;
mod queries;
mod servers;
mod sites;
mod spec_committed;
mod webhooks;
