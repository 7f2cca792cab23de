//! Console sessions in PostgreSQL: a sign-in on one replica is valid on another, sign-out ends
//! the session everywhere (a replayed cookie is refused), a revoked token's sessions end in one
//! call, and failed sign-ins are throttled per client address and per token across replicas.

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};

/// A client that shows redirects instead of following them.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
pub(crate) trait FormBody {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        let encode = |text: &str| {
            text.bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// Signs in at `base` with `token` from `forwarded_for` (an `X-Forwarded-For` hop, if any).
pub(crate) async fn sign_in(base: &str, token: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = browser()
        .post(format!("{base}/console/sign-in"))
        .form_body(&[("token", token), ("next", "/console/overview")]);
    if let Some(hop) = forwarded_for {
        request = request.header("x-forwarded-for", hop);
    }
    request.send().await.unwrap()
}

/// The `name=value` of the session cookie a successful sign-in set.
pub(crate) fn session_cookie(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in failed");
    let set = response.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// GET a console page with `cookie`: its status, and its body.
pub(crate) async fn page(base: &str, path: &str, cookie: &str) -> (StatusCode, String) {
    let response = browser()
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::SEE_OTHER {
        let location = response.headers().get(LOCATION).unwrap().to_str().unwrap();
        assert!(location.starts_with("/console/sign-in"), "{location}");
    }
    (status, response.text().await.unwrap())
}

/// The CSRF token a page's forms carry.
pub(crate) fn csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn session_rows(app: &TestApp) -> i64 {
    let client = app.db.client().await;
    client
        .query_one("SELECT count(*) FROM console_sessions", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_session_signed_in_on_one_replica_is_valid_on_another() {
    let app = spawn_app().await;
    let replica = app.spawn_replica(|_| {}).await;
    let cookie = session_cookie(&sign_in(&app.url, "floor-all", None).await);
    assert_eq!(session_rows(&app).await, 1);
    // The database holds the SHA-256 of the cookie's secret, not the secret.
    let secret = cookie.split_once('=').unwrap().1.to_owned();
    let stored: Vec<u8> = app
        .db
        .client()
        .await
        .query_one("SELECT id_sha256 FROM console_sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        ring_sha256(&hex::decode(&secret).unwrap()),
        "the row is found by the hash of the secret"
    );

    let (status, body) = page(&replica, "/console/overview", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    // A form on the replica takes the CSRF token the first replica's page carried.
    let (_, first) = page(&app.url, "/console/overview", &cookie).await;
    assert_eq!(csrf(&first), csrf(&body));
    let received = browser()
        .post(format!("{replica}/console/inventory/receive"))
        .header(COOKIE, &cookie)
        .form_body(&[("csrf", csrf(&first).as_str()), ("sku", "sku-a"), ("quantity", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(received.status(), StatusCode::SEE_OTHER);
    let on_hand: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT on_hand FROM inventory WHERE sku = 'sku-a'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_hand, 12, "the replica accepted the session's form");
    // Without the CSRF token: refused, as before.
    let forged = browser()
        .post(format!("{replica}/console/inventory/receive"))
        .header(COOKIE, &cookie)
        .form_body(&[("sku", "sku-a"), ("quantity", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

fn ring_sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

#[tokio::test]
async fn sign_out_ends_the_session_everywhere_and_a_replayed_cookie_is_refused() {
    let app = spawn_app().await;
    let replica = app.spawn_replica(|_| {}).await;
    let cookie = session_cookie(&sign_in(&app.url, "read-all", None).await);
    let (status, body) = page(&replica, "/console/overview", &cookie).await;
    assert_eq!(status, StatusCode::OK);

    let signed_out = browser()
        .post(format!("{replica}/console/sign-out"))
        .header(COOKIE, &cookie)
        .form_body(&[("csrf", csrf(&body).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    let cleared = signed_out.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(session_rows(&app).await, 0);

    // The old cookie, replayed on either replica, is a signed-out request.
    for base in [app.url.as_str(), replica.as_str()] {
        let (status, _) = page(base, "/console/overview", &cookie).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{base}");
    }
    // A made-up cookie too.
    let (status, _) = page(
        &app.url,
        "/console/overview",
        &format!("wms_console={}", "ab".repeat(32)),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn revoking_a_token_ends_its_sessions_in_one_call_and_a_removed_token_signs_nobody_in() {
    let app = spawn_app().await;
    let admin = session_cookie(&sign_in(&app.url, "admin-all", None).await);
    let floor = session_cookie(&sign_in(&app.url, "floor-all", None).await);
    let client = app.db.client().await;
    let digest: [u8; 32] = hex::decode(warehouse::auth::sha256_hex("admin-all"))
        .unwrap()
        .try_into()
        .unwrap();
    let ended = warehouse_db::console_sessions::end_for_token(&*client, &digest)
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(
        page(&app.url, "/console/overview", &admin).await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(page(&app.url, "/console/overview", &floor).await.0, StatusCode::OK);

    // A replica whose configuration no longer has the token refuses its sessions.
    let without = app
        .spawn_replica(|settings| settings.warehouse.tokens.retain(|t| t.name != "floor-all"))
        .await;
    assert_eq!(
        page(&without, "/console/overview", &floor).await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address_across_replicas() {
    let app = spawn_app_with(|settings| {
        settings.warehouse.console.sign_in_max_failures = 3;
        settings.warehouse.console.sign_in_window_secs = 600;
        // The tests' requests come through "a proxy" on 127.0.0.1 naming the client.
        settings.warehouse.console.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let replica = app.spawn_replica(|_| {}).await;
    let attacker = Some("203.0.113.5");
    // Three failures, on both replicas, each with another token.
    for (base, token) in [(&app.url, "guess-1"), (&replica, "guess-2"), (&app.url, "guess-3")] {
        assert_eq!(sign_in(base, token, attacker).await.status(), StatusCode::UNAUTHORIZED);
    }
    // The limit: refused with 429 and Retry-After, even with a right token, on both replicas.
    for base in [&app.url, &replica] {
        let refused = sign_in(base, "admin-all", attacker).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = refused.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=600).contains(&retry_after), "{retry_after}");
        assert!(refused.text().await.unwrap().contains("Too many failed sign-ins"));
    }
    // Another address with the right token is not affected.
    session_cookie(&sign_in(&replica, "admin-all", Some("203.0.113.6")).await);
    // The window passes (moved back in the database, instead of waiting): the address may
    // sign in again.
    app.db
        .client()
        .await
        .execute(
            "UPDATE console_sign_in_failures SET window_started_at = window_started_at - interval '601 seconds'",
            &[],
        )
        .await
        .unwrap();
    session_cookie(&sign_in(&app.url, "admin-all", attacker).await);
    // And a new failure starts a new window, not the old count.
    assert_eq!(
        sign_in(&app.url, "guess-4", attacker).await.status(),
        StatusCode::UNAUTHORIZED
    );
    session_cookie(&sign_in(&app.url, "admin-all", attacker).await);
}

#[tokio::test]
async fn one_token_tried_from_many_addresses_is_throttled_too() {
    let app = spawn_app_with(|settings| {
        settings.warehouse.console.sign_in_max_failures = 2;
        settings.warehouse.console.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    for hop in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(
            sign_in(&app.url, "stolen?", Some(hop)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app.url, "stolen?", Some("198.51.100.3")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // From that address, a real token still works.
    session_cookie(&sign_in(&app.url, "read-all", Some("198.51.100.3")).await);
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_with(|settings| settings.warehouse.console.sign_in_max_failures = 2).await;
    // Each failure claims another address: all are counted against the real peer.
    for (hop, token) in [("192.0.2.1", "guess-1"), ("192.0.2.2", "guess-2")] {
        assert_eq!(
            sign_in(&app.url, token, Some(hop)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app.url, "read-all", Some("192.0.2.3")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// The failures counted against a throttle key in its current window.
async fn failures(app: &TestApp, kind: &str, key: &str) -> i32 {
    let client = app.db.client().await;
    client
        .query_opt(
            "SELECT failures FROM console_sign_in_failures WHERE key_kind = $1 AND key = $2",
            &[&kind, &key],
        )
        .await
        .unwrap()
        .map_or(0, |row| row.get(0))
}

#[tokio::test]
async fn a_burst_of_parallel_failed_sign_ins_gets_no_more_than_the_limit_of_tries() {
    const LIMIT: u32 = 3;
    const BURST: usize = 24;
    let app = spawn_app_with(|settings| {
        settings.warehouse.console.sign_in_max_failures = LIMIT;
        settings.warehouse.console.trusted_proxies = vec!["127.0.0.1".into()];
        // Enough connections that the attempts really run side by side.
        settings.base.database.pool_size = 16;
    })
    .await;
    let replica = app.spawn_replica(|_| {}).await;
    let attacker = "203.0.113.77";
    // Every attempt another token (so only the address's count can stop them), half of them on
    // each replica, all at once.
    let attempts = (0..BURST)
        .map(|i| {
            let base = if i % 2 == 0 { &app.url } else { &replica };
            (base.clone(), format!("guess-{i}"), attacker.to_owned())
        })
        .collect();
    let statuses = sign_in_all_at_once(attempts).await;
    let tried = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(
        (tried, refused),
        (LIMIT as usize, BURST - LIMIT as usize),
        "exactly the limit's worth of tokens was tried: {statuses:?}"
    );
    assert_eq!(failures(&app, "ip", attacker).await, LIMIT as i32);
    // After the burst, the address is refused, even with a right token.
    assert_eq!(
        sign_in(&app.url, "admin-all", Some(attacker)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Sends the sign-ins `(base, token, forwarded_for)` all at once; their statuses.
async fn sign_in_all_at_once(attempts: Vec<(String, String, String)>) -> Vec<StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    for (base, token, hop) in attempts {
        set.spawn(async move { sign_in(&base, &token, Some(&hop)).await.status() });
    }
    set.join_all().await
}

#[tokio::test]
async fn successful_and_refused_sign_ins_are_not_counted_as_failures() {
    let app = spawn_app_with(|settings| {
        settings.warehouse.console.sign_in_max_failures = 2;
        settings.warehouse.console.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let operator = "198.51.100.20";
    assert_eq!(
        sign_in(&app.url, "typo", Some(operator)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Successful sign-ins: each is counted while it runs, then given back. (They go one after
    // the other: an attempt under way holds one of the address's tries, so parallel sign-ins
    // from an address one failure short of the limit would be refused, and given back too.)
    for _ in 0..4 {
        session_cookie(&sign_in(&app.url, "read-all", Some(operator)).await);
    }
    assert_eq!(failures(&app, "ip", operator).await, 1);
    // So one more failure is allowed, and then the address is at the limit.
    assert_eq!(
        sign_in(&app.url, "typo-2", Some(operator)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for _ in 0..3 {
        assert_eq!(
            sign_in(&app.url, "read-all", Some(operator)).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // The refused tries with the right token did not count against the token: from another
    // address it signs in.
    let token = warehouse::auth::TokenDigest::of("read-all").fingerprint();
    assert_eq!(failures(&app, "token", &token).await, 0);
    session_cookie(&sign_in(&app.url, "read-all", Some("198.51.100.21")).await);
}

#[tokio::test]
async fn an_unparsable_or_ported_forwarded_hop_does_not_share_the_proxys_throttle() {
    let app = spawn_app_with(|settings| {
        settings.warehouse.console.sign_in_max_failures = 2;
        settings.warehouse.console.trusted_proxies = vec!["127.0.0.1".into(), "10.0.0.0/8".into()];
    })
    .await;
    // A client the proxy names `unknown` reaches the limit...
    for token in ["guess-1", "guess-2"] {
        assert_eq!(
            sign_in(&app.url, token, Some("unknown, 10.0.0.2")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app.url, "read-all", Some("unknown")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and the clients the proxy names with a port, or in brackets, are not affected, nor is
    // the proxy itself.
    for hop in ["198.51.100.30:51234", "[2001:db8::30]:443, 10.0.0.2", "10.0.0.2"] {
        session_cookie(&sign_in(&app.url, "read-all", Some(hop)).await);
    }
    // The unparsable hop's failures are counted under its own text.
    assert_eq!(failures(&app, "ip", "hop:unknown").await, 2);
}

#[tokio::test]
async fn ipv6_clients_are_throttled_by_their_64() {
    let app = spawn_app_with(|settings| {
        settings.warehouse.console.sign_in_max_failures = 2;
        settings.warehouse.console.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    // Two failures from two addresses of one /64: the whole /64 is at the limit.
    for (hop, token) in [("2001:db8:5:6::1", "guess-1"), ("[2001:db8:5:6::2]:4000", "guess-2")] {
        assert_eq!(
            sign_in(&app.url, token, Some(hop)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app.url, "read-all", Some("2001:db8:5:6:ffff::9"))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The next /64 is another client.
    session_cookie(&sign_in(&app.url, "read-all", Some("2001:db8:5:7::1")).await);
}
