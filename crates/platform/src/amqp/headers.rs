//! Header names and helpers shared by producers, consumers and operator tools.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

pub const SITE_ID: &str = "x-site-id";
pub const TRIGGER_TYPE: &str = "x-trigger-type";
pub const WEBFLOW_TIMESTAMP: &str = "x-webflow-timestamp";
pub const RECEIVED_AT: &str = "x-received-at";
pub const TRACE_ID: &str = "x-trace-id";
/// How many times the consumer runtime has tried this message (1 = first delivery).
pub const ATTEMPT: &str = "x-attempt";
/// Set on dead-lettered messages by the consumer runtime.
pub const DEAD_SERVICE: &str = "x-dead-service";
pub const DEAD_REASON: &str = "x-dead-reason";
pub const DEAD_ERROR: &str = "x-dead-error";
pub const DEAD_AT: &str = "x-dead-at";
pub const SOURCE: &str = "x-source";

/// Inserts a string header.
pub fn insert_str(table: &mut FieldTable, key: &str, value: impl Into<String>) {
    table.insert(
        ShortString::from(key),
        AMQPValue::LongString(LongString::from(value.into())),
    );
}

/// Reads a header as a string, whatever string-ish type the broker kept it as.
pub fn get_str(table: Option<&FieldTable>, key: &str) -> Option<String> {
    match table?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        other => integer(other).map(|i| i.to_string()),
    }
}

/// Reads an integer header.
pub fn get_i64(table: Option<&FieldTable>, key: &str) -> Option<i64> {
    match table?.inner().get(key)? {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).parse().ok(),
        other => integer(other),
    }
}

fn integer(value: &AMQPValue) -> Option<i64> {
    Some(match value {
        AMQPValue::ShortShortInt(v) => i64::from(*v),
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::LongLongInt(v) => *v,
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok()?,
        _ => return None,
    })
}
