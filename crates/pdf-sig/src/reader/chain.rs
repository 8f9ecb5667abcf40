//! The cross-reference chain: from `startxref` through every `/Prev`, tables (with a
//! hybrid file's `/XRefStm`) and streams, newest first.

use crate::dict::Entry as _;
use std::collections::HashSet;
use std::io::{BufReader, Read, Seek, SeekFrom};

use lopdf::{Dictionary, Object};

use super::xref::{self, NumberedEntry, StreamLayout};
use super::{Document, RawDict, Tail, XrefEntry, XrefKind, filter, lexer};
use crate::error::{Error, Result};
use crate::limits::MAX_XREF_ENTRIES;

/// The largest buffer a cross-reference table is read through.
const TABLE_BUFFER: usize = 64 * 1024;

impl<R: Read + Seek> Document<R> {
    /// Reads every section from `startxref` on; those that lie in `tail` are read from
    /// it.
    pub(super) fn read_xref_chain(&mut self, tail: Tail<'_>) -> Result<()> {
        let mut visited = HashSet::new();
        let mut budget = MAX_XREF_ENTRIES;
        let mut next = Some(self.startxref);
        let mut newest = true;
        // Newest section first, so in order of precedence.
        let mut all = Vec::new();
        while let Some(offset) = next {
            if !visited.insert(offset) {
                return Err(Error::XrefLoop { offset });
            }
            if offset >= self.file_len {
                return Err(Error::OutOfBounds {
                    what: "a /Prev offset",
                    offset,
                    file_len: self.file_len,
                });
            }
            let (kind, trailer, entries) =
                self.read_section(offset, &tail, &mut budget, &mut visited)?;
            if let Some(&highest) = entries.iter().map(|(number, _)| number).max() {
                self.highest = self.highest.max(highest);
            }
            if all.is_empty() {
                all = entries;
            } else {
                all.extend(entries);
            }
            next = match trailer.get(b"Prev")? {
                Some(Object::Integer(prev)) => {
                    Some(u64::try_from(prev).map_err(|_| Error::BadXref {
                        offset,
                        reason: "negative /Prev",
                    })?)
                }
                Some(Object::Real(prev)) if prev.fract() == 0.0 && prev >= 0.0 => Some(prev as u64),
                _ => None,
            };
            if newest {
                self.size = match trailer.get(b"Size")? {
                    Some(Object::Integer(size)) => size.max(0) as u64,
                    _ => 0,
                };
                self.kind = kind;
                self.trailer = trailer;
                newest = false;
            }
        }
        self.entries = xref::Entries::from_precedence(all);
        Ok(())
    }

    /// Reads one section: a table (with its hybrid `/XRefStm`, if any) or a stream.
    /// Returns its entries in order of precedence.
    fn read_section(
        &mut self,
        offset: u64,
        tail: &Tail<'_>,
        budget: &mut u64,
        visited: &mut HashSet<u64>,
    ) -> Result<(XrefKind, RawDict, Vec<NumberedEntry>)> {
        let mut buffer = [0u8; 32];
        let in_tail = tail.from(offset);
        let head = match in_tail {
            Some(rest) => rest.get(..32).unwrap_or(rest),
            None => self.read_up_to(offset, &mut buffer)?,
        };
        let start = head
            .iter()
            .position(|&byte| !lexer::is_whitespace(byte))
            .unwrap_or(0);
        if head
            .get(start..)
            .is_some_and(|rest| rest.starts_with(b"xref"))
        {
            let (table, trailer_at, trailer) = match in_tail {
                // The table and trailer run to the end of the file, all in the tail.
                Some(mut rest) => {
                    let (table, trailer_at) = xref::parse_table(&mut rest, offset, budget)?;
                    let rest = tail.from(trailer_at).unwrap_or_default();
                    let trailer = lexer::Parser::new(rest, trailer_at, true).raw_dictionary()?;
                    (table, trailer_at, trailer)
                }
                None => {
                    let (table, trailer_at) = self.read_table(offset, budget)?;
                    let trailer = self.parse_at(trailer_at, |parser| parser.raw_dictionary())?;
                    (table, trailer_at, trailer)
                }
            };
            let trailer = trailer.ok_or(Error::BadXref {
                offset: trailer_at,
                reason: "trailer is not a dictionary",
            })?;
            // In-use entries before free ones, each kind in table order: in a hybrid file
            // (7.5.8.4) the objects in the stream at /XRefStm come between them, since
            // the table's free entries often mark exactly the objects the stream holds.
            // A stable sort keeps `partition`'s order without building two new vectors.
            let mut entries = table;
            entries.sort_by_key(|(_, entry)| matches!(entry, XrefEntry::Free));
            let Some(Object::Integer(stream_offset)) = trailer.get(b"XRefStm")? else {
                return Ok((XrefKind::Table, trailer, entries));
            };
            let stream_offset = u64::try_from(stream_offset).map_err(|_| Error::BadXref {
                offset,
                reason: "negative /XRefStm",
            })?;
            if !visited.insert(stream_offset) {
                return Err(Error::XrefLoop {
                    offset: stream_offset,
                });
            }
            let (_, stream_entries) = self.read_xref_stream(stream_offset, budget)?;
            let first_free = entries
                .iter()
                .position(|(_, entry)| matches!(entry, XrefEntry::Free))
                .unwrap_or(entries.len());
            let free = entries.split_off(first_free);
            entries.extend(stream_entries);
            entries.extend(free);
            Ok((XrefKind::Table, trailer, entries))
        } else {
            let (dict, entries) = self.read_xref_stream(offset, budget)?;
            Ok((XrefKind::Stream, RawDict::from_dictionary(&dict), entries))
        }
    }

    /// Reads the table at `offset` from the file; returns its entries and the offset
    /// of the trailer's dictionary.
    fn read_table(&mut self, offset: u64, budget: &mut u64) -> Result<(Vec<NumberedEntry>, u64)> {
        self.source
            .seek(SeekFrom::Start(offset))
            .map_err(Error::io("reading the input"))?;
        // A table is read through a buffer no larger than what is left of the file:
        // a one-page PDF should not allocate (and the allocator consolidate) 64 KiB.
        let left = self.file_len - offset;
        let capacity = usize::try_from(left).map_or(TABLE_BUFFER, |left| left.min(TABLE_BUFFER));
        let mut input = BufReader::with_capacity(capacity, (&mut self.source).take(left));
        xref::parse_table(&mut input, offset, budget)
    }

    fn read_xref_stream(
        &mut self,
        offset: u64,
        budget: &mut u64,
    ) -> Result<(Dictionary, Vec<NumberedEntry>)> {
        if offset >= self.file_len {
            return Err(Error::OutOfBounds {
                what: "a cross-reference stream",
                offset,
                file_len: self.file_len,
            });
        }
        let found = self
            .indirect_object_at(offset)
            .map_err(|error| match error {
                Error::Syntax { .. } => Error::BadXref {
                    offset,
                    reason: "neither a table nor a stream at the offset",
                },
                other => other,
            })?;
        let (Object::Dictionary(dict), Some(data_offset)) = (found.object, found.stream_data)
        else {
            return Err(Error::BadXref {
                offset,
                reason: "not a stream",
            });
        };
        if !matches!(dict.at(b"Type"), Ok(Object::Name(name)) if name == b"XRef") {
            return Err(Error::BadXref {
                offset,
                reason: "stream without /Type /XRef",
            });
        }
        // The entries of a cross-reference stream's dictionary are direct (7.5.8.2).
        let Ok(&Object::Integer(length)) = dict.at(b"Length") else {
            return Err(Error::BadXref {
                offset,
                reason: "/Length missing or indirect",
            });
        };
        let layout = StreamLayout::from_dict(&dict, offset)?;
        let raw = self.stream_data(found.id.0, data_offset, length)?;
        let data = filter::decode(found.id.0, &dict, raw)?;
        let entries = layout.entries(&data, offset, budget)?;
        self.highest = self.highest.max(found.id.0);
        Ok((dict, entries))
    }
}
