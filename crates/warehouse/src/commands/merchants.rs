//! Merchants: list and read the ones the operator may see, create one (admin on every merchant
//! and store).

use super::CommandError;
use crate::auth::{AccessError, MerchantScope, Operator, Role, Scope};
use crate::state::AppState;
use warehouse_db::merchants::{self, Merchant, MerchantError};

impl From<MerchantError> for CommandError {
    fn from(error: MerchantError) -> Self {
        match error {
            MerchantError::InvalidName(_) => CommandError::invalid("name", error.to_string()),
            MerchantError::Conflict(_) => CommandError::conflict("duplicate_name", error.to_string()),
            MerchantError::NotFound(_) => CommandError::NotFound(error.to_string()),
            MerchantError::Database(error) => CommandError::Database(error),
        }
    }
}

/// The merchants the operator may see, by name.
pub async fn list(state: &AppState, operator: &Operator) -> Result<Vec<Merchant>, CommandError> {
    operator.require(Role::Read)?;
    let client = state.pool.get().await?;
    Ok(operator.stock_merchants(&*client).await?)
}

/// One merchant; one outside the operator's scope reads as unknown (404).
pub async fn get(state: &AppState, operator: &Operator, name: &str) -> Result<Merchant, CommandError> {
    operator.require(Role::Read)?;
    let client = state.pool.get().await?;
    Ok(operator.stock_merchant(&*client, Some(name)).await?)
}

/// Creates a merchant: admin, on every store and merchant (a scoped admin cannot see what it
/// would create). 409 `duplicate_name` when the name is taken, 422 for a name the schema
/// refuses.
pub async fn create(state: &AppState, operator: &Operator, name: &str) -> Result<Merchant, CommandError> {
    operator.require(Role::Admin)?;
    if operator.scope != Scope::All || operator.merchants != MerchantScope::All {
        return Err(AccessError::Forbidden(format!(
            "the token `{}` is limited to some stores or merchants; creating a merchant needs a token on every one",
            operator.name
        ))
        .into());
    }
    let client = state.pool.get().await?;
    let merchant = merchants::create(&*client, name).await?;
    tracing::info!(merchant = %merchant.name, by = %operator.name, "merchant created");
    Ok(merchant)
}
