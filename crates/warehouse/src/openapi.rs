//! The OpenAPI document of the API, generated from the handlers and their types (utoipa).
//!
//! The API serves it at `/api/v1/openapi.json`, and `docs/openapi.json` is a copy that a test
//! keeps equal to it: after changing a route, run
//! `UPDATE_OPENAPI=1 cargo test -p warehouse --lib openapi` (or `make openapi`).

use crate::error::ErrorBody;
use crate::routes::{inventory, merchants, orders, picking, stores, tokens};
use std::sync::OnceLock;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

/// The API's version (`info.version`): bump it when the API changes in a way clients notice.
pub const API_VERSION: &str = "1.0.0";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Webflow WMS Bridge: warehouse API",
        version = API_VERSION,
        description = "The operators' API: inventory, picking and packing, order views. Every route needs `Authorization: Bearer <token>` with a token of `warehouse.tokens` (or `warehouse.api_tokens`), or one an admin created with `POST /api/v1/tokens`. A token has a role: `read` (every GET), `floor` (also pick, pack, receive), `admin` (also refunds, address corrections, setting inventory); a role too low answers 403. A token limited to some stores sees only their orders and pick tasks, and only the SKUs their orders use: anything else answers 404, as if it did not exist. Stock belongs to merchants: the same SKU under two merchants is two products. A token may be limited to merchants (and a token limited to stores to their merchants); another merchant's stock answers 404. `/api/v1/merchants/{merchant}/inventory/{sku}` names the merchant; `/api/v1/inventory/{sku}` works for a token that may see one merchant's stock (or while only `default` exists) and answers 409 `merchant_required` otherwise. Every error is JSON `{code, message, field?}` with a stable `code`: an unknown path answers 404, a method a path does not declare answers 405 with `Allow`.",
        license(name = "MIT"),
    ),
    paths(
        inventory::get_inventory,
        inventory::set_inventory,
        inventory::receive,
        inventory::get_merchant_inventory,
        inventory::set_merchant_inventory,
        inventory::receive_merchant,
        merchants::list_merchants,
        merchants::create_merchant,
        merchants::get_merchant,
        picking::list_pick_tasks,
        picking::mark_picked,
        picking::pack,
        orders::get_order,
        orders::refund,
        orders::correct_address,
        tokens::create_token,
        tokens::list_tokens,
        tokens::revoke_token,
        stores::create_store,
        stores::list_stores,
        stores::get_store,
        stores::patch_store,
        stores::remove_store,
        openapi_json,
    ),
    components(schemas(ErrorBody, picking::PickTaskStatus, orders::RefundReason, tokens::TokenRole)),
    security(("bearer" = [])),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "inventory", description = "Stock per merchant and SKU"),
        (name = "merchants", description = "Merchants: who owns stock"),
        (name = "floor", description = "Picking and packing"),
        (name = "orders", description = "Order views, refunds, address corrections"),
        (name = "tokens", description = "Operator tokens kept in the database (admin)"),
        (name = "stores", description = "Stores (Webflow sites) onboarded and removed at runtime (admin)"),
        (name = "meta", description = "This document"),
    ),
)]
pub struct ApiDoc;

/// This document, as JSON.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
)]
pub async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// The document as committed in docs/openapi.json (pretty JSON and a final newline).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut json = ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
        json.push('\n');
        json
    })
}

/// `bearer`: the tokens of `warehouse.api_tokens`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("A token of `warehouse.tokens` (or `warehouse.api_tokens`)".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// What every route may answer: 401 without a valid token (checked before anything else),
/// 403 on a route that changes state when the token's role is too low (every token may read),
/// and 503 when the database is unreachable (every route but this document's reads it).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let uses_database = !path.ends_with("/openapi.json");
            let changes = [&mut item.put, &mut item.post, &mut item.delete];
            for operation in changes.into_iter().flatten() {
                operation.responses.responses.insert(
                    "403".to_owned(),
                    error("`forbidden`: the token's role is too low for this action"),
                );
            }
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "401".to_owned(),
                    error("`unauthorized`: no `Authorization: Bearer` header, or an unknown token"),
                );
                if uses_database {
                    responses.insert(
                        "503".to_owned(),
                        error("`database_error`: the database is unreachable; try again"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is what the code generates. To update it after changing the API:
    /// `UPDATE_OPENAPI=1 cargo test -p warehouse --lib openapi` (or `make openapi`).
    #[test]
    fn committed_openapi_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, document()).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == document(),
            "docs/openapi.json differs from the document the code generates; regenerate it with \
             `UPDATE_OPENAPI=1 cargo test -p warehouse --lib openapi` (or `make openapi`) and commit it"
        );
    }

    #[test]
    fn declares_the_api_version_and_openapi_3_1() {
        let spec: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert_eq!(spec["openapi"], "3.1.0");
        assert_eq!(spec["info"]["version"], API_VERSION);
    }
}
