//! Text in PDF: text strings (7.9.2), dates (7.9.4) and WinAnsiEncoding (Annex D).

use std::time::{SystemTime, UNIX_EPOCH};

use lopdf::{Object, StringFormat};

/// A text string object: literal ASCII when it is plain, otherwise UTF-16BE with a
/// byte order mark.
pub(crate) fn text_string(text: &str) -> Object {
    if is_printable_ascii(text) {
        Object::String(text.as_bytes().to_vec(), StringFormat::Literal)
    } else {
        let mut bytes = vec![0xFE, 0xFF];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        Object::String(bytes, StringFormat::Hexadecimal)
    }
}

/// Whether `text` is printable ASCII, which a text string holds as it is (a literal
/// string in PDFDocEncoding); anything else is written as UTF-16BE.
pub(crate) fn is_printable_ascii(text: &str) -> bool {
    text.bytes().all(|byte| (0x20..0x7F).contains(&byte))
}

/// Decodes a text string: UTF-16BE or UTF-8 with a byte order mark, else
/// PDFDocEncoding, read as Latin-1 (they agree on the printable characters).
pub(crate) fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        bytes.iter().map(|&byte| char::from(byte)).collect()
    }
}

/// A UTC time broken into its calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl CivilTime {
    /// Breaks `time` into UTC calendar fields; times before 1970 are clamped to it.
    pub(crate) fn from_system_time(time: SystemTime) -> Self {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        let days = (seconds / 86_400) as i64;
        let of_day = seconds % 86_400;
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month,
            day,
            hour: (of_day / 3600) as u32,
            minute: (of_day / 60 % 60) as u32,
            second: (of_day % 60) as u32,
        }
    }

    /// `D:YYYYMMDDHHmmSS+00'00'`, the PDF date format.
    pub(crate) fn pdf_date(&self) -> String {
        let mut text = String::with_capacity(23);
        text.push_str("D:");
        self.push_fields(&mut text, ["", "", "", "", ""]);
        text.push_str("+00'00'");
        text
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`, for people.
    pub(crate) fn display(&self) -> String {
        let mut text = String::with_capacity(23);
        self.push_fields(&mut text, ["-", "-", " ", ":", ":"]);
        text.push_str(" UTC");
        text
    }

    /// The six fields, zero-padded, with `separators` between them (no `fmt`: this runs
    /// for every signature).
    fn push_fields(&self, text: &mut String, separators: [&str; 5]) {
        push_padded(text, self.year.clamp(0, 9999) as u32, 4);
        let fields = [self.month, self.day, self.hour, self.minute, self.second];
        for (separator, field) in separators.into_iter().zip(fields) {
            text.push_str(separator);
            push_padded(text, field, 2);
        }
    }
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
pub(crate) fn push_padded(text: &mut String, value: u32, width: usize) {
    let mut digits = [0u8; 20];
    let start = crate::syntax::decimal(&mut digits, u64::from(value));
    let len = digits.len() - start;
    text.extend(std::iter::repeat_n('0', width.saturating_sub(len)));
    text.extend(
        digits
            .get(start..)
            .unwrap_or_default()
            .iter()
            .map(|&digit| char::from(digit)),
    );
}

/// The WinAnsiEncoding codes 0x80 to 0x9F and the characters they stand for.
const WIN_ANSI_HIGH: [(u8, char); 27] = [
    (0x80, '\u{20AC}'),
    (0x82, '\u{201A}'),
    (0x83, '\u{0192}'),
    (0x84, '\u{201E}'),
    (0x85, '\u{2026}'),
    (0x86, '\u{2020}'),
    (0x87, '\u{2021}'),
    (0x88, '\u{02C6}'),
    (0x89, '\u{2030}'),
    (0x8A, '\u{0160}'),
    (0x8B, '\u{2039}'),
    (0x8C, '\u{0152}'),
    (0x8E, '\u{017D}'),
    (0x91, '\u{2018}'),
    (0x92, '\u{2019}'),
    (0x93, '\u{201C}'),
    (0x94, '\u{201D}'),
    (0x95, '\u{2022}'),
    (0x96, '\u{2013}'),
    (0x97, '\u{2014}'),
    (0x98, '\u{02DC}'),
    (0x99, '\u{2122}'),
    (0x9A, '\u{0161}'),
    (0x9B, '\u{203A}'),
    (0x9C, '\u{0153}'),
    (0x9E, '\u{017E}'),
    (0x9F, '\u{0178}'),
];

/// Encodes `text` in WinAnsiEncoding, the encoding the standard fonts show. Returns the
/// bytes and how many characters had no code and became `?`.
pub(crate) fn win_ansi(text: &str) -> (Vec<u8>, usize) {
    let mut replaced = 0;
    let bytes = text
        .chars()
        .map(|character| {
            let code = u32::from(character);
            let byte = match code {
                0x20..=0x7E | 0xA0..=0xFF => Some(code as u8),
                _ => WIN_ANSI_HIGH
                    .iter()
                    .find(|&&(_, known)| known == character)
                    .map(|&(byte, _)| byte),
            };
            byte.unwrap_or_else(|| {
                replaced += 1;
                b'?'
            })
        })
        .collect();
    (bytes, replaced)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates() {
        let time = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56 UTC
        let civil = CivilTime::from_system_time(time);
        assert_eq!(civil.pdf_date(), "D:20240229123456+00'00'");
        assert_eq!(civil.display(), "2024-02-29 12:34:56 UTC");
        assert_eq!(
            CivilTime::from_system_time(UNIX_EPOCH).pdf_date(),
            "D:19700101000000+00'00'"
        );
        let end_of_year = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!(
            CivilTime::from_system_time(end_of_year).display(),
            "2024-12-31 23:59:59 UTC"
        );
    }

    #[test]
    fn text_strings_round_trip() {
        for text in ["Plain", "Zoë Ångström", "签名"] {
            let Object::String(bytes, _) = text_string(text) else {
                panic!("not a string")
            };
            assert_eq!(decode_text_string(&bytes), text);
        }
        assert_eq!(
            text_string("A(b)"),
            Object::String(b"A(b)".to_vec(), StringFormat::Literal)
        );
    }

    #[test]
    fn win_ansi_replaces_what_it_cannot_show() {
        assert_eq!(win_ansi("Zoë €5"), (b"Zo\xEB \x805".to_vec(), 0));
        assert_eq!(win_ansi("签名 ok"), (b"?? ok".to_vec(), 2));
        assert_eq!(win_ansi("tab\there"), (b"tab?here".to_vec(), 1));
    }
}
