//! Schema-only types for string fields whose allowed values are a list the handler checks at
//! run time (`#[schema(value_type = GitKind)]`). Each is built from the handler's own list, so
//! the OpenAPI document and the check cannot drift apart.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

macro_rules! choice {
    ($(#[doc = $doc:literal])* $name:ident = $values:expr) => {
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let description = [$($doc.trim()),*].join(" ");
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(description))
                    .enum_values(Some($values.iter().copied()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

choice! {
    /// The kind of a git host, which sets the webhook format.
    GitKind = crate::routes::git::KINDS
}

choice! {
    /// Where a server comes from; only `custom` (a server you already have) for now.
    ServerProvider = crate::routes::servers::PROVIDERS
}

choice! {
    /// A PHP-FPM version Slipway installs.
    PhpVersion = crate::routes::servers::PHP_VERSIONS
}

choice! {
    /// The database server Slipway installs (`mysql` on Ubuntu only), or `none`.
    DatabaseType = crate::routes::servers::DATABASES
}

choice! {
    /// A service Slipway can restart on a server.
    RestartableService = slipway_engine::restart::SERVICES
}
