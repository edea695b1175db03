//! Domain types and rules of Slipway. No I/O lives here: everything in this crate is pure and
//! can be tested without a database, a network or a clock beyond `now()`.

pub mod ability;
pub mod dotenv;
pub mod errors;
pub mod hex;
pub mod id;
pub mod identity;
pub mod page;
pub mod password;
pub mod secret;
pub mod secrets_key;
pub mod server_input;
pub mod shell;
pub mod site_input;
pub mod status;
pub mod time;
pub mod token;
pub mod totp;
pub mod webhook;

pub use ability::{Ability, AbilityPattern, AbilitySet, Action, Resource, Role};
pub use errors::FieldErrors;
pub use id::new_id;
pub use page::{COUNT_HORIZON, PageMeta, PageRequest, SeekId};
pub use secret::Secret;
pub use secrets_key::{SecretsKey, SecretsKeyError};
pub use status::{BackupStatus, DeliveryStatus, InstallStatus, ItemState, RunStatus, ServerStatus};
