//! Slipway's end-to-end tests: the real `slipway` binary against real services, network-namespace
//! test hosts and a real browser. One test binary, so the shared helpers in `common` are compiled
//! once and each is used by some module (as crates.io and zero-to-production group theirs).
//! Run one part with a test-name filter, e.g.
//! `cargo nextest run -p slipway --test e2e -E 'test(/^deploy::/)'`.

mod common;

mod backups;
mod cli;
mod dashboard;
mod databases;
mod deploy;
mod deploy_cli;
mod provision;
mod serve;
mod servers;
