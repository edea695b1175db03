//! One module per page (or group of pages) of the dashboard.

pub mod account;
pub mod deployments;
pub mod home;
pub mod items;
pub mod kinds;
pub mod login;
pub mod once;
pub mod operations;
pub mod organization;
pub mod servers;
pub mod sites;
pub mod tokens;
