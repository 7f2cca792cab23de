//! PostgreSQL conversions (feature `postgres`): the identifiers and states are stored as
//! text, exactly as `as_str` spells them, and an [`Address`] as JSONB in Webflow's layout.
//! The database crate binds and reads the domain types directly, so they are not turned into
//! bare strings at the storage edge.

use crate::{Address, MessageId, OrderId, OrderState, SiteId, Sku, WebflowOrderStatus};
use bytes::BytesMut;
use postgres_types::{FromSql, IsNull, Json, ToSql, Type, to_sql_checked};
use std::error::Error;

type BoxError = Box<dyn Error + Sync + Send>;

/// Text columns: bound and read as the type's string form; whatever column type `&str`
/// accepts (`TEXT`, `VARCHAR`…) is accepted.
macro_rules! text_column {
    ($name:ty, |$value:ident| $to_str:expr, |$text:ident| $from_str:expr) => {
        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                let $value = self;
                <&str as ToSql>::to_sql(&$to_str, ty, out)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }

            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                let $text = <&str as FromSql>::from_sql(ty, raw)?;
                $from_str
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

text_column!(SiteId, |id| id.as_str(), |text| Ok(SiteId::from(text)));
text_column!(OrderId, |id| id.as_str(), |text| Ok(OrderId::from(text)));
text_column!(Sku, |id| id.as_str(), |text| Ok(Sku::from(text)));
text_column!(MessageId, |id| id.as_str(), |text| Ok(MessageId::from(text)));
text_column!(OrderState, |state| state.as_str(), |text| Ok(
    text.parse::<OrderState>()?
));
text_column!(WebflowOrderStatus, |status| status.as_str(), |text| Ok(
    WebflowOrderStatus::from_wire(text)
));

impl ToSql for Address {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        Json(self).to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Json<Address> as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Address {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Json::<Address>::from_sql(ty, raw)?.0)
    }

    fn accepts(ty: &Type) -> bool {
        <Json<Address> as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::ALL_STATES;

    fn round_trip<T>(value: &T, ty: &Type) -> T
    where
        T: ToSql + for<'a> FromSql<'a>,
    {
        let mut out = BytesMut::new();
        assert!(matches!(value.to_sql_checked(ty, &mut out).unwrap(), IsNull::No));
        T::from_sql(ty, &out).unwrap()
    }

    #[test]
    fn ids_and_states_are_stored_as_their_text() {
        let mut out = BytesMut::new();
        SiteId::new("site-1").to_sql_checked(&Type::TEXT, &mut out).unwrap();
        assert_eq!(&out[..], b"site-1");
        assert_eq!(
            round_trip(&OrderId::new("fc7-128"), &Type::VARCHAR),
            OrderId::new("fc7-128")
        );
        assert_eq!(round_trip(&Sku::new("ball"), &Type::TEXT), Sku::new("ball"));
        assert_eq!(round_trip(&MessageId::new("m"), &Type::TEXT), MessageId::new("m"));
        for state in ALL_STATES {
            let mut out = BytesMut::new();
            state.to_sql_checked(&Type::TEXT, &mut out).unwrap();
            assert_eq!(&out[..], state.as_str().as_bytes());
            assert_eq!(round_trip(&state, &Type::TEXT), state);
        }
        assert!(OrderState::from_sql(&Type::TEXT, b"shipping").is_err());
        let status = WebflowOrderStatus::DisputeLost;
        assert_eq!(round_trip(&status, &Type::TEXT), status);
        let unknown = WebflowOrderStatus::from_wire("on-hold");
        assert_eq!(round_trip(&unknown, &Type::TEXT), unknown);
        assert!(SiteId::new("x").to_sql_checked(&Type::INT4, &mut out).is_err());
    }

    #[test]
    fn an_address_is_jsonb() {
        let address = Address {
            line1: Some("1 Main St".into()),
            ..Address::default()
        };
        assert_eq!(round_trip(&address, &Type::JSONB), address);
        let legacy = b"\x01{\"line1\": \"1 Main St\", \"postalCode\": \"1\"}";
        let read = Address::from_sql(&Type::JSONB, legacy).unwrap();
        assert_eq!(read.postal_code.as_deref(), Some("1"));
    }
}
