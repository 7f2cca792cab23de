//! The order lifecycle inside the warehouse and the transitions it allows.
//!
//! ```text
//! received ──► ready ──► reserved ──► packed ──► shipped ──► fulfilled
//!    │           │  ▲        │           │          │
//!    │           ▼  │        │           │          └──► needs_review
//!    │      backordered      │           │
//!    └──────────┴────────────┴───────────┴──► cancelled
//! ```
//! Any active state may also go to `needs_review` (an operator must look).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Seen from Webflow, not yet ready for the floor (e.g. payment pending, or no shipping needed).
    Received,
    /// Paid and shippable: waiting for a stock reservation.
    Ready,
    /// Not enough stock (or an unknown SKU); retried when stock arrives.
    Backordered,
    /// Stock reserved and a pick task created.
    Reserved,
    /// Picked and packed into parcels; waiting for a carrier booking.
    Packed,
    /// Booked with a carrier; tracking known.
    Shipped,
    /// Carrier and tracking written back to Webflow and the order marked fulfilled there.
    Fulfilled,
    /// Refunded or lost dispute; any reservation released.
    Cancelled,
    /// Something an operator must decide (e.g. refunded after shipping).
    NeedsReview,
}

/// Every state, in lifecycle order.
pub const ALL_STATES: [OrderState; 9] = [
    OrderState::Received,
    OrderState::Ready,
    OrderState::Backordered,
    OrderState::Reserved,
    OrderState::Packed,
    OrderState::Shipped,
    OrderState::Fulfilled,
    OrderState::Cancelled,
    OrderState::NeedsReview,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("an order cannot move from `{from}` to `{to}`")]
    NotAllowed { from: OrderState, to: OrderState },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an order state")]
pub struct UnknownState(pub String);

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Ready => "ready",
            Self::Backordered => "backordered",
            Self::Reserved => "reserved",
            Self::Packed => "packed",
            Self::Shipped => "shipped",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
            Self::NeedsReview => "needs_review",
        }
    }

    /// Terminal states: nothing moves an order out of them automatically.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Fulfilled | Self::Cancelled | Self::NeedsReview)
    }

    /// Whether goods have physically left (or are about to leave) the building.
    pub fn has_shipped(self) -> bool {
        matches!(self, Self::Shipped | Self::Fulfilled)
    }

    /// Rank along the happy path; used to ignore stale events that would move an order backwards.
    pub fn progress(self) -> u8 {
        match self {
            Self::Received => 0,
            Self::Ready | Self::Backordered => 1,
            Self::Reserved => 2,
            Self::Packed => 3,
            Self::Shipped => 4,
            Self::Fulfilled | Self::Cancelled | Self::NeedsReview => 5,
        }
    }

    pub fn can_transition_to(self, to: OrderState) -> bool {
        use OrderState::*;
        match (self, to) {
            (a, b) if a == b => false,
            (_, NeedsReview) => !matches!(self, NeedsReview),
            (Received, Ready | Cancelled) => true,
            (Ready, Reserved | Backordered | Cancelled) => true,
            (Backordered, Reserved | Cancelled) => true,
            (Reserved, Packed | Cancelled) => true,
            (Packed, Shipped | Cancelled) => true,
            (Shipped, Fulfilled) => true,
            _ => false,
        }
    }

    /// Checks a transition, returning the target state when allowed.
    pub fn transition(self, to: OrderState) -> Result<OrderState, TransitionError> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(TransitionError::NotAllowed { from: self, to })
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATES
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in ALL_STATES {
            assert_eq!(state.as_str().parse::<OrderState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!("shipping".parse::<OrderState>().is_err());
    }

    #[test]
    fn happy_path_is_allowed() {
        use OrderState::*;
        let path = [Received, Ready, Reserved, Packed, Shipped, Fulfilled];
        for pair in path.windows(2) {
            assert!(pair[0].can_transition_to(pair[1]), "{:?}", pair);
        }
        assert!(Ready.can_transition_to(Backordered));
        assert!(Backordered.can_transition_to(Reserved));
    }

    #[test]
    fn no_backwards_moves_and_terminal_states_stay() {
        use OrderState::*;
        assert_eq!(
            Fulfilled.transition(Ready),
            Err(TransitionError::NotAllowed {
                from: Fulfilled,
                to: Ready
            })
        );
        assert!(
            !Shipped.can_transition_to(Cancelled),
            "shipped goods need review, not cancel"
        );
        assert!(Shipped.can_transition_to(NeedsReview));
        for to in ALL_STATES {
            assert!(!Cancelled.can_transition_to(to) || to == NeedsReview);
            assert!(!NeedsReview.can_transition_to(to));
        }
        for state in ALL_STATES {
            assert!(!state.can_transition_to(state));
        }
    }
}
