//! TLS certificates of sites: checking a custom certificate a user uploads before anything is
//! written to a server, and describing any certificate (uploaded or ACME-issued) for the record.
//!
//! Pure code: no I/O, and the clock is a parameter.

pub mod certificate;
mod pem;

pub use certificate::{CertificateInfo, CheckedCertificate, check_upload, describe_der, describe_pem, leaf_der};
