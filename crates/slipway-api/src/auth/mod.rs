//! Authentication and authorisation: who is calling (a [`principal::Principal`] resolved from a
//! personal access token, an organisation token or a JWT), and whether they may do what the
//! route requires. The requirement of every route is read from its OpenAPI `security` entry
//! ([`rules`]), so the spec and the enforcement cannot disagree.

pub mod access;
pub mod jwt;
pub mod middleware;
pub mod principal;
pub mod rules;
pub mod usage;

pub use access::{Authorized, Caller, OrganizationCaller, Shared, SharedRecord, Target};
pub use principal::{Principal, TokenKind};
