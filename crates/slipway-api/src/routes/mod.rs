//! Handlers, one module per resource. Each handler carries its `#[utoipa::path]`, and is
//! registered with `routes!`, so a route cannot exist without its spec entry.

pub mod account;
pub mod audit_events;
pub mod backup_schedules;
pub mod backup_storages;
pub mod backups;
pub mod git;
pub mod index;
pub mod items;
pub mod jwt_exchange;
pub mod notifications;
pub mod operations;
pub mod ops;
pub mod organizations;
pub mod servers;
pub mod setup_page;
pub mod sites;
pub mod tokens;
