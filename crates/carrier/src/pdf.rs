//! A small PDF writer: pages of text (the 14 standard fonts need no embedding), filled
//! rectangles and lines. Enough for shipping labels and packing slips; no dependency.
//!
//! Coordinates are PDF points (1/72 inch) from the page's bottom-left corner. Text is written in
//! WinAnsi: characters outside printable ASCII become `?`.

/// One thing drawn on a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        text: String,
    },
    /// A filled black rectangle (barcode bars, blocks).
    Rect { x: f32, y: f32, w: f32, h: f32 },
    /// A line of `width` points.
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
    },
}

impl Item {
    pub fn text(x: f32, y: f32, size: f32, text: impl Into<String>) -> Self {
        Self::Text {
            x,
            y,
            size,
            bold: false,
            text: text.into(),
        }
    }

    pub fn bold(x: f32, y: f32, size: f32, text: impl Into<String>) -> Self {
        Self::Text {
            x,
            y,
            size,
            bold: true,
            text: text.into(),
        }
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

fn content(items: &[Item]) -> String {
    let mut out = String::new();
    for item in items {
        match item {
            Item::Text { x, y, size, bold, text } => {
                let font = if *bold { "F2" } else { "F1" };
                out.push_str(&format!(
                    "BT /{font} {size:.1} Tf {x:.2} {y:.2} Td ({}) Tj ET\n",
                    escape(text)
                ));
            }
            Item::Rect { x, y, w, h } => out.push_str(&format!("{x:.2} {y:.2} {w:.2} {h:.2} re f\n")),
            Item::Line { x1, y1, x2, y2, width } => {
                out.push_str(&format!("{width:.2} w {x1:.2} {y1:.2} m {x2:.2} {y2:.2} l S\n"));
            }
        }
    }
    out
}

/// A PDF of `pages`, each `width` × `height` points.
pub fn document(width: f32, height: f32, pages: &[Vec<Item>]) -> Vec<u8> {
    // Objects: 1 catalog, 2 page tree, 3-4 fonts, then a (page, contents) pair per page.
    let mut objects: Vec<String> = Vec::new();
    let page_ids: Vec<usize> = (0..pages.len()).map(|i| 5 + 2 * i).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        page_ids
            .iter()
            .map(|id| format!("{id} 0 R"))
            .collect::<Vec<_>>()
            .join(" "),
        pages.len()
    ));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into());
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>".into());
    for (index, items) in pages.iter().enumerate() {
        let contents_id = page_ids[index] + 1;
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:.2} {height:.2}] \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {contents_id} 0 R >>"
        ));
        let stream = content(items);
        objects.push(format!("<< /Length {} >>\nstream\n{stream}endstream", stream.len()));
    }
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (index, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", index + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// An Interleaved 2 of 5 barcode of `digits` (an even count of ASCII digits; others are
/// skipped, and a leading 0 evens the count), `narrow` points per narrow module, wide = 3×.
pub fn interleaved_2_of_5(x: f32, y: f32, height: f32, narrow: f32, digits: &str) -> Vec<Item> {
    const PATTERNS: [&[u8; 5]; 10] = [
        b"nnwwn", b"wnnnw", b"nwnnw", b"wwnnn", b"nnwnw", b"wnwnn", b"nwwnn", b"nnnww", b"wnnwn", b"nwnwn",
    ];
    let mut digits: Vec<usize> = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| usize::from(b - b'0'))
        .collect();
    if digits.len() % 2 == 1 {
        digits.insert(0, 0);
    }
    let wide = narrow * 3.0;
    let width = |m: u8| if m == b'w' { wide } else { narrow };
    // (is_bar, width) in order: start, interleaved pairs, stop.
    let mut modules: Vec<(bool, f32)> = vec![(true, narrow), (false, narrow), (true, narrow), (false, narrow)];
    for pair in digits.chunks(2) {
        let (bars, spaces) = (PATTERNS[pair[0]], PATTERNS[pair[1]]);
        for i in 0..5 {
            modules.push((true, width(bars[i])));
            modules.push((false, width(spaces[i])));
        }
    }
    modules.extend([(true, wide), (false, narrow), (true, narrow)]);
    let mut items = Vec::new();
    let mut at = x;
    for (bar, w) in modules {
        if bar {
            items.push(Item::Rect { x: at, y, w, h: height });
        }
        at += w;
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_well_formed_document() {
        let pdf = document(288.0, 432.0, &[vec![Item::text(10.0, 10.0, 12.0, "Hello (world) ü")]]);
        let text = String::from_utf8_lossy(&pdf);
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(text.ends_with("%%EOF\n"));
        assert!(text.contains("(Hello \\(world\\) ?) Tj"));
        // Every xref offset points at its object (byte offsets into the raw file).
        let xref_at: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pdf[xref_at..].starts_with(b"xref\n"));
        let xref = String::from_utf8_lossy(&pdf[xref_at..]).into_owned();
        for (index, line) in xref.lines().skip(3).take(6).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(
                pdf[offset..].starts_with(format!("{} 0 obj", index + 1).as_bytes()),
                "object {}",
                index + 1
            );
        }
    }

    #[test]
    fn a_barcode_has_two_wide_of_five_per_digit() {
        let bars = interleaved_2_of_5(0.0, 0.0, 10.0, 1.0, "12");
        // start 2 bars + 5 bars for the pair + stop 2 bars.
        assert_eq!(bars.len(), 9);
    }
}
