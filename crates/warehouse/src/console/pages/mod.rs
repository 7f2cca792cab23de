//! The console's pages and actions, one module per page. Pages read through `warehouse_db`;
//! every action calls the same [`crate::commands`] as the API, so roles, scopes, validation
//! and audit entries are the same. Shared rendering lives in `console::render`.

pub mod dead_letters;
pub mod floor;
pub mod inventory;
pub mod order_detail;
pub mod orders;
pub mod overview;
pub mod review;
pub mod sign_in;
pub mod stores;
pub mod tokens;

use actix_web::web;
use std::collections::HashMap;

type Query = web::Query<HashMap<String, String>>;
type Form = web::Form<HashMap<String, String>>;

/// A form field, trimmed (`""` when absent).
fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|v| v.trim()).unwrap_or_default()
}
