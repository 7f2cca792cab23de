//! Every route × every role × every scope: a role too low answers 403 (before any lookup), an
//! order or SKU of another store answers 404 exactly like one that does not exist, and a token
//! in scope with the role gets through. The actor recorded is the token's name.

use crate::helpers::*;
use reqwest::Method;
use warehouse::auth::Role;

/// What a route touches, for the scope rule.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// Nothing of a store (this document).
    Nothing,
    /// A list filtered to the token's stores.
    List,
    /// An order (or its pick task) of SITE_A.
    OrderOfA,
    /// A SKU only SITE_A's orders use.
    SkuOfA,
}

struct Route {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    needs: Role,
    target: Target,
}

fn routes(task_a: i64) -> Vec<Route> {
    let order = format!("/api/v1/orders/{SITE_A}/{ORDER_A}");
    let address = serde_json::json!({"addressee": "A B", "line1": "1 Main St", "city": "Town", "postal_code": "12345", "country": "US"});
    let parcels =
        serde_json::json!({"parcels": [{"weight_grams": 1.0, "length_cm": 1.0, "width_cm": 1.0, "height_cm": 1.0}]});
    let route = |method: Method, path: String, body: Option<serde_json::Value>, needs, target| Route {
        method,
        path,
        body,
        needs,
        target,
    };
    vec![
        route(
            Method::GET,
            "/api/v1/openapi.json".into(),
            None,
            Role::Read,
            Target::Nothing,
        ),
        route(
            Method::GET,
            format!("/api/v1/inventory/{SKU_A}"),
            None,
            Role::Read,
            Target::SkuOfA,
        ),
        route(
            Method::PUT,
            format!("/api/v1/inventory/{SKU_A}"),
            Some(serde_json::json!({"on_hand": 20})),
            Role::Admin,
            Target::SkuOfA,
        ),
        route(
            Method::POST,
            format!("/api/v1/inventory/{SKU_A}/receive"),
            Some(serde_json::json!({"quantity": 1})),
            Role::Floor,
            Target::SkuOfA,
        ),
        route(Method::GET, "/api/v1/pick-tasks".into(), None, Role::Read, Target::List),
        route(
            Method::POST,
            format!("/api/v1/pick-tasks/{task_a}/picked"),
            None,
            Role::Floor,
            Target::OrderOfA,
        ),
        route(
            Method::POST,
            format!("{order}/pack"),
            Some(parcels),
            Role::Floor,
            Target::OrderOfA,
        ),
        route(
            Method::POST,
            format!("{order}/refund"),
            Some(serde_json::json!({"reason": "requested"})),
            Role::Admin,
            Target::OrderOfA,
        ),
        route(
            Method::PUT,
            format!("{order}/shipping-address"),
            Some(address),
            Role::Admin,
            Target::OrderOfA,
        ),
        route(Method::GET, order.clone(), None, Role::Read, Target::OrderOfA),
        route(Method::GET, "/api/v1/tokens".into(), None, Role::Admin, Target::Nothing),
    ]
}

#[tokio::test]
async fn every_route_checks_role_and_scope_for_every_token() {
    let app = spawn_app().await;
    let mut tokens: Vec<(&str, Role, bool)> = TOKENS
        .iter()
        .map(|(name, role, sites)| (*name, *role, sites.contains(&"*") || sites.contains(&SITE_A)))
        .collect();
    tokens.push((LEGACY_TOKEN, Role::Admin, true));
    let mut failures = Vec::new();
    for route in routes(app.task_a) {
        // No token, or an unknown one: 401 on every route.
        for token in [None, Some("not-a-token")] {
            let mut request = app.request(route.method.clone(), &route.path, token);
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let status = request.send().await.unwrap().status().as_u16();
            if status != 401 {
                failures.push(format!(
                    "{} {} with {token:?}: {status}, want 401",
                    route.method, route.path
                ));
            }
        }
        for (token, role, sees_a) in &tokens {
            let mut request = app.request(route.method.clone(), &route.path, Some(token));
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let want = if *role < route.needs {
                "403"
            } else if !sees_a && matches!(route.target, Target::OrderOfA | Target::SkuOfA) {
                "404"
            } else {
                "allowed"
            };
            let ok = match want {
                "403" => status == 403 && body["code"] == "forbidden",
                "404" => status == 404 && body["code"] == "not_found",
                _ => (200..300).contains(&status) || status == 409,
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {token} ({role:?}): {status} {body}, want {want}",
                    route.method, route.path
                ));
            }
            if matches!(route.target, Target::List) && want == "allowed" {
                let sites: Vec<&str> = body["pick_tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["site_id"].as_str().unwrap())
                    .collect();
                let expected: Vec<&str> = match *token {
                    "read-a" | "floor-a" | "admin-a" => vec![SITE_A],
                    "admin-b" => vec![SITE_B],
                    _ => vec![SITE_A, SITE_B],
                };
                if sites != expected {
                    failures.push(format!("pick tasks as {token}: {sites:?}, want {expected:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn another_stores_order_reads_exactly_like_a_missing_one() {
    let app = spawn_app().await;
    let hidden = app
        .request(
            Method::GET,
            &format!("/api/v1/orders/{SITE_A}/{ORDER_A}"),
            Some("admin-b"),
        )
        .send()
        .await
        .unwrap();
    let missing = app
        .request(
            Method::GET,
            &format!("/api/v1/orders/{SITE_B}/no-such-order"),
            Some("admin-b"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    assert_eq!(missing.status(), 404);
    let hidden: serde_json::Value = hidden.json().await.unwrap();
    let missing: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(hidden["code"], missing["code"]);
    assert_eq!(
        hidden.as_object().unwrap().keys().collect::<Vec<_>>(),
        missing.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    // A SKU only another store orders reads as unknown, like a SKU that does not exist.
    for sku in [SKU_A, "no-such-sku"] {
        let response = app
            .request(Method::GET, &format!("/api/v1/inventory/{sku}"), Some("admin-b"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{sku}");
    }
    // A store-scoped admin cannot create a SKU no order of its stores uses.
    let created = app
        .request(Method::PUT, "/api/v1/inventory/brand-new", Some("admin-a"))
        .json(&serde_json::json!({"on_hand": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 404);
    let created = app
        .request(Method::PUT, "/api/v1/inventory/brand-new", Some("admin-all"))
        .json(&serde_json::json!({"on_hand": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
}

#[tokio::test]
async fn the_tokens_name_is_the_actor_of_every_action() {
    let app = spawn_app().await;
    let picked = app
        .request(
            Method::POST,
            &format!("/api/v1/pick-tasks/{}/picked", app.task_a),
            Some("floor-a"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(picked.status(), 200);
    let refunded = app
        .request(
            Method::POST,
            &format!("/api/v1/orders/{SITE_A}/{ORDER_A}/refund"),
            Some(LEGACY_TOKEN),
        )
        .json(&serde_json::json!({"reason": "requested"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refunded.status(), 202);
    assert_eq!(app.actors(ORDER_A).await, vec!["floor-a", "token-1"]);
    let timeline: serde_json::Value = app
        .request(
            Method::GET,
            &format!("/api/v1/orders/{SITE_A}/{ORDER_A}"),
            Some("read-a"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actors: Vec<&str> = timeline["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, vec!["floor-a", "token-1"]);
}
