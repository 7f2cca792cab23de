//! The HTTP API: `/v2/sites/{site_id}/orders...` as Webflow answers, and `/_sim/...`.

#![allow(clippy::result_large_err, reason = "handlers return early with a ready HttpResponse")]

use crate::state::{Admission, Faults, SimState, sku_collection_id, variant_id};
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Duration;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/sites/{site}/orders", web::get().to(list_orders))
        .route("/v2/sites/{site}/orders/{order}", web::get().to(get_order))
        .route("/v2/sites/{site}/orders/{order}", web::patch().to(write::<UpdateOrder>))
        .route(
            "/v2/sites/{site}/orders/{order}/fulfill",
            web::post().to(write::<Fulfill>),
        )
        .route(
            "/v2/sites/{site}/orders/{order}/unfulfill",
            web::post().to(write::<Unfulfill>),
        )
        .route(
            "/v2/sites/{site}/orders/{order}/refund",
            web::post().to(write::<Refund>),
        )
        .route("/v2/sites/{site}/collections", web::get().to(list_collections))
        .route(
            "/v2/collections/{collection}/items/{sku}/inventory",
            web::get().to(get_inventory),
        )
        .route(
            "/v2/collections/{collection}/items/{sku}/inventory",
            web::patch().to(update_inventory),
        )
        .route("/v2/sites/{site}", web::get().to(get_site))
        .route("/v2/sites/{site}/webhooks", web::get().to(list_webhooks))
        .route("/v2/sites/{site}/webhooks", web::post().to(create_webhook))
        .route("/v2/webhooks/{webhook}", web::delete().to(delete_webhook))
        .route("/v2/token/introspect", web::get().to(introspect_token))
        .route("/oauth/authorize", web::get().to(oauth_authorize))
        .route("/oauth/token", web::post().to(oauth_token))
        .route("/_sim/webhooks", web::get().to(sim_webhooks))
        .route("/_sim/inventory", web::get().to(sim_inventory))
        .route("/_sim/inventory", web::post().to(sim_edit_inventory))
        .route("/_sim/orders", web::get().to(sim_orders))
        .route("/_sim/orders", web::post().to(sim_create_order))
        .route("/_sim/orders/import", web::post().to(sim_import_orders))
        .route("/_sim/orders/{order}", web::get().to(sim_order))
        .route("/_sim/writes", web::get().to(sim_writes))
        .route("/_sim/faults", web::get().to(sim_faults))
        .route("/_sim/faults", web::post().to(sim_set_faults))
        .route("/_sim/stats", web::get().to(sim_stats))
        .route("/_sim/calls", web::get().to(sim_calls))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
        );
}

/// The value of `Ok`, or else the handler returns the early answer in `Err` (401, 404, 429,
/// 400...).
macro_rules! or_answer {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(serde_json::json!({"code": code, "message": message, "externalReference": null, "details": []}))
}

/// The bearer token of a request ("" when there is none).
fn bearer(request: &HttpRequest) -> String {
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

/// Auth, rate limit and injected faults, in Webflow's order. `Ok(headers)` lets the call through.
async fn gate(request: &HttpRequest, state: &SimState, site: &str) -> Result<Vec<(String, String)>, HttpResponse> {
    let token = bearer(request);
    if !state.is_known_token(&token) {
        return Err(error(401, "not_authorized", "Request not authorized"));
    }
    let faults = state.faults.lock().map(|f| f.clone()).unwrap_or_default();
    let headers = match state.admit(&token) {
        Admission::Throttled { retry_after, limit } => {
            return Err(too_many_requests(retry_after, Some(limit)));
        }
        Admission::Allowed { .. } if faults.throttle_rate > 0.0 && rand::random::<f64>() < faults.throttle_rate => {
            state.count_throttled(&token);
            return Err(too_many_requests(Duration::from_secs(1), None));
        }
        Admission::Allowed { remaining, limit } if limit > 0 => {
            vec![
                ("x-ratelimit-remaining".into(), remaining.to_string()),
                ("x-ratelimit-limit".into(), limit.to_string()),
            ]
        }
        Admission::Allowed { .. } => Vec::new(),
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        if let Ok(mut stats) = state.stats.lock() {
            stats.errors_injected += 1;
        }
        return Err(error(500, "internal_error", "An Internal Error occurred"));
    }
    if !state.token_serves(&token, site) {
        return Err(error(
            404,
            "resource_not_found",
            "Requested resource not found: The site cannot be found",
        ));
    }
    Ok(headers)
}

/// Webflow's 429: `Retry-After` in seconds, the remaining budget, and the limit when one applies.
fn too_many_requests(retry_after: Duration, limit: Option<u32>) -> HttpResponse {
    let mut response = error(429, "too_many_requests", "Too Many Requests");
    let headers = response.headers_mut();
    let mut values = vec![
        ("retry-after", retry_after.as_secs().max(1).to_string()),
        ("x-ratelimit-remaining", "0".to_owned()),
    ];
    if let Some(limit) = limit {
        values.push(("x-ratelimit-limit", limit.to_string()));
    }
    for (name, value) in values {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
            headers.insert(actix_web::http::header::HeaderName::from_static(name), value);
        }
    }
    response
}

/// After the write is applied: sometimes the answer never comes (a timeout for the caller).
async fn maybe_hang(state: &SimState) {
    let rate = state.faults.lock().map(|f| f.timeout_rate).unwrap_or(0.0);
    if rate > 0.0 && rand::random::<f64>() < rate {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

fn ok(headers: Vec<(String, String)>, body: &serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    for (k, v) in headers {
        response.insert_header((k, v));
    }
    response.json(body)
}

fn not_found() -> HttpResponse {
    error(
        404,
        "resource_not_found",
        "Requested resource not found: The order cannot be found",
    )
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn list_orders(
    request: HttpRequest,
    state: web::Data<SimState>,
    site: web::Path<String>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let headers = or_answer!(gate(&request, &state, &site).await);
    let limit = query.limit.unwrap_or(100).clamp(1, 100);
    let offset = query.offset.unwrap_or(0);
    let orders = state
        .orders
        .lock()
        .map(|o| o.values().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let matching: Vec<_> = orders
        .into_iter()
        .filter(|o| state.site_of(o["orderId"].as_str().unwrap_or_default()) == *site)
        .filter(|o| query.status.as_deref().is_none_or(|s| o["status"] == s))
        .collect();
    let total = matching.len();
    let page: Vec<_> = matching.into_iter().skip(offset).take(limit).collect();
    ok(
        headers,
        &serde_json::json!({"orders": page, "pagination": {"limit": limit, "offset": offset, "total": total}}),
    )
}

async fn get_order(
    request: HttpRequest,
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let call = or_answer!(OrderCall::admit(&request, &state, path).await);
    match state
        .order(&call.order_id)
        .filter(|_| state.site_of(&call.order_id) == call.site)
    {
        Some(order) => ok(call.headers, &order),
        None => not_found(),
    }
}

fn parse_body(body: &[u8]) -> Result<serde_json::Value, HttpResponse> {
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body).map_err(|_| error(400, "bad_request", "Bad Request: Request is malformed"))
}

/// An order call let through the gate: the store, the order and the rate headers.
struct OrderCall {
    site: String,
    order_id: String,
    headers: Vec<(String, String)>,
}

impl OrderCall {
    async fn admit(
        request: &HttpRequest,
        state: &SimState,
        path: web::Path<(String, String)>,
    ) -> Result<Self, HttpResponse> {
        let (site, order_id) = path.into_inner();
        let headers = gate(request, state, &site).await?;
        Ok(Self {
            site,
            order_id,
            headers,
        })
    }
}

/// A write to one order: how it changes the stored order, given the request's body.
trait OrderWrite {
    fn apply(order: &mut serde_json::Value, body: &serde_json::Value) -> Result<(), HttpResponse>;
}

/// Applies `W` to the stored order and records the write.
async fn write<W: OrderWrite>(
    request: HttpRequest,
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let call = or_answer!(OrderCall::admit(&request, &state, path).await);
    let body = or_answer!(parse_body(&body));
    let updated = {
        let Ok(mut orders) = state.orders.lock() else {
            return error(500, "internal_error", "poisoned");
        };
        let Some(order) = orders
            .get_mut(&call.order_id)
            .filter(|_| state.site_of(&call.order_id) == call.site)
        else {
            return not_found();
        };
        or_answer!(W::apply(order, &body));
        order.clone()
    };
    state.record_write(request.method().as_str(), request.path(), &call.order_id, body);
    maybe_hang(&state).await;
    ok(call.headers, &updated)
}

fn now() -> serde_json::Value {
    chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .into()
}

/// `PATCH` an order: its comment and shipping fields.
struct UpdateOrder;

impl OrderWrite for UpdateOrder {
    fn apply(order: &mut serde_json::Value, body: &serde_json::Value) -> Result<(), HttpResponse> {
        for key in ["comment", "shippingProvider", "shippingTracking", "shippingTrackingURL"] {
            if let Some(value) = body.get(key) {
                if !value.is_string() {
                    return Err(error(400, "validation_error", &format!("{key} must be a string")));
                }
                order[key] = value.clone();
            }
        }
        Ok(())
    }
}

struct Fulfill;

impl OrderWrite for Fulfill {
    fn apply(order: &mut serde_json::Value, _: &serde_json::Value) -> Result<(), HttpResponse> {
        order["status"] = "fulfilled".into();
        order["fulfilledOn"] = now();
        Ok(())
    }
}

struct Unfulfill;

impl OrderWrite for Unfulfill {
    fn apply(order: &mut serde_json::Value, _: &serde_json::Value) -> Result<(), HttpResponse> {
        order["status"] = "unfulfilled".into();
        order["fulfilledOn"] = serde_json::Value::Null;
        Ok(())
    }
}

struct Refund;

impl OrderWrite for Refund {
    fn apply(order: &mut serde_json::Value, body: &serde_json::Value) -> Result<(), HttpResponse> {
        if let Some(reason) = body.get("reason").and_then(|r| r.as_str())
            && !["duplicate", "fraudulent", "requested"].contains(&reason)
        {
            return Err(error(
                400,
                "validation_error",
                "reason must be duplicate, fraudulent or requested",
            ));
        }
        order["status"] = "refunded".into();
        order["refundedOn"] = now();
        Ok(())
    }
}

async fn sim_orders(state: web::Data<SimState>) -> HttpResponse {
    let orders: Vec<_> = state
        .orders
        .lock()
        .map(|o| o.values().cloned().collect())
        .unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({"orders": orders}))
}

async fn sim_order(state: web::Data<SimState>, order_id: web::Path<String>) -> HttpResponse {
    match state.order(&order_id) {
        Some(order) => {
            HttpResponse::Ok().json(serde_json::json!({"order": order, "writes": state.writes_for(&order_id)}))
        }
        None => not_found(),
    }
}

#[derive(serde::Deserialize)]
struct CreateOrder {
    skus: Vec<String>,
    #[serde(default)]
    digital: bool,
    /// The site (default: the main one).
    #[serde(default)]
    site_id: Option<String>,
    /// Deliver the webhook (default true); false simulates a lost webhook.
    #[serde(default = "yes")]
    webhook: bool,
}

fn yes() -> bool {
    true
}

async fn sim_create_order(state: web::Data<SimState>, body: web::Json<CreateOrder>) -> HttpResponse {
    let skus: Vec<&str> = body.skus.iter().map(String::as_str).collect();
    let site_id = body.site_id.clone().unwrap_or_else(|| state.config.site_id.clone());
    let order = state.new_order_for(&site_id, &skus, body.digital);
    if body.webhook {
        let state = state.into_inner();
        let payload = order.clone();
        tokio::spawn(async move { crate::store::deliver(&state, webflow::TriggerType::EcommNewOrder, &payload).await });
    }
    HttpResponse::Created().json(order)
}

#[derive(serde::Deserialize)]
struct ImportOrders {
    orders: Vec<serde_json::Value>,
}

/// Stores orders exactly as given, without webhooks: the API then serves them like any other.
async fn sim_import_orders(state: web::Data<SimState>, body: web::Json<ImportOrders>) -> HttpResponse {
    match state.import_orders(body.into_inner().orders) {
        Ok(imported) => HttpResponse::Ok().json(serde_json::json!({"imported": imported})),
        Err(e) => error(400, "validation_error", &e.to_string()),
    }
}

async fn sim_writes(state: web::Data<SimState>) -> HttpResponse {
    let writes = state.writes.lock().map(|w| w.clone()).unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({"writes": writes}))
}

async fn sim_faults(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults.lock().map(|f| f.clone()).unwrap_or_default())
}

async fn sim_set_faults(state: web::Data<SimState>, faults: web::Json<Faults>) -> HttpResponse {
    if let Ok(mut current) = state.faults.lock() {
        *current = faults.into_inner();
    }
    HttpResponse::Ok().json(state.faults.lock().map(|f| f.clone()).unwrap_or_default())
}

async fn sim_stats(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats.lock().map(|s| s.clone()).unwrap_or_default())
}

/// Per token: calls admitted, 429s, and the most calls admitted within any one window.
async fn sim_calls(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.calls_by_token())
}

/// The site's collections: its SKU collection (slug `sku`) and its products.
async fn list_collections(request: HttpRequest, state: web::Data<SimState>, site: web::Path<String>) -> HttpResponse {
    let headers = or_answer!(gate(&request, &state, &site).await);
    let products = format!("5d{}", site.get(2..).unwrap_or(&site));
    ok(
        headers,
        &serde_json::json!({"collections": [
            {"id": sku_collection_id(&site), "displayName": "SKUs", "singularName": "SKU", "slug": "sku"},
            {"id": products, "displayName": "Products", "singularName": "Product", "slug": "product"}
        ]}),
    )
}

/// An inventory call let through the gate of the store that owns the collection: the
/// collection, the SKU's Webflow id, the store and the rate headers.
struct InventoryCall {
    collection: String,
    sku_id: String,
    site: String,
    headers: Vec<(String, String)>,
}

impl InventoryCall {
    async fn admit(
        request: &HttpRequest,
        state: &SimState,
        path: web::Path<(String, String)>,
    ) -> Result<Self, HttpResponse> {
        let (collection, sku_id) = path.into_inner();
        let site = state.site_of_collection(&collection).unwrap_or_default();
        let headers = gate(request, state, &site).await?;
        Ok(Self {
            collection,
            sku_id,
            site,
            headers,
        })
    }
}

async fn get_inventory(
    request: HttpRequest,
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let call = or_answer!(InventoryCall::admit(&request, &state, path).await);
    if let Ok(mut stats) = state.stats.lock() {
        stats.inventory_reads += 1;
    }
    let item = state
        .inventory
        .lock()
        .ok()
        .and_then(|i| i.get(&(call.collection, call.sku_id.clone())).map(|i| i.item()))
        .unwrap_or_else(|| serde_json::json!({"id": call.sku_id, "quantity": 0, "inventoryType": "infinite"}));
    ok(call.headers, &item)
}

/// Absolute (`quantity`) or incremental (`updateQuantity`) bodies; `inventoryType` required.
/// Every change is announced with `ecomm_inventory_changed` (whether Webflow does so for API
/// changes is unconfirmed: the simulator takes the busier case).
async fn update_inventory(
    request: HttpRequest,
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let InventoryCall {
        collection,
        sku_id,
        site,
        headers,
    } = or_answer!(InventoryCall::admit(&request, &state, path).await);
    let body = or_answer!(parse_body(&body));
    let inventory_type = match body.get("inventoryType").and_then(|t| t.as_str()) {
        Some(t @ ("finite" | "infinite")) => t.to_owned(),
        _ => return error(400, "validation_error", "inventoryType must be finite or infinite"),
    };
    let number = |key: &str| -> Result<Option<i64>, HttpResponse> {
        match body.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|f| Some(f.round() as i64))
                .ok_or_else(|| error(400, "validation_error", &format!("{key} must be a number"))),
        }
    };
    let quantity = or_answer!(number("quantity"));
    let update = or_answer!(number("updateQuantity"));
    if quantity.is_some_and(|q| q < 0) {
        return error(400, "validation_error", "quantity must not be negative");
    }
    let Some(item) = state.change_stock(&collection, &sku_id, &inventory_type, quantity, update, true) else {
        return error(
            404,
            "resource_not_found",
            "Requested resource not found: The item cannot be found",
        );
    };
    state.record_inventory_write(&site, &sku_id, body);
    let payload = item.item();
    let announce = state.clone().into_inner();
    let webhook = payload.clone();
    tokio::spawn(async move { crate::store::deliver_inventory(&announce, &site, &webhook).await });
    maybe_hang(&state).await;
    ok(headers, &payload)
}

/// Every SKU's stock in every simulated store.
async fn sim_inventory(state: web::Data<SimState>) -> HttpResponse {
    let items: Vec<_> = state
        .inventory
        .lock()
        .map(|i| i.values().cloned().collect())
        .unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({"inventory": items}))
}

#[derive(serde::Deserialize)]
struct DashboardEdit {
    /// The site (default: the main one).
    #[serde(default)]
    site_id: Option<String>,
    /// The SKU (its Webflow id is derived as on the simulator's orders), or `sku_id`.
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    sku_id: Option<String>,
    quantity: i64,
}

/// Someone edits a SKU's stock in the Webflow dashboard: the level changes and
/// `ecomm_inventory_changed` is delivered.
async fn sim_edit_inventory(state: web::Data<SimState>, edit: web::Json<DashboardEdit>) -> HttpResponse {
    let site = edit.site_id.clone().unwrap_or_else(|| state.config.site_id.clone());
    let Some(sku_id) = edit.sku_id.clone().or_else(|| edit.sku.as_deref().map(variant_id)) else {
        return error(400, "validation_error", "give sku or sku_id");
    };
    let Some(item) = state.change_stock(
        &sku_collection_id(&site),
        &sku_id,
        "finite",
        Some(edit.quantity),
        None,
        false,
    ) else {
        return not_found();
    };
    let payload = item.item();
    let announce = state.into_inner();
    let webhook = payload.clone();
    tokio::spawn(async move { crate::store::deliver_inventory(&announce, &site, &webhook).await });
    HttpResponse::Ok().json(payload)
}

/// The site's names: derived from its id, so every test knows them.
async fn get_site(request: HttpRequest, state: web::Data<SimState>, site: web::Path<String>) -> HttpResponse {
    let headers = or_answer!(gate(&request, &state, &site).await);
    let short = format!(
        "shop-{}",
        site.chars()
            .rev()
            .take(6)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    ok(
        headers,
        &serde_json::json!({
            "id": site.as_str(),
            "workspaceId": "sim-workspace",
            "displayName": format!("Shop {site}"),
            "shortName": short,
            "timeZone": "UTC",
        }),
    )
}

fn webhook_json(webhook: &crate::state::SimWebhook, with_secret: bool) -> serde_json::Value {
    let mut json = serde_json::json!({
        "id": webhook.id,
        "triggerType": webhook.trigger_type,
        "url": webhook.url,
        "workspaceId": "sim-workspace",
        "siteId": webhook.site_id,
        "filter": null,
        "lastTriggered": null,
        "createdOn": webhook.created_on,
    });
    if with_secret && let Some(secret) = &webhook.secret_key {
        json["secretKey"] = serde_json::Value::String(secret.clone());
    }
    json
}

async fn list_webhooks(request: HttpRequest, state: web::Data<SimState>, site: web::Path<String>) -> HttpResponse {
    let headers = or_answer!(gate(&request, &state, &site).await);
    let webhooks: Vec<_> = state
        .webhooks_of(&site)
        .iter()
        .map(|w| webhook_json(w, false))
        .collect();
    let total = webhooks.len();
    ok(
        headers,
        &serde_json::json!({"webhooks": webhooks, "pagination": {"limit": 100, "offset": 0, "total": total}}),
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateWebhook {
    trigger_type: String,
    url: String,
}

/// Registers a webhook: with a site token it gets its own `secretKey` (returned this once);
/// with an OAuth access token it is signed with the app's client secret.
async fn create_webhook(
    request: HttpRequest,
    state: web::Data<SimState>,
    site: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let headers = or_answer!(gate(&request, &state, &site).await);
    let Ok(body) = serde_json::from_slice::<CreateWebhook>(&body) else {
        return error(
            400,
            "validation_error",
            "Validation Error: triggerType and url are required",
        );
    };
    if webflow::TriggerType::from_wire(&body.trigger_type).as_str() != body.trigger_type
        || !(body.url.starts_with("https://") || body.url.starts_with("http://"))
    {
        return error(
            400,
            "validation_error",
            "Validation Error: unsupported triggerType or url",
        );
    }
    let with_secret = !state.is_oauth_token(&bearer(&request));
    match state.create_webhook(&site, &body.trigger_type, &body.url, with_secret) {
        Ok(webhook) => {
            let mut response = HttpResponse::Created();
            for (k, v) in headers {
                response.insert_header((k, v));
            }
            response.json(webhook_json(&webhook, true))
        }
        Err(message) => error(400, "validation_error", &message),
    }
}

async fn delete_webhook(request: HttpRequest, state: web::Data<SimState>, id: web::Path<String>) -> HttpResponse {
    let site = state
        .webhooks
        .lock()
        .ok()
        .and_then(|w| w.get(id.as_str()).map(|w| w.site_id.clone()));
    let Some(site) = site else {
        // Auth first, as Webflow answers: an unknown token is 401 whatever the id.
        if !state.is_known_token(&bearer(&request)) {
            return error(401, "not_authorized", "Request not authorized");
        }
        return error(
            404,
            "resource_not_found",
            "Requested resource not found: The webhook cannot be found",
        );
    };
    let headers = or_answer!(gate(&request, &state, &site).await);
    if let Ok(mut webhooks) = state.webhooks.lock() {
        webhooks.remove(id.as_str());
    }
    let mut response = HttpResponse::NoContent();
    for (k, v) in headers {
        response.insert_header((k, v));
    }
    response.finish()
}

/// What the bearer token may act on: every site for an OAuth access token, else its sites.
async fn introspect_token(request: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    let token = bearer(&request);
    if !state.is_known_token(&token) {
        return error(401, "not_authorized", "Request not authorized");
    }
    let oauth = state.is_oauth_token(&token);
    let sites: Vec<String> = state
        .site_ids()
        .into_iter()
        .filter(|site| state.token_serves(&token, site))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({
        "authorization": {
            "id": "sim-authorization",
            "grantType": if oauth { "authorization_code" } else { "site_token" },
            "rateLimit": 60,
            "scope": "ecommerce:read,ecommerce:write,sites:read,sites:write",
            "authorizedTo": {"siteIds": sites, "workspaceIds": ["sim-workspace"], "userIds": []},
        },
        "application": {"id": state.config.oauth.client_id, "displayName": "Simulated app"},
    }))
}

#[derive(serde::Deserialize)]
struct Authorize {
    client_id: String,
    response_type: String,
    redirect_uri: Option<String>,
    state: Option<String>,
}

/// The consent screen, approved at once: back to `redirect_uri` with a code and the `state`.
async fn oauth_authorize(state: web::Data<SimState>, query: web::Query<Authorize>) -> HttpResponse {
    if query.client_id != state.config.oauth.client_id || query.response_type != "code" {
        return error(
            400,
            "invalid_request",
            "unknown client_id, or response_type is not `code`",
        );
    }
    let Some(redirect_uri) = query.redirect_uri.as_deref() else {
        return error(400, "invalid_request", "redirect_uri is required");
    };
    let Ok(mut location) = reqwest::Url::parse(redirect_uri) else {
        return error(400, "invalid_request", "redirect_uri is not a URL");
    };
    let code = state.issue_oauth_code(redirect_uri);
    {
        let mut pairs = location.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(value) = &query.state {
            pairs.append_pair("state", value);
        }
    }
    HttpResponse::Found()
        .insert_header(("location", location.as_str()))
        .finish()
}

#[derive(serde::Deserialize)]
struct TokenRequest {
    client_id: String,
    client_secret: String,
    code: String,
    grant_type: String,
    redirect_uri: Option<String>,
}

/// The authorization-code exchange.
async fn oauth_token(state: web::Data<SimState>, form: web::Form<TokenRequest>) -> HttpResponse {
    let app = &state.config.oauth;
    if form.client_id != app.client_id || form.client_secret != app.client_secret {
        return error(401, "invalid_client", "Invalid client credentials");
    }
    if form.grant_type != "authorization_code" {
        return error(400, "unsupported_grant_type", "grant_type must be authorization_code");
    }
    match state.exchange_oauth_code(&form.code, form.redirect_uri.as_deref().unwrap_or_default()) {
        Some(token) => HttpResponse::Ok().json(serde_json::json!({
            "access_token": token,
            "token_type": "bearer",
            "scope": "ecommerce:read ecommerce:write sites:read sites:write",
        })),
        None => error(
            400,
            "invalid_grant",
            "The authorization code is invalid, used, or for another redirect_uri",
        ),
    }
}

/// Every registered webhook, secrets included (for tests).
async fn sim_webhooks(state: web::Data<SimState>) -> HttpResponse {
    let webhooks: Vec<_> = state
        .webhooks
        .lock()
        .map(|w| w.values().cloned().collect())
        .unwrap_or_default();
    HttpResponse::Ok().json(webhooks)
}
