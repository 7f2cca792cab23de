//! Webhook signature verification exactly as Webflow signs (Webflow's webhook documentation):
//! lowercase hex HMAC-SHA256 over `"{x-webflow-timestamp}:{raw body}"`, keyed with the
//! webhook's secret. We verify the raw bytes as received (never a re-serialisation),
//! compare in constant time, and bound the timestamp in both directions.

use ring::hmac;

pub const TIMESTAMP_HEADER: &str = "x-webflow-timestamp";
pub const SIGNATURE_HEADER: &str = "x-webflow-signature";

/// The two signature headers as received.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSignature<'a> {
    /// Unix epoch milliseconds, as the decimal string Webflow sent (signed verbatim).
    pub timestamp: &'a str,
    /// 64 lowercase hex characters.
    pub signature: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the `x-webflow-timestamp` header is missing")]
    MissingTimestamp,
    #[error("the `x-webflow-signature` header is missing")]
    MissingSignature,
    #[error("the timestamp is not a whole number of milliseconds")]
    MalformedTimestamp,
    #[error("the signature is not 64 lowercase hex characters")]
    MalformedSignature,
    #[error("the timestamp is {skew_ms} ms away from now, outside the replay window")]
    OutsideReplayWindow { skew_ms: i64 },
    #[error("the signature does not match any configured secret")]
    Mismatch,
    #[error("no webhook secret is configured for this site")]
    NoSecret,
}

impl SignatureError {
    /// A short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingTimestamp => "missing_timestamp",
            Self::MissingSignature => "missing_signature",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::OutsideReplayWindow { .. } => "replay_window",
            Self::Mismatch => "signature_mismatch",
            Self::NoSecret => "no_secret",
        }
    }
}

/// Computes the signature Webflow would send for `body` at `timestamp` (lowercase hex).
/// Used by the simulator, the load generator and tests.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b":");
    ctx.update(body);
    hex::encode(ctx.sign().as_ref())
}

/// Verifies a webhook against any of `secrets` (several while a secret rotates).
///
/// `now_ms` is the receiver's clock in Unix milliseconds; `window_ms` bounds
/// `|now - timestamp|`, so both stale replays and far-future timestamps are refused.
pub fn verify_webhook<S: AsRef<str>>(
    secrets: &[S],
    headers: WebhookSignature<'_>,
    body: &[u8],
    now_ms: i64,
    window_ms: i64,
) -> Result<(), SignatureError> {
    let timestamp_ms: i64 = parse_timestamp(headers.timestamp)?;
    let expected = decode_signature(headers.signature)?;

    let skew_ms = now_ms.saturating_sub(timestamp_ms);
    if skew_ms.unsigned_abs() > window_ms.unsigned_abs() {
        return Err(SignatureError::OutsideReplayWindow { skew_ms });
    }
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }

    // Check every secret, without stopping early, so timing does not reveal which one matched.
    let mut matched = false;
    for secret in secrets {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref().as_bytes());
        let mut message = Vec::with_capacity(headers.timestamp.len() + 1 + body.len());
        message.extend_from_slice(headers.timestamp.as_bytes());
        message.push(b':');
        message.extend_from_slice(body);
        // ring's verify compares in constant time.
        matched |= hmac::verify(&key, &message, &expected).is_ok();
    }
    if matched { Ok(()) } else { Err(SignatureError::Mismatch) }
}

fn parse_timestamp(raw: &str) -> Result<i64, SignatureError> {
    if raw.is_empty() {
        return Err(SignatureError::MissingTimestamp);
    }
    if raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    raw.parse().map_err(|_| SignatureError::MalformedTimestamp)
}

fn decode_signature(raw: &str) -> Result<[u8; 32], SignatureError> {
    if raw.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    // Webflow sends lowercase hex; the SDK refuses upper case, and so do we.
    if raw.len() != 64 || !raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(SignatureError::MalformedSignature);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(raw, &mut out).map_err(|_| SignatureError::MalformedSignature)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret";
    const WINDOW: i64 = 300_000;

    fn headers<'a>(ts: &'a str, sig: &'a str) -> WebhookSignature<'a> {
        WebhookSignature {
            timestamp: ts,
            signature: sig,
        }
    }

    #[test]
    fn accepts_its_own_signature_and_rejects_a_flipped_byte() {
        let body = br#"{"triggerType":"ecomm_new_order","payload":{}}"#;
        let sig = sign(SECRET, "1000", body);
        assert_eq!(
            verify_webhook(&[SECRET], headers("1000", &sig), body, 1000, WINDOW),
            Ok(())
        );

        let mut altered = body.to_vec();
        altered[5] ^= 1;
        assert_eq!(
            verify_webhook(&[SECRET], headers("1000", &sig), &altered, 1000, WINDOW),
            Err(SignatureError::Mismatch)
        );
        let mut bad = sig.clone().into_bytes();
        bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            verify_webhook(&[SECRET], headers("1000", &bad), body, 1000, WINDOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_timestamp_is_part_of_the_signed_message() {
        let body = b"{}";
        let sig = sign(SECRET, "1000", body);
        assert_eq!(
            verify_webhook(&[SECRET], headers("1001", &sig), body, 1000, WINDOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn replay_window_applies_in_both_directions() {
        let body = b"{}";
        let now = 10_000_000;
        for ts in [now - WINDOW - 1, now + WINDOW + 1] {
            let ts = ts.to_string();
            let sig = sign(SECRET, &ts, body);
            assert!(matches!(
                verify_webhook(&[SECRET], headers(&ts, &sig), body, now, WINDOW),
                Err(SignatureError::OutsideReplayWindow { .. })
            ));
        }
        for ts in [now - WINDOW, now + WINDOW] {
            let ts = ts.to_string();
            let sig = sign(SECRET, &ts, body);
            assert_eq!(verify_webhook(&[SECRET], headers(&ts, &sig), body, now, WINDOW), Ok(()));
        }
    }

    #[test]
    fn malformed_headers_are_named() {
        let body = b"{}";
        let sig = sign(SECRET, "1000", body);
        let cases = [
            ("", sig.as_str(), SignatureError::MissingTimestamp),
            ("1000", "", SignatureError::MissingSignature),
            ("10.5", sig.as_str(), SignatureError::MalformedTimestamp),
            ("-1000", sig.as_str(), SignatureError::MalformedTimestamp),
            ("1000", "abc", SignatureError::MalformedSignature),
            ("1000", &sig[..63], SignatureError::MalformedSignature),
        ];
        for (ts, s, want) in cases {
            assert_eq!(verify_webhook(&[SECRET], headers(ts, s), body, 1000, WINDOW), Err(want));
        }
        let upper = sig.to_uppercase();
        assert_eq!(
            verify_webhook(&[SECRET], headers("1000", &upper), body, 1000, WINDOW),
            Err(SignatureError::MalformedSignature)
        );
    }

    #[test]
    fn any_configured_secret_verifies_during_rotation() {
        let body = b"{}";
        let sig = sign("new", "1000", body);
        assert_eq!(
            verify_webhook(&["old", "new"], headers("1000", &sig), body, 1000, WINDOW),
            Ok(())
        );
        assert_eq!(
            verify_webhook(&["old"], headers("1000", &sig), body, 1000, WINDOW),
            Err(SignatureError::Mismatch)
        );
        let none: [&str; 0] = [];
        assert_eq!(
            verify_webhook(&none, headers("1000", &sig), body, 1000, WINDOW),
            Err(SignatureError::NoSecret)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_accepts_garbage(
            ts in ".{0,24}",
            sig in ".{0,80}",
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let result = verify_webhook(&[SECRET], headers(&ts, &sig), &body, 1000, WINDOW);
            if result.is_ok() {
                proptest::prop_assert_eq!(sign(SECRET, &ts, &body), sig);
            }
        }
    }
}
