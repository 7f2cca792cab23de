//! Human-readable tables, or JSON for scripts.

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
pub fn order_text(view: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| if v.is_null() { "-".into() } else { v.to_string() })
    };
    let mut out = format!(
        "order {} (site {})\nstate: {}{}\nwebflow status: {}\n",
        s(&view["order_id"]),
        s(&view["site_id"]),
        s(&view["state"]),
        view["state_reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        s(&view["webflow_status"]),
    );
    let shipment = &view["shipment"];
    if !shipment.is_null() {
        out.push_str(&format!(
            "shipment: {} {} {} {}\n",
            s(&shipment["status"]),
            s(&shipment["carrier"]),
            s(&shipment["tracking_number"]),
            s(&shipment["tracking_url"])
        ));
    }
    out.push_str("\ntimeline:\n");
    let rows: Vec<Vec<String>> = view["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| {
                    vec![
                        s(&e["at"]),
                        s(&e["actor"]),
                        s(&e["kind"]),
                        e["detail"].to_string().chars().take(100).collect(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
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
