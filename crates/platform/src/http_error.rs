//! The one JSON body of every HTTP error the services answer (the ingress's webhook
//! endpoint and the warehouse's API): `{"code": "...", "message": "...", "field": "..."}`.
//! `code` is stable and machine-readable, `message` is for people and may change, and `field`
//! (only when one input is at fault) names it. Each service keeps its own error enum and
//! status codes; only the body is shared, so clients parse one shape.

use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable and machine-readable: `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `invalid_path`, `invalid_query`, `malformed_json`, `validation_failed`, `wrong_state`,
    /// `below_reserved`, `stock_overflow`, `pick_task_not_picked`, `conflict`,
    /// `payload_too_large`, `database_error`.
    #[cfg_attr(feature = "openapi", schema(example = "validation_failed"))]
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// The field at fault, when there is one (`parcels[0].weight_grams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// A body with no field at fault.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: Option<String>) -> Self {
        self.field = field;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_left_out_when_no_field_is_at_fault() {
        let body = serde_json::to_value(ErrorBody::new("not_found", "no route `/x`")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"code": "not_found", "message": "no route `/x`"})
        );
        let body = ErrorBody::new("validation_failed", "bad").with_field(Some("sku".to_owned()));
        assert_eq!(serde_json::to_value(&body).unwrap()["field"], "sku");
    }
}
