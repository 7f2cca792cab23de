//! Bearer-token authentication, compared in constant time.

use crate::error::ApiError;
use actix_web::HttpRequest;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct ApiTokens(pub Vec<SecretString>);

impl ApiTokens {
    /// Accepts the request if its bearer token equals any configured token.
    pub fn check(&self, request: &HttpRequest) -> Result<(), ApiError> {
        let presented = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let mut ok = subtle::Choice::from(0);
        for token in &self.0 {
            let token = token.expose_secret().as_bytes();
            // Length differences are not secret; contents are compared in constant time.
            if token.len() == presented.len() {
                ok |= token.ct_eq(presented.as_bytes());
            }
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }
}
