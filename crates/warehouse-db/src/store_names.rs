//! What operators read instead of Webflow site ids: each site's store name and merchant.
//!
//! A removed store keeps its row, so the history of its orders still shows its name; when a
//! site id was reused by a later store, the live one (else the newest) names it.

use crate::Db;
use crate::error::Result;
use std::collections::HashMap;

/// A store's name and its merchant's, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreName {
    pub store: String,
    pub merchant: String,
    /// The store was removed (its history stays).
    pub removed: bool,
}

/// Site id -> store and merchant names.
#[derive(Debug, Clone, Default)]
pub struct StoreNames {
    by_site: HashMap<String, StoreName>,
    merchants: usize,
}

impl StoreNames {
    pub fn get(&self, site_id: &str) -> Option<&StoreName> {
        self.by_site.get(site_id)
    }

    /// Whether more than one merchant exists: a single-merchant install need not repeat its
    /// merchant's name on every line.
    pub fn several_merchants(&self) -> bool {
        self.merchants > 1
    }

    /// The store's name, or the site id when no store names it (an order of a site that was
    /// never registered, kept from before stores were data).
    pub fn store_or_site<'a>(&'a self, site_id: &'a str) -> &'a str {
        self.get(site_id).map_or(site_id, |n| n.store.as_str())
    }

    #[cfg(test)]
    fn from_rows(rows: Vec<(String, StoreName)>, merchants: usize) -> Self {
        Self {
            by_site: rows.into_iter().collect(),
            merchants,
        }
    }
}

/// Every site's store name (live stores first, then the newest removed one) and merchant.
pub async fn load<C: Db>(client: &C) -> Result<StoreNames> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (s.site_id) s.site_id, s.name, m.name, s.removed_at IS NOT NULL,
                    (SELECT count(*) FROM merchants)
               FROM stores s JOIN merchants m ON m.id = s.merchant_id
              ORDER BY s.site_id, (s.removed_at IS NULL) DESC, s.id DESC",
            &[],
        )
        .await?;
    // Only ever asked about a store it names: with no rows, the count does not matter.
    let merchants: i64 = rows.first().map_or(0, |r| r.get(4));
    Ok(StoreNames {
        by_site: rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    StoreName {
                        store: r.get(1),
                        merchant: r.get(2),
                        removed: r.get(3),
                    },
                )
            })
            .collect(),
        merchants: usize::try_from(merchants).unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_site_shows_its_id() {
        let names = StoreNames::from_rows(
            vec![(
                "site-a".into(),
                StoreName {
                    store: "shop".into(),
                    merchant: "default".into(),
                    removed: false,
                },
            )],
            1,
        );
        assert_eq!(names.store_or_site("site-a"), "shop");
        assert_eq!(names.store_or_site("site-b"), "site-b");
        assert!(!names.several_merchants());
    }
}
