//! Order actions: refunds, address corrections, retrying the Webflow write-back, resolving a
//! review.

use super::{CommandError, enqueue, printable, with_outbox};
use crate::auth::{Operator, Role, order_not_found};
use crate::state::AppState;
use domain::{Envelope, Event, MessageId, OrderId, OrderState, SiteId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::orders;

/// Webflow's refund reasons.
pub const REFUND_REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested"];

/// What a refund request answers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RefundAccepted {
    pub site_id: String,
    pub order_id: String,
    /// Always `requested`: the refund is sent to Webflow once, asynchronously.
    #[schema(example = "requested")]
    pub refund: String,
}

/// Requests the refund of an order in Webflow (once, however often it is asked); the order is
/// cancelled here when Webflow confirms.
pub async fn request_refund(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    reason: &str,
) -> Result<RefundAccepted, CommandError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    if !REFUND_REASONS.contains(&reason) {
        return Err(CommandError::invalid(
            "reason",
            "reason is one of duplicate, fraudulent, requested",
        ));
    }
    with_outbox(state, &operator.name, async |tx| {
        let order = orders::lock(tx, &site_id.into(), &order_id.into())
            .await?
            .ok_or_else(|| order_not_found(site_id, order_id))?;
        if matches!(order.state, OrderState::Cancelled) {
            return Err(CommandError::conflict("wrong_state", "the order is already cancelled"));
        }
        let envelope = Envelope::new(
            // One refund per order, however often the button is pressed.
            MessageId::new(format!("refund-{site_id}-{order_id}")),
            order.correlation_id.clone().unwrap_or_else(|| order_id.to_owned()),
            SiteId::new(site_id),
            Event::OrderRefundRequestedV1 {
                order_id: OrderId::new(order_id),
                reason: reason.to_owned(),
            },
        );
        audit::record(
            &**tx,
            AuditEntry::about(
                site_id,
                order_id,
                AuditKind::RefundRequested,
                &operator.name,
                serde_json::json!({"reason": reason}),
            ),
        )
        .await?;
        enqueue(tx, &operator.name, &envelope).await?;
        let accepted = RefundAccepted {
            site_id: site_id.to_owned(),
            order_id: order_id.to_owned(),
            refund: "requested".to_owned(),
        };
        Ok((accepted, vec![envelope]))
    })
    .await
}

/// A corrected shipping address. Text fields contain no control characters; the required ones
/// are not blank either.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectedAddress {
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub addressee: String,
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub line1: String,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub line2: Option<String>,
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub city: String,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub state: Option<String>,
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub postal_code: String,
    /// A 2-letter ISO 3166 code such as `US`.
    #[schema(min_length = 2, max_length = 2, pattern = "^[A-Z]{2}$", example = "US")]
    pub country: String,
}

impl CorrectedAddress {
    /// Printable text, the required fields not blank, a 2-letter country code.
    fn validate(&self) -> Result<(), CommandError> {
        for (field, value) in [
            ("addressee", Some(&self.addressee)),
            ("line1", Some(&self.line1)),
            ("line2", self.line2.as_ref()),
            ("city", Some(&self.city)),
            ("state", self.state.as_ref()),
            ("postal_code", Some(&self.postal_code)),
            ("country", Some(&self.country)),
        ] {
            if let Some(value) = value {
                printable(field, value, None)?;
            }
        }
        for (field, value) in [
            ("addressee", &self.addressee),
            ("line1", &self.line1),
            ("city", &self.city),
            ("postal_code", &self.postal_code),
        ] {
            if value.trim().is_empty() {
                return Err(CommandError::invalid(field, format!("{field} is required")));
            }
        }
        if self.country.len() != 2 || !self.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(CommandError::invalid(
                "country",
                "country is a 2-letter ISO code such as US",
            ));
        }
        Ok(())
    }

    /// The address in Webflow's shape (`postalCode`...), as orders store it.
    fn to_webflow(&self) -> domain::Address {
        domain::Address {
            address_type: Some("shipping".into()),
            addressee: Some(self.addressee.clone()),
            line1: Some(self.line1.clone()),
            line2: self.line2.clone(),
            city: Some(self.city.clone()),
            state: self.state.clone(),
            postal_code: Some(self.postal_code.clone()),
            country: Some(self.country.clone()),
            japan_type: None,
        }
    }

    /// The comment noted on the Webflow order.
    fn comment(&self) -> String {
        let one_line = [
            Some(&self.line1),
            self.line2.as_ref(),
            Some(&self.city),
            self.state.as_ref(),
            Some(&self.postal_code),
            Some(&self.country),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
        format!(
            "Shipping address corrected by the warehouse: {}, {one_line}",
            self.addressee
        )
    }
}

/// What an address correction answers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AddressCorrected {
    pub site_id: String,
    pub order_id: String,
    /// The stored address, in Webflow's shape (`addressee`, `line1`, `postalCode`...).
    #[schema(value_type = Object)]
    pub shipping_address: domain::Address,
}

/// Corrects the shipping address before packing. Webflow's API cannot change an address, so
/// the correction is noted on the Webflow order's comment (once per distinct correction).
pub async fn correct_address(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    address: &CorrectedAddress,
) -> Result<AddressCorrected, CommandError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    address.validate()?;
    with_outbox(state, &operator.name, async |tx| {
        let order = orders::lock(tx, &site_id.into(), &order_id.into())
            .await?
            .ok_or_else(|| order_not_found(site_id, order_id))?;
        if order.state.progress() >= OrderState::Packed.progress() {
            return Err(CommandError::conflict(
                "wrong_state",
                format!("order is `{}`; the address can change only before packing", order.state),
            ));
        }
        let webflow_address = address.to_webflow();
        orders::override_shipping_address(tx, order.id, &webflow_address).await?;
        let comment = address.comment();
        let digest = comment.bytes().fold(0u64, |h, b| {
            h.wrapping_mul(1_099_511_628_211).wrapping_add(u64::from(b))
        });
        let envelope = Envelope::new(
            MessageId::new(format!("address-{site_id}-{order_id}-{digest:016x}")),
            order.correlation_id.clone().unwrap_or_else(|| order_id.to_owned()),
            SiteId::new(site_id),
            Event::OrderAddressCorrectedV1 {
                order_id: OrderId::new(order_id),
                comment,
            },
        );
        audit::record(
            &**tx,
            AuditEntry::about(
                site_id,
                order_id,
                AuditKind::AddressCorrected,
                &operator.name,
                serde_json::json!({"applied": true, "by": "warehouse"}),
            ),
        )
        .await?;
        enqueue(tx, &operator.name, &envelope).await?;
        let corrected = AddressCorrected {
            site_id: site_id.to_owned(),
            order_id: order_id.to_owned(),
            shipping_address: webflow_address,
        };
        Ok((corrected, vec![envelope]))
    })
    .await
}

/// Notes on the order's timeline that its stuck messages were replayed (the broker side is
/// the caller's).
pub async fn note_writeback_replayed(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    replayed: usize,
) -> Result<(), CommandError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    let client = state.pool.get().await?;
    audit::record(
        &*client,
        AuditEntry::about(
            site_id,
            order_id,
            AuditKind::WritebackRetried,
            &operator.name,
            serde_json::json!({"replayed": replayed}),
        ),
    )
    .await?;
    Ok(())
}

/// What asking for the Webflow write-back again did.
#[derive(Debug, PartialEq, Eq)]
pub enum WritebackRetry {
    /// `order.shipped` was emitted again; notify-webflow's ledger makes each write happen once.
    Requested,
    /// Only a shipped order is written back; the order is in this state.
    NotShipped(OrderState),
}

/// Asks notify-webflow to write a shipped order back to Webflow again.
pub async fn retry_writeback(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
) -> Result<WritebackRetry, CommandError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    with_outbox(state, &operator.name, async |tx| {
        let order = orders::find(&**tx, &site_id.into(), &order_id.into())
            .await?
            .ok_or_else(|| order_not_found(site_id, order_id))?;
        if order.state != OrderState::Shipped {
            return Ok((WritebackRetry::NotShipped(order.state), Vec::new()));
        }
        let envelope = Envelope::new(
            MessageId::new(format!("writeback-retry-{}", uuid::Uuid::new_v4().simple())),
            order.correlation_id.clone().unwrap_or_else(|| order_id.to_owned()),
            SiteId::new(site_id),
            Event::OrderShippedV1 {
                order_id: OrderId::new(order_id),
            },
        );
        audit::record(
            &**tx,
            AuditEntry::about(
                site_id,
                order_id,
                AuditKind::WritebackRetried,
                &operator.name,
                serde_json::json!({"message_id": envelope.message_id.as_str()}),
            ),
        )
        .await?;
        enqueue(tx, &operator.name, &envelope).await?;
        Ok((WritebackRetry::Requested, vec![envelope]))
    })
    .await
}

/// Takes an order in review off the list, with a note of what was done.
pub async fn resolve_review(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    note: &str,
) -> Result<(), CommandError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    if note.is_empty() {
        return Err(CommandError::invalid("note", "say what was done (a note is required)"));
    }
    printable("note", &note.replace(['\n', '\r'], " "), Some(2_000))?;
    let client = state.pool.get().await?;
    let order = orders::find(&*client, &site_id.into(), &order_id.into())
        .await?
        .ok_or_else(|| order_not_found(site_id, order_id))?;
    if order.state != OrderState::NeedsReview {
        return Err(CommandError::conflict(
            "wrong_state",
            format!("order is `{}`, not in review", order.state),
        ));
    }
    audit::record(
        &*client,
        AuditEntry::about(
            site_id,
            order_id,
            AuditKind::ReviewResolved,
            &operator.name,
            serde_json::json!({"note": note}),
        ),
    )
    .await?;
    Ok(())
}
