//! Human-readable tables, or JSON for scripts.

use warehouse_db::OrderView;

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_uppercase()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

pub fn messages_table(messages: &[crate::dlq::DeadMessage]) -> String {
    table(
        &["message id", "order", "service", "reason", "attempts", "error"],
        &messages
            .iter()
            .map(|m| {
                vec![
                    m.message_id.clone().unwrap_or_default(),
                    m.order_id.clone().unwrap_or_default(),
                    m.service.clone().unwrap_or_default(),
                    m.reason.clone().unwrap_or_default(),
                    m.attempts.map(|a| a.to_string()).unwrap_or_default(),
                    m.error.clone().unwrap_or_default().chars().take(80).collect(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

/// The order view as text: state, shipment, then the timeline.
pub fn order_text(view: &OrderView) -> String {
    let or_dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
    let mut out = format!(
        "order {} (site {})\nstate: {}{}\nwebflow status: {}\n",
        view.order_id,
        view.site_id,
        view.state,
        view.state_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        or_dash(view.webflow_status.as_ref().map(|s| s.to_string()).as_ref()),
    );
    if let Some(shipment) = &view.shipment {
        out.push_str(&format!(
            "shipment: {} {} {} {}\n",
            shipment.status,
            or_dash(shipment.carrier.as_ref()),
            or_dash(shipment.tracking_number.as_ref()),
            or_dash(shipment.tracking_url.as_ref()),
        ));
    }
    out.push_str("\ntimeline:\n");
    let rows: Vec<Vec<String>> = view
        .timeline
        .iter()
        .map(|e| {
            vec![
                // As the JSON shows it (RFC 3339, `Z`).
                serde_json::to_value(e.at)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| e.at.to_rfc3339()),
                e.actor.clone(),
                e.kind.to_string(),
                e.detail.to_string().chars().take(100).collect(),
            ]
        })
        .collect();
    out.push_str(&table(&["at", "actor", "kind", "detail"], &rows));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align() {
        let t = super::table(&["queue", "n"], &[vec!["wms.enrich.dead".into(), "3".into()]]);
        assert_eq!(t, "QUEUE            N\nwms.enrich.dead  3");
    }
}
