//! What the people on the floor and on call do in the console.

use crate::browser::{Browser, WAIT};
use e2e::*;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

async fn pipeline(start_ship: bool) -> Pipeline {
    start_pipeline(PipelineOptions {
        start_ship,
        start_warehouse: true,
        stock: vec![(SKU_BALL, 5), (SKU_GLOVES, 5)],
        ..PipelineOptions::default()
    })
    .await
}

/// Places the fixture order (one ball, one pair of gloves) and waits until it is reserved.
async fn reserved_order(p: &Pipeline, order_id: &str) {
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", order_id, "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state(order_id, "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
}

fn base(p: &Pipeline) -> String {
    p.warehouse_url.clone().unwrap()
}

/// An HTTP client that does not follow redirects (to see the console's own answers).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn sign_in_find_an_order_and_read_its_timeline() {
    let p = pipeline(false).await;
    reserved_order(&p, "console-find-1").await;
    let b = Browser::start(&base(&p)).await;
    b.goto("/console/sign-in").await;
    b.find("#token").await;
    b.screenshot("sign-in").await;
    // A wrong token is refused.
    b.fill("#token", "not-a-token").await;
    b.click("#sign-in").await;
    b.wait_text("#flash", "not valid").await;
    b.sign_in(CONSOLE_TOKEN).await;
    assert!(b.text("#signed-in").await.contains(CONSOLE_OPERATOR));
    b.find("#backlog").await;
    b.wait_text(".store", "reserved").await;
    b.screenshot("overview").await;

    b.goto("/console/orders").await;
    b.fill("#q", "arthur.dent@").await;
    b.click("#search button").await;
    b.wait_text("table.orders", "console-find-1").await;
    b.screenshot("orders").await;
    b.click("a.order-link").await;
    let timeline = b.wait_text("#timeline", "reserved").await;
    assert!(timeline.contains("reserve"), "{timeline}");
    assert!(timeline.contains("ready → reserved"), "{timeline}");
    assert!(b.text("#order-state").await.contains("reserved"));
    assert!(b.text("#lines").await.contains(SKU_GLOVES));
    b.screenshot("order").await;
    drop(b);
    p.teardown().await;
}

#[tokio::test]
async fn pack_an_order_at_the_pack_station() {
    let p = pipeline(true).await;
    let order_id = "console-pack-1";
    reserved_order(&p, order_id).await;
    let b = Browser::start(&base(&p)).await;
    b.sign_in(CONSOLE_TOKEN).await;
    b.goto("/console/floor").await;
    b.wait_text("#pick-tasks", order_id).await;
    b.screenshot("floor").await;
    b.click("a.task-link").await;
    b.find("#pick-list").await;
    assert!(b.find("#pack-button").await.attr("disabled").await.unwrap().is_some());

    // A SKU that is not on the order is refused.
    b.fill("#sku", "some-other-sku").await;
    b.click("#confirm").await;
    b.wait_text("#flash", "Wrong item").await;
    b.screenshot("pack-station-wrong-sku").await;
    // The right ones are accepted, one unit each.
    for sku in [SKU_BALL, SKU_GLOVES] {
        b.fill("#sku", sku).await;
        b.click("#confirm").await;
        b.wait_text("#flash", &format!("Confirmed {sku}")).await;
    }
    // A second unit of a line that has one is refused too.
    b.fill("#sku", SKU_BALL).await;
    b.click("#confirm").await;
    b.wait_text("#flash", "Already confirmed").await;
    b.screenshot("pack-station").await;
    assert!(b.find("#pack-button").await.attr("disabled").await.unwrap().is_none());
    b.click("#pack-button").await;
    b.wait_text("#flash", "Packed").await;
    b.find("#label-link").await;

    // The carrier books the label; the console serves it as a real PDF.
    assert_eq!(
        p.wait_for_any_state(order_id, &["shipped", "fulfilled"], WAIT)
            .await
            .as_deref()
            .map(|s| s == "shipped" || s == "fulfilled"),
        Some(true)
    );
    let cookie = b.session_cookie().await;
    for pdf in ["label.pdf", "packing-slip.pdf"] {
        let response = http()
            .get(format!("{}/console/orders/{SITE_ID}/{order_id}/{pdf}", base(&p)))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{pdf}");
        assert_eq!(response.headers()["content-type"], "application/pdf", "{pdf}");
        let body = response.bytes().await.unwrap();
        assert!(body.starts_with(b"%PDF-"), "{pdf}");
    }
    // The actor of the pick and the pack is the signed-in operator.
    let actors = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE webflow_order_id = $1 AND actor = $2",
            &[&order_id, &CONSOLE_OPERATOR],
        )
        .await;
    assert!(actors >= 2, "{actors}");
    b.goto(&format!("/console/orders/{SITE_ID}/{order_id}")).await;
    b.find("#label").await;
    drop(b);
    p.teardown().await;
}

#[tokio::test]
async fn resolve_a_needs_review_order() {
    let p = pipeline(false).await;
    let order_id = "console-review-1";
    reserved_order(&p, order_id).await;
    {
        let client = p.client().await;
        let order = warehouse_db::orders::lock(&**client, &SITE_ID.into(), &order_id.into())
            .await
            .unwrap()
            .unwrap();
        warehouse_db::orders::transition(
            &**client,
            &order,
            domain::OrderState::NeedsReview,
            Some("the carrier refused the address"),
            "ship",
        )
        .await
        .unwrap();
    }
    let b = Browser::start(&base(&p)).await;
    b.sign_in(CONSOLE_TOKEN).await;
    b.goto("/console/review").await;
    b.wait_text("#review", "the carrier refused the address").await;
    b.screenshot("needs-review").await;
    b.click("#review a.order-link").await;
    b.wait_text("#state-reason", "carrier refused").await;
    b.fill(
        "#resolve textarea[name=note]",
        "Called the customer; reshipping by hand.",
    )
    .await;
    b.click("#resolve button").await;
    b.wait_text("#flash", "marked resolved").await;
    b.find("#review-empty").await;
    let resolved = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE webflow_order_id = $1 AND kind = 'review_resolved' AND actor = $2
               AND detail->>'note' = 'Called the customer; reshipping by hand.'",
            &[&order_id, &CONSOLE_OPERATOR],
        )
        .await;
    assert_eq!(resolved, 1);
    drop(b);
    p.teardown().await;
}

/// From an order's page, an admin asks for the Webflow write-back again and corrects the
/// address: each action answers back on that page (a reserved order has nothing to write
/// back yet) and the correction is audited under the operator's name.
#[tokio::test]
async fn retry_a_write_back_and_correct_an_address_from_the_order_page() {
    let p = pipeline(false).await;
    let order_id = "console-actions-1";
    reserved_order(&p, order_id).await;
    let b = Browser::start(&base(&p)).await;
    b.sign_in(CONSOLE_TOKEN).await;
    b.goto(&format!("/console/orders/{SITE_ID}/{order_id}")).await;
    b.click("#retry button").await;
    b.wait_text("#flash", "Nothing to retry").await;
    b.fill("#address input[name=city]", "Springfield").await;
    b.click("#address button").await;
    b.wait_text("#flash", "Address corrected.").await;
    let corrected = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE webflow_order_id = $1 AND kind = 'address_corrected' AND actor = $2",
            &[&order_id, &CONSOLE_OPERATOR],
        )
        .await;
    assert_eq!(corrected, 1);
    drop(b);
    p.teardown().await;
}

#[tokio::test]
async fn replay_a_dead_letter() {
    let p = pipeline(false).await;
    let dead_queue = p.topology.dead_queue("notify-webflow");
    let work_queue = p.topology.work_queue("notify-webflow");
    let mut headers = FieldTable::default();
    // Dead-lettered an hour ago: replays refuse dead letters older than the dedupe window allows.
    let dead_at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (key, value) in [
        ("x-original-routing-key", "order.shipped"),
        ("x-dead-service", "notify-webflow"),
        ("x-dead-reason", "permanent"),
        ("x-dead-error", "Webflow answered 400: invalid tracking number"),
        ("x-dead-at", dead_at.as_str()),
        ("x-site-id", SITE_ID),
    ] {
        headers.insert(key.into(), AMQPValue::LongString(value.into()));
    }
    headers.insert("x-attempt".into(), AMQPValue::LongLongInt(4));
    let body = serde_json::json!({"message_id": "shipped-dead-1", "site_id": SITE_ID, "event": {"type": "order.shipped.v1", "order_id": "console-dead-1"}});
    p.observer
        .publish(
            "",
            &dead_queue,
            &serde_json::to_vec(&body).unwrap(),
            BasicProperties::default()
                .with_message_id("shipped-dead-1".into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await;
    assert_eq!(p.observer.wait_for_count(&dead_queue, 1, WAIT).await, 1);

    let b = Browser::start(&base(&p)).await;
    b.sign_in(CONSOLE_TOKEN).await;
    b.goto("/console/stuck").await;
    let card = b
        .wait_text(
            &format!(".dead-queue[data-queue='{dead_queue}']"),
            "invalid tracking number",
        )
        .await;
    assert!(card.contains("console-dead-1"), "{card}");
    b.screenshot("stuck-messages").await;
    b.click(&format!(".dead-queue[data-queue='{dead_queue}'] button.replay-one"))
        .await;
    b.wait_text("#flash", "Replayed 1 message").await;
    assert_eq!(p.observer.wait_for_count(&work_queue, 1, WAIT).await, 1);
    let replayed = p.observer.next_message(&work_queue, WAIT).await.unwrap();
    assert_eq!(replayed.message_id().as_deref(), Some("shipped-dead-1"));
    assert_eq!(replayed.header("x-replayed-by").as_deref(), Some(CONSOLE_OPERATOR));
    assert_eq!(p.observer.message_count(&dead_queue).await, 0);
    drop(b);
    p.teardown().await;
}

#[tokio::test]
async fn signed_out_requests_are_sent_to_sign_in() {
    let p = pipeline(false).await;
    let b = Browser::start(&base(&p)).await;
    for page in [
        "/console/orders",
        "/console/floor",
        "/console/stuck",
        "/console/inventory",
    ] {
        b.goto(page).await;
        b.find("#token").await;
        assert!(
            b.path().await.starts_with("/console/sign-in?next="),
            "{page}: {}",
            b.path().await
        );
    }
    b.screenshot("signed-out").await;
    // Without a session an action does nothing and answers with the sign-in page.
    let response = http()
        .post(format!("{}/console/inventory/receive", base(&p)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("sku", SKU_BALL.to_owned()), ("quantity", "7".to_owned())]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/sign-in")
    );
    let pdf = http()
        .get(format!("{}/console/orders/{SITE_ID}/x/label.pdf", base(&p)))
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 303);
    assert_eq!(p.inventory(SKU_BALL).await.on_hand, 5);
    drop(b);
    p.teardown().await;
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let p = pipeline(false).await;
    reserved_order(&p, "console-csrf-1").await;
    let b = Browser::start(&base(&p)).await;
    b.sign_in(CONSOLE_TOKEN).await;
    b.goto("/console/inventory").await;
    b.find("#inventory").await;
    b.screenshot("inventory").await;

    // Another site's page posts a form to the console: the SameSite=Strict cookie is not sent,
    // so the request has no session and changes nothing.
    let attack = format!(
        "data:text/html,<form method=post action='{}/console/inventory/receive'><input name=sku value='{SKU_BALL}'><input name=quantity value=9></form><script>document.forms[0].submit()</script>",
        base(&p)
    );
    b.client.goto(&attack).await.unwrap();
    b.find("#token").await;
    assert_eq!(p.inventory(SKU_BALL).await.on_hand, 5);

    // With the session cookie but without the form's CSRF token, or with a wrong one, or from
    // another origin: refused (403), nothing changed.
    let cookie = b.session_cookie().await;
    let url = format!("{}/console/inventory/receive", base(&p));
    for (csrf, origin) in [
        (None, None),
        (Some("0123456789abcdef"), None),
        (Some("valid"), Some("http://evil.example")),
    ] {
        let csrf = match csrf {
            Some("valid") => Some(csrf_of(&b).await),
            other => other.map(str::to_owned),
        };
        let mut form = vec![("sku", SKU_BALL.to_owned()), ("quantity", "9".to_owned())];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf));
        }
        let mut request = http()
            .post(&url)
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&form));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{form:?} {origin:?}");
    }
    assert_eq!(p.inventory(SKU_BALL).await.on_hand, 5);

    // The console's own form works.
    b.goto("/console/inventory").await;
    b.fill(&format!("tr[data-sku='{SKU_BALL}'] input[name=quantity]"), "3")
        .await;
    b.click(&format!("tr[data-sku='{SKU_BALL}'] button")).await;
    b.wait_text("#flash", "Received 3").await;
    assert_eq!(p.inventory(SKU_BALL).await.on_hand, 8);
    drop(b);
    p.teardown().await;
}

/// The CSRF token of the current session, read from a form on the page.
async fn csrf_of(b: &Browser) -> String {
    b.goto("/console/inventory").await;
    b.find("input[name=csrf]").await.attr("value").await.unwrap().unwrap()
}

/// An `application/x-www-form-urlencoded` body.
fn form_body(fields: &[(&str, String)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
