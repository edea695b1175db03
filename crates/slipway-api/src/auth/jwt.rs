//! Short-lived JWT access tokens and ID tokens (HS256, key derived from the secrets key), for
//! `POST /auth/exchange`. A JWT names its parent access token and its exchange family; both
//! are checked on every request, so revoking the parent stops its JWTs at once.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use slipway_core::SecretsKey;

const ISSUER: &str = "slipway";

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id, or `organization:<id>` for an organisation token.
    pub sub: String,
    /// Parent access token id.
    pub tid: String,
    /// Exchange family id.
    pub fam: String,
    /// The parent's abilities when issued (the parent's current ones are what is enforced).
    pub abilities: Vec<String>,
    pub typ: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub typ: String,
    pub iat: i64,
    pub exp: i64,
}

impl JwtKeys {
    pub fn new(secrets: &SecretsKey) -> Self {
        let key = secrets.derive("slipway jwt signing v1");
        Self { encoding: EncodingKey::from_secret(&key), decoding: DecodingKey::from_secret(&key) }
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Verifies signature, issuer, expiry and that it is an access token (an ID token is not).
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)?.claims;
        if claims.typ != "access" {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidToken.into());
        }
        Ok(claims)
    }

    pub fn issuer() -> &'static str {
        ISSUER
    }
}
