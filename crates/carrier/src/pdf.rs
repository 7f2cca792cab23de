//! PDF pages of text, filled rectangles and lines: enough for shipping labels and packing
//! slips. Written with `krilla`, with DejaVu Sans embedded (subset to the glyphs a document
//! uses), so names and addresses keep their letters in Latin, Greek, Cyrillic, Armenian,
//! Georgian and Hebrew script; a character the font lacks is drawn as its empty box, never
//! dropped. The text is extractable (ToUnicode maps), so a PDF reader can search and copy it.
//!
//! Coordinates are PDF points (1/72 inch) from the page's bottom-left corner.

use krilla::Document;
use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::{Font, TextDirection};
use std::sync::LazyLock;
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

/// Why a document could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("a page of {width} x {height} points cannot exist")]
    PageSize { width: f32, height: f32 },
    #[error("the embedded font cannot be read")]
    Font,
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

static REGULAR: LazyLock<Option<Font>> =
    LazyLock::new(|| Font::new(include_bytes!("../fonts/DejaVuSans.ttf").as_slice().into(), 0));
static BOLD: LazyLock<Option<Font>> =
    LazyLock::new(|| Font::new(include_bytes!("../fonts/DejaVuSans-Bold.ttf").as_slice().into(), 0));

/// A PDF of `pages`, each `width` × `height` points.
pub fn document(width: f32, height: f32, pages: &[Vec<Item>]) -> Result<Vec<u8>, PdfError> {
    let (regular, bold) = match (REGULAR.as_ref(), BOLD.as_ref()) {
        (Some(regular), Some(bold)) => (regular, bold),
        _ => return Err(PdfError::Font),
    };
    let settings = PageSettings::from_wh(width, height).ok_or(PdfError::PageSize { width, height })?;
    let mut document = Document::new();
    for items in pages {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        // krilla's origin is the top-left corner, y growing downwards.
        let flip = |y: f32| height - y;
        for item in items {
            match item {
                Item::Text {
                    x,
                    y,
                    size,
                    bold: is_bold,
                    text,
                } => {
                    let font = if *is_bold { bold } else { regular };
                    surface.draw_text(
                        Point::from_xy(*x, flip(*y)),
                        font.clone(),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Item::Rect { x, y, w, h } => {
                    let mut path = PathBuilder::new();
                    path.move_to(*x, flip(*y));
                    path.line_to(x + w, flip(*y));
                    path.line_to(x + w, flip(y + h));
                    path.line_to(*x, flip(y + h));
                    path.close();
                    if let Some(path) = path.finish() {
                        surface.draw_path(&path);
                    }
                }
                Item::Line { x1, y1, x2, y2, width } => {
                    let mut path = PathBuilder::new();
                    path.move_to(*x1, flip(*y1));
                    path.line_to(*x2, flip(*y2));
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: *width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                        surface.set_fill(Some(krilla::paint::Fill::default()));
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|error| PdfError::Write(format!("{error:?}")))
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

    /// Every stream of `pdf` (a dictionary's `stream` keyword), inflated where compressed.
    fn streams(pdf: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = pdf;
        while let Some(at) = find(rest, b">>\nstream\n") {
            let body_start = at + b">>\nstream\n".len();
            let Some(len) = find(&rest[body_start..], b"endstream") else {
                break;
            };
            let body = &rest[body_start..body_start + len];
            let mut inflated = Vec::new();
            use std::io::Read;
            if flate2::read::ZlibDecoder::new(body).read_to_end(&mut inflated).is_ok() {
                out.push(inflated);
            } else {
                out.push(body.to_vec());
            }
            rest = &rest[body_start + len..];
        }
        out
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn writes_a_document_with_an_embedded_font() {
        let pdf = document(288.0, 432.0, &[vec![Item::text(10.0, 10.0, 12.0, "Hello (world)")]]).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.trim_end().ends_with("%%EOF"));
        assert!(text.contains("/FontFile2"), "the font is embedded");
        assert!(text.contains("DejaVuSans"), "the font is named");
    }

    #[test]
    fn non_ascii_names_and_addresses_keep_their_letters() {
        let name = "Zoë Łukasiewicz-Müller, Москва, Ελλάδα, ŠŽČ";
        let pdf = document(288.0, 432.0, &[vec![Item::bold(10.0, 400.0, 12.0, name)]]).unwrap();
        // The ToUnicode map of the subset font maps glyphs back to every letter written.
        let maps: String = streams(&pdf)
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .filter(|s| s.contains("beginbfchar") || s.contains("beginbfrange"))
            .collect();
        assert!(!maps.is_empty(), "no ToUnicode map");
        for c in name.chars().filter(|c| !c.is_ascii()) {
            let hex = format!("<{:04X}>", u32::from(c));
            assert!(maps.contains(&hex), "{c} ({hex}) is not in the ToUnicode map");
        }
    }

    #[test]
    fn a_page_size_that_cannot_exist_is_an_error() {
        assert!(matches!(
            document(0.0, 432.0, &[vec![]]),
            Err(PdfError::PageSize { .. })
        ));
    }

    #[test]
    fn a_barcode_has_two_wide_of_five_per_digit() {
        let bars = interleaved_2_of_5(0.0, 0.0, 10.0, 1.0, "12");
        // start 2 bars + 5 bars for the pair + stop 2 bars.
        assert_eq!(bars.len(), 9);
        // Barcodes and rules draw in the document too.
        let mut items = bars;
        items.push(Item::Line {
            x1: 0.0,
            y1: 20.0,
            x2: 50.0,
            y2: 20.0,
            width: 1.0,
        });
        assert!(document(100.0, 100.0, &[items]).is_ok());
    }
}
