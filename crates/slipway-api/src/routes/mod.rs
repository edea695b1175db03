//! Handlers, one module per resource. Each handler carries its `#[utoipa::path]`, and is
//! registered with `routes!`, so a route cannot exist without its spec entry.

pub mod index;
pub mod ops;
