//! Stream decoding for the streams the reader itself needs: cross-reference streams and
//! object streams. Producers write these with `/FlateDecode`, usually with a PNG
//! predictor (`/DecodeParms << /Predictor 12 /Columns N >>`, qpdf and Acrobat); that,
//! the other PNG predictors and TIFF predictor 2 on 8-bit samples are what is decoded.

use crate::dict::Entry as _;
use std::io::Read;

use flate2::read::ZlibDecoder;
use lopdf::{Dictionary, Object};

use crate::error::{Error, Result};
use crate::limits::MAX_STREAM_LEN;

/// Decodes `raw`, the data of stream `object` with dictionary `dict`.
pub(crate) fn decode(object: u32, dict: &Dictionary, raw: Vec<u8>) -> Result<Vec<u8>> {
    let filters: Vec<&[u8]> = match dict.at(b"Filter") {
        Err(_) | Ok(Object::Null) => return Ok(raw),
        Ok(Object::Name(name)) => vec![name.as_slice()],
        Ok(Object::Array(names)) => names
            .iter()
            .map(|name| match name {
                Object::Name(name) => Ok(name.as_slice()),
                _ => Err(Error::Decode {
                    object,
                    reason: "/Filter holds something other than names",
                }),
            })
            .collect::<Result<_>>()?,
        Ok(_) => {
            return Err(Error::Decode {
                object,
                reason: "/Filter is neither a name nor an array",
            });
        }
    };
    let mut data = raw;
    for (index, filter) in filters.iter().enumerate() {
        let params = match dict.at(b"DecodeParms") {
            Ok(Object::Dictionary(params)) if index == 0 => Some(params),
            Ok(Object::Array(params)) => match params.get(index) {
                Some(Object::Dictionary(params)) => Some(params),
                _ => None,
            },
            _ => None,
        };
        data = match *filter {
            b"FlateDecode" | b"Fl" => unpredict(object, inflate(object, &data)?, params)?,
            other => {
                return Err(Error::UnsupportedFilter {
                    object,
                    filter: String::from_utf8_lossy(other).into_owned(),
                });
            }
        };
    }
    Ok(data)
}

fn inflate(object: u32, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ZlibDecoder::new(data)
        .take(MAX_STREAM_LEN + 1)
        .read_to_end(&mut out)
        .map_err(|_| Error::Decode {
            object,
            reason: "corrupt Flate (zlib) data",
        })?;
    if out.len() as u64 > MAX_STREAM_LEN {
        return Err(Error::StreamTooLarge {
            object,
            limit: MAX_STREAM_LEN,
        });
    }
    Ok(out)
}

fn parameter(params: &Dictionary, key: &[u8], default: i64) -> i64 {
    match params.get(key) {
        Ok(Object::Integer(value)) => *value,
        _ => default,
    }
}

/// Undoes the predictor of `/DecodeParms` (ISO 32000-1, 7.4.4.4).
fn unpredict(object: u32, data: Vec<u8>, params: Option<&Dictionary>) -> Result<Vec<u8>> {
    let Some(params) = params else {
        return Ok(data);
    };
    let predictor = parameter(params, b"Predictor", 1);
    if predictor == 1 {
        return Ok(data);
    }
    let bad = |reason| Error::Decode { object, reason };
    let columns =
        usize::try_from(parameter(params, b"Columns", 1)).map_err(|_| bad("negative /Columns"))?;
    let colors =
        usize::try_from(parameter(params, b"Colors", 1)).map_err(|_| bad("negative /Colors"))?;
    let bits = usize::try_from(parameter(params, b"BitsPerComponent", 8))
        .map_err(|_| bad("negative /BitsPerComponent"))?;
    if columns == 0 || colors == 0 || !matches!(bits, 1 | 2 | 4 | 8 | 16) {
        return Err(bad("predictor parameters out of range"));
    }
    let bits_per_pixel = colors
        .checked_mul(bits)
        .ok_or_else(|| bad("predictor parameters overflow"))?;
    let row_len = columns
        .checked_mul(bits_per_pixel)
        .map(|bits| bits.div_ceil(8))
        .filter(|&len| len as u64 <= MAX_STREAM_LEN)
        .ok_or_else(|| bad("predictor row too long"))?;
    let pixel_len = bits_per_pixel.div_ceil(8).max(1);
    match predictor {
        2 if bits == 8 => Ok(tiff_predictor(data, row_len, colors)),
        2 => Err(bad("TIFF predictor with other than 8 bits per component")),
        10..=15 => png_predictor(object, &data, row_len, pixel_len),
        _ => Err(bad("unknown /Predictor")),
    }
}

fn tiff_predictor(mut data: Vec<u8>, row_len: usize, colors: usize) -> Vec<u8> {
    for row in data.chunks_mut(row_len) {
        for index in colors..row.len() {
            let left = row.get(index - colors).copied().unwrap_or(0);
            if let Some(byte) = row.get_mut(index) {
                *byte = byte.wrapping_add(left);
            }
        }
    }
    data
}

/// PNG predictors: every row starts with a byte naming its filter (PNG spec, 9.2).
fn png_predictor(object: u32, data: &[u8], row_len: usize, pixel_len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / (row_len + 1) * row_len);
    let mut previous = vec![0u8; row_len];
    let mut current = vec![0u8; row_len];
    for encoded in data.chunks(row_len + 1) {
        let Some((&kind, bytes)) = encoded.split_first() else {
            break;
        };
        // A short last row is padded with zeros, as pdf.js and qpdf do.
        current.fill(0);
        for (slot, &byte) in current.iter_mut().zip(bytes) {
            *slot = byte;
        }
        for index in 0..row_len {
            let left = if index >= pixel_len {
                current.get(index - pixel_len).copied().unwrap_or(0)
            } else {
                0
            };
            let up = previous.get(index).copied().unwrap_or(0);
            let up_left = if index >= pixel_len {
                previous.get(index - pixel_len).copied().unwrap_or(0)
            } else {
                0
            };
            let predicted = match kind {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                _ => {
                    return Err(Error::Decode {
                        object,
                        reason: "unknown PNG row filter",
                    });
                }
            };
            if let Some(byte) = current.get_mut(index) {
                *byte = byte.wrapping_add(predicted);
            }
        }
        out.extend_from_slice(&current);
        std::mem::swap(&mut previous, &mut current);
    }
    Ok(out)
}

fn paeth(left: u8, up: u8, up_left: u8) -> u8 {
    let estimate = i16::from(left) + i16::from(up) - i16::from(up_left);
    let to_left = (estimate - i16::from(left)).abs();
    let to_up = (estimate - i16::from(up)).abs();
    let to_up_left = (estimate - i16::from(up_left)).abs();
    if to_left <= to_up && to_left <= to_up_left {
        left
    } else if to_up <= to_up_left {
        up
    } else {
        up_left
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn png_up_predictor() {
        // Two rows of three bytes, each prefixed with filter 2 (Up).
        let encoded = [2, 1, 0, 10, 2, 1, 1, 1];
        let mut dict = Dictionary::new();
        dict.set("Filter", Object::Name(b"FlateDecode".to_vec()));
        let mut params = Dictionary::new();
        params.set("Predictor", 12);
        params.set("Columns", 3);
        dict.set("DecodeParms", params);
        let decoded = decode(1, &dict, deflate(&encoded)).unwrap();
        assert_eq!(decoded, [1, 0, 10, 2, 1, 11]);
    }

    #[test]
    fn png_sub_average_paeth() {
        let encoded = [1, 1, 1, 1, 3, 2, 2, 2, 4, 0, 0, 0];
        let decoded = png_predictor(1, &encoded, 3, 1).unwrap();
        assert_eq!(decoded, [1, 2, 3, 2, 4, 5, 2, 4, 5]);
    }

    #[test]
    fn bombs_and_unknown_filters_are_errors() {
        let mut dict = Dictionary::new();
        dict.set("Filter", Object::Name(b"FlateDecode".to_vec()));
        let bomb = deflate(&vec![0u8; (MAX_STREAM_LEN + 1) as usize]);
        assert!(matches!(
            decode(3, &dict, bomb),
            Err(Error::StreamTooLarge { object: 3, .. })
        ));
        assert!(matches!(
            decode(3, &dict, b"not zlib".to_vec()),
            Err(Error::Decode { object: 3, .. })
        ));
        dict.set("Filter", Object::Name(b"LZWDecode".to_vec()));
        assert!(matches!(
            decode(3, &dict, vec![]),
            Err(Error::UnsupportedFilter { .. })
        ));
    }
}
