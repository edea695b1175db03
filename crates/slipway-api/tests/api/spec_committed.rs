//! The committed `docs/openapi.json` must equal the document generated from the code, so every
//! API change shows up as a reviewable diff. To accept a change:
//! `SLIPWAY_UPDATE_OPENAPI=1 cargo test -p slipway-api --test api spec_committed`.

use std::path::PathBuf;

#[test]
fn committed_openapi_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = serde_json::to_string_pretty(&slipway_api::openapi()).unwrap() + "\n";
    if std::env::var_os("SLIPWAY_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date with the code; review the change and run \
         SLIPWAY_UPDATE_OPENAPI=1 cargo test -p slipway-api --test api spec_committed"
    );
}
