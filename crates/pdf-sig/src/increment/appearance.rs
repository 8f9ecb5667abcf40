//! The appearance stream of a visible signature: a thin frame and a few lines of text
//! (signer, date, reason, location) in Helvetica, one of the standard 14 fonts, so
//! that no font is embedded. The standard fonts show WinAnsiEncoding only; other
//! characters become `?` and the caller gets a [`Warning`].

use std::fmt::Write as _;

use lopdf::{Dictionary, Object, Stream};

use crate::Warning;
use crate::options::Rect;
use crate::text::win_ansi;

/// Helvetica's advance widths (thousandths of the font size) for WinAnsiEncoding codes
/// 32 to 255, from the Adobe Font Metrics of the standard 14 fonts.
const HELVETICA_WIDTHS: [u16; 224] = [
    // 0x20
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, //
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, //
    // 0x40
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, //
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, //
    // 0x60
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, //
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 556, //
    // 0x80
    556, 556, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 556, 611, 556, //
    556, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 556, 500, 667, //
    // 0xA0
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, //
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, //
    // 0xC0
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, //
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, //
    // 0xE0
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, //
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, //
];

/// What a visible signature shows.
pub(crate) struct AppearanceText<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) date: String,
    pub(crate) reason: Option<&'a str>,
    pub(crate) location: Option<&'a str>,
}

/// The widest a line of `bytes` (WinAnsi) is at font size 1.
fn text_width(bytes: &[u8]) -> f32 {
    let units: u32 = bytes
        .iter()
        .map(|&byte| {
            u32::from(
                HELVETICA_WIDTHS
                    .get(usize::from(byte).wrapping_sub(32))
                    .copied()
                    .unwrap_or(556),
            )
        })
        .sum();
    units as f32 / 1000.0
}

/// A number as content streams write it: no exponent, at most three decimals.
fn number(value: f32) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A literal string for a content stream, escaping what must be escaped and writing
/// bytes outside printable ASCII as octal, so that the stream stays plain text.
fn literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('(');
    for &byte in bytes {
        match byte {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7E => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out.push(')');
    out
}

/// Builds the form XObject shown in a widget of size `rect` on a page turned by
/// `rotate` degrees, and the warnings about characters it could not show.
///
/// On a turned page the text is laid out in the turned frame (width and height swapped
/// at 90 and 270 degrees) and the form's `/Matrix` turns it back, so that it reads
/// upright as the page is shown (12.5.5: the form's box, transformed by its matrix, is
/// fitted to the annotation's rectangle).
pub(crate) fn appearance_stream(
    rect: &Rect,
    rotate: u16,
    text: &AppearanceText<'_>,
) -> (Stream, Vec<Warning>) {
    let (width, height) = match rotate {
        90 | 270 => (rect.height().abs(), rect.width().abs()),
        _ => (rect.width().abs(), rect.height().abs()),
    };
    let mut warnings = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut add = |label: &str, value: &str, what: &'static str| {
        let (bytes, replaced) = win_ansi(&format!("{label}{value}"));
        if replaced > 0 {
            warnings.push(Warning::CharactersReplaced {
                what,
                count: replaced,
            });
        }
        lines.push(bytes);
    };
    if let Some(name) = text.name {
        add("Digitally signed by ", name, "name");
    }
    add("Date: ", &text.date, "date");
    if let Some(reason) = text.reason {
        add("Reason: ", reason, "reason");
    }
    if let Some(location) = text.location {
        add("Location: ", location, "location");
    }

    // The largest size, up to 12 points, at which every line fits the box.
    let padding = (width.min(height) * 0.08).clamp(0.5, 4.0);
    let inner_width = (width - 2.0 * padding).max(1.0);
    let inner_height = (height - 2.0 * padding).max(1.0);
    let leading = 1.2;
    let widest = lines
        .iter()
        .map(|line| text_width(line))
        .fold(0.0f32, f32::max)
        .max(0.001);
    let size = (inner_height / (lines.len() as f32 * leading))
        .min(inner_width / widest)
        .clamp(0.5, 12.0);

    let mut content = String::new();
    let _ = writeln!(content, "q 0.4 0.4 0.4 RG 0.5 w");
    let _ = writeln!(
        content,
        "0.25 0.25 {} {} re S",
        number(width - 0.5),
        number(height - 0.5)
    );
    // Clip to the inner box, so that text too long even at the smallest size stays inside.
    let _ = writeln!(
        content,
        "{} {} {} {} re W n",
        number(padding),
        number(padding),
        number(inner_width),
        number(inner_height)
    );
    let _ = writeln!(
        content,
        "BT 0 g /F1 {} Tf {} TL",
        number(size),
        number(size * leading)
    );
    let first_baseline = height - padding - size;
    let _ = writeln!(content, "{} {} Td", number(padding), number(first_baseline));
    for (index, line) in lines.iter().enumerate() {
        let operator = if index == 0 { "Tj" } else { "'" };
        let _ = writeln!(content, "{} {operator}", literal(line));
    }
    let _ = writeln!(content, "ET Q");

    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Subtype", Object::Name(b"Type1".to_vec()));
    font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
    font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
    let mut fonts = Dictionary::new();
    fonts.set("F1", font);
    let mut resources = Dictionary::new();
    resources.set("Font", fonts);
    resources.set(
        "ProcSet",
        Object::Array(vec![
            Object::Name(b"PDF".to_vec()),
            Object::Name(b"Text".to_vec()),
        ]),
    );

    let mut dict = Dictionary::new();
    dict.set("Type", Object::Name(b"XObject".to_vec()));
    dict.set("Subtype", Object::Name(b"Form".to_vec()));
    dict.set(
        "BBox",
        Object::Array(vec![
            0.into(),
            0.into(),
            Object::Real(width),
            Object::Real(height),
        ]),
    );
    dict.set("Resources", resources);
    let matrix: Option<[i64; 4]> = match rotate {
        90 => Some([0, 1, -1, 0]),
        180 => Some([-1, 0, 0, -1]),
        270 => Some([0, -1, 1, 0]),
        _ => None,
    };
    if let Some(matrix) = matrix {
        let items = matrix
            .iter()
            .map(|&value| Object::Integer(value))
            .chain([0.into(), 0.into()])
            .collect();
        dict.set("Matrix", Object::Array(items));
    }
    (Stream::new(dict, content.into_bytes()), warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_text_and_reports_replacements() {
        let text = AppearanceText {
            name: Some("Zoë 签"),
            date: "2024-02-29 12:34:56 UTC".to_owned(),
            reason: Some("Approved (final)"),
            location: None,
        };
        let (stream, warnings) =
            appearance_stream(&Rect::new(100.0, 100.0, 300.0, 160.0), 0, &text);
        assert_eq!(
            warnings,
            vec![Warning::CharactersReplaced {
                what: "name",
                count: 1
            }]
        );
        let content = String::from_utf8(stream.content).unwrap();
        assert!(
            content.contains("(Digitally signed by Zo\\353 ?) Tj"),
            "{content}"
        );
        assert!(
            content.contains("(Reason: Approved \\(final\\)) '"),
            "{content}"
        );
        assert!(!content.contains("Location"));
        // Three lines in 60 points high with padding: the size is bounded by the height.
        let size: f32 = content
            .split("/F1 ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(size > 8.0 && size <= 12.0, "{size}");
    }

    #[test]
    fn turned_pages_get_a_turned_frame() {
        let text = AppearanceText {
            name: None,
            date: "today".to_owned(),
            reason: None,
            location: None,
        };
        let rect = Rect::new(0.0, 0.0, 200.0, 50.0);
        let (upright, _) = appearance_stream(&rect, 0, &text);
        assert!(upright.dict.get(b"Matrix").is_err());
        let (turned, _) = appearance_stream(&rect, 90, &text);
        let bbox = turned.dict.get(b"BBox").unwrap();
        assert_eq!(
            bbox,
            &Object::Array(vec![
                0.into(),
                0.into(),
                Object::Real(50.0),
                Object::Real(200.0)
            ])
        );
        assert_eq!(
            turned.dict.get(b"Matrix").unwrap(),
            &Object::Array(
                [0, 1, -1, 0, 0, 0]
                    .into_iter()
                    .map(Object::Integer)
                    .collect()
            )
        );
    }

    #[test]
    fn numbers_have_no_exponent() {
        assert_eq!(number(1e-7), "0");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(200.0), "200");
        assert_eq!(number(1e9), "1000000000");
    }

    #[test]
    fn widths_cover_win_ansi() {
        assert_eq!(text_width(b"A"), 0.667);
        assert_eq!(text_width(&[0xFF]), 0.5);
        assert_eq!(text_width(&[0x0A]), 0.556);
    }
}
