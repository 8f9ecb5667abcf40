//! Walks over the two trees the increment touches: the page tree (to find the target
//! page) and the form-field tree (for names, empty signature fields and locks).
//! Both are bounded: a node met twice is a loop, and depth is capped.

use crate::dict::Entry as _;
use std::collections::HashSet;
use std::io::{Read, Seek};

use lopdf::{Dictionary, Object};

use crate::error::{Error, ObjectId, Result};
use crate::limits::MAX_NESTING;
use crate::reader::{Document, RawDict};
use crate::text::decode_text_string;

/// The page the widget goes on.
pub(crate) struct Page {
    pub(crate) id: ObjectId,
    /// As found: the page is rewritten with one more entry, `/Annots`.
    pub(crate) dict: RawDict,
    /// The page's `/Rotate`, inherited from the page tree if need be: 0, 90, 180 or 270.
    pub(crate) rotate: u16,
}

/// Finds the page with zero-based `index` below the `/Pages` root `root`.
pub(crate) fn find_page<R: Read + Seek>(
    doc: &mut Document<R>,
    root: &Object,
    index: u32,
) -> Result<Page> {
    let Object::Reference(root) = root else {
        return Err(Error::wrong_type(
            "the catalog's /Pages",
            "an indirect reference",
            None,
        ));
    };
    let mut walk = PageWalk {
        visited: HashSet::new(),
        remaining: index,
        seen: 0,
    };
    let node = Node::read(doc, *root)?;
    match walk.descend(doc, *root, node, 0, 0)? {
        Some(page) => Ok(page),
        None => Err(Error::PageOutOfRange {
            index,
            count: walk.seen,
        }),
    }
}

/// A page tree node as read, its `/Type` looked at once.
struct Node {
    dict: RawDict,
    kind: Kind,
}

/// What a node's `/Type` says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Page,
    Pages,
    /// Another name.
    Other,
    /// No name: whether it has `/Kids` decides.
    Untyped,
}

impl Node {
    fn read<R: Read + Seek>(doc: &mut Document<R>, id: ObjectId) -> Result<Node> {
        let dict = doc.raw_dictionary(id, "a page tree node")?;
        let kind = match dict.get(b"Type")? {
            Some(Object::Name(name)) if name == b"Page" => Kind::Page,
            Some(Object::Name(name)) if name == b"Pages" => Kind::Pages,
            Some(Object::Name(_)) => Kind::Other,
            _ => Kind::Untyped,
        };
        Ok(Node { dict, kind })
    }

    /// The `/Count` of an intermediate node (`/Type /Pages`), which a page cannot have.
    fn subtree_count(&self) -> Result<Option<u32>> {
        if self.kind != Kind::Pages {
            return Ok(None);
        }
        match self.dict.get(b"Count")? {
            Some(Object::Integer(count)) => Ok(u32::try_from(count).ok()),
            _ => Ok(None),
        }
    }
}

struct PageWalk {
    visited: HashSet<u32>,
    remaining: u32,
    seen: u32,
}

impl PageWalk {
    /// Looks for the page in the subtree of node `id`, already read as `node`. Nodes
    /// are read as [`RawDict`]s: the walk looks at four keys of each, and the page
    /// found is rewritten as found.
    fn descend<R: Read + Seek>(
        &mut self,
        doc: &mut Document<R>,
        id: ObjectId,
        node: Node,
        depth: usize,
        inherited_rotate: i64,
    ) -> Result<Option<Page>> {
        if !self.visited.insert(id.0) {
            return Err(Error::TreeLoop {
                tree: "page",
                object: id.0,
            });
        }
        if depth > MAX_NESTING {
            return Err(Error::TreeTooDeep {
                tree: "page",
                limit: MAX_NESTING,
            });
        }
        let Node { dict: node, kind } = node;
        let rotate = match node.get(b"Rotate")? {
            Some(Object::Integer(rotate)) => rotate,
            _ => inherited_rotate,
        };
        let is_leaf = match kind {
            Kind::Page => true,
            Kind::Pages | Kind::Other => false,
            Kind::Untyped => !node.has(b"Kids"),
        };
        if is_leaf {
            self.seen = self.seen.saturating_add(1);
            if self.remaining == 0 {
                let rotate = normalize_rotation(rotate);
                return Ok(Some(Page {
                    id,
                    dict: node,
                    rotate,
                }));
            }
            self.remaining -= 1;
            return Ok(None);
        }
        let kids = match node.get(b"Kids")? {
            Some(Object::Reference(kids_id)) => doc.object(kids_id)?,
            Some(kids) => kids,
            None => return Ok(None),
        };
        let Object::Array(kids) = kids else {
            return Err(Error::wrong_type(
                "a page tree node's /Kids",
                "an array",
                Some(id),
            ));
        };
        for kid in kids {
            let Object::Reference(kid) = kid else {
                return Err(Error::wrong_type(
                    "a page tree node's kid",
                    "an indirect reference",
                    Some(id),
                ));
            };
            if self.visited.contains(&kid.0) {
                return Err(Error::TreeLoop {
                    tree: "page",
                    object: kid.0,
                });
            }
            let node = Node::read(doc, kid)?;
            // Skip a whole subtree when its /Count says the page is not in it. A wrong
            // /Count can only make the walk miss the page, never loop: every node is
            // visited at most once.
            if let Some(count) = node.subtree_count()?
                && count <= self.remaining
            {
                self.visited.insert(kid.0);
                self.remaining -= count;
                self.seen = self.seen.saturating_add(count);
                continue;
            }
            if let Some(page) = self.descend(doc, kid, node, depth + 1, rotate)? {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

/// Only multiples of 90 are valid for `/Rotate` (Table 30); others count as 0.
fn normalize_rotation(rotate: i64) -> u16 {
    match rotate.rem_euclid(360) {
        90 => 90,
        180 => 180,
        270 => 270,
        _ => 0,
    }
}

/// The `/Rotate` of page `page`, inherited through its `/Parent` chain if need be.
pub(crate) fn page_rotation<R: Read + Seek>(doc: &mut Document<R>, page: ObjectId) -> Result<u16> {
    let mut node = page;
    let mut visited = HashSet::new();
    for _ in 0..=MAX_NESTING {
        if !visited.insert(node.0) {
            return Err(Error::TreeLoop {
                tree: "page",
                object: node.0,
            });
        }
        let dict = doc.dictionary(node, "a page tree node")?;
        if let Ok(Object::Integer(rotate)) = dict.at(b"Rotate") {
            return Ok(normalize_rotation(*rotate));
        }
        match dict.at(b"Parent") {
            Ok(Object::Reference(parent)) => node = *parent,
            _ => return Ok(0),
        }
    }
    Err(Error::TreeTooDeep {
        tree: "page",
        limit: MAX_NESTING,
    })
}

/// One node of the form-field tree that has a name.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) id: ObjectId,
    pub(crate) dict: Dictionary,
    /// The fully qualified name (7.7.7 of ISO 32000-1: partial names joined by periods).
    pub(crate) name: String,
    /// The field type, inherited from ancestors.
    pub(crate) field_type: Option<Vec<u8>>,
}

impl Field {
    pub(crate) fn is_signature(&self) -> bool {
        self.field_type.as_deref() == Some(b"Sig".as_slice())
    }

    pub(crate) fn is_signed(&self) -> bool {
        !matches!(self.dict.at(b"V"), Err(_) | Ok(Object::Null))
    }
}

/// Lists every named field below the AcroForm's `/Fields`.
pub(crate) fn fields<R: Read + Seek>(
    doc: &mut Document<R>,
    roots: &[Object],
) -> Result<Vec<Field>> {
    let mut walk = FieldWalk {
        visited: HashSet::new(),
        found: Vec::new(),
    };
    for root in roots {
        walk.descend(doc, root, "", None, 0)?;
    }
    Ok(walk.found)
}

struct FieldWalk {
    visited: HashSet<u32>,
    found: Vec<Field>,
}

impl FieldWalk {
    fn descend<R: Read + Seek>(
        &mut self,
        doc: &mut Document<R>,
        node: &Object,
        parent_name: &str,
        parent_type: Option<&[u8]>,
        depth: usize,
    ) -> Result<()> {
        // Fields are indirect objects (12.7.3.1); anything else cannot be signed or
        // referred to, and is skipped.
        let Object::Reference(id) = node else {
            return Ok(());
        };
        if !self.visited.insert(id.0) {
            return Err(Error::TreeLoop {
                tree: "form field",
                object: id.0,
            });
        }
        if depth > MAX_NESTING {
            return Err(Error::TreeTooDeep {
                tree: "form field",
                limit: MAX_NESTING,
            });
        }
        let dict = match doc.object(*id)? {
            Object::Dictionary(dict) => dict,
            _ => return Ok(()),
        };
        let field_type = match dict.at(b"FT") {
            Ok(Object::Name(name)) => Some(name.clone()),
            _ => parent_type.map(<[u8]>::to_vec),
        };
        let name = match dict.at(b"T") {
            Ok(Object::String(partial, _)) => {
                let partial = decode_text_string(partial);
                let name = if parent_name.is_empty() {
                    partial
                } else {
                    format!("{parent_name}.{partial}")
                };
                self.found.push(Field {
                    id: *id,
                    dict: dict.clone(),
                    name: name.clone(),
                    field_type: field_type.clone(),
                });
                name
            }
            // A kid without /T is a widget of its parent, not a field of its own.
            _ => return Ok(()),
        };
        if let Ok(kids) = dict.at(b"Kids") {
            let kids = doc.resolve(kids)?;
            if let Object::Array(kids) = kids {
                for kid in &kids {
                    self.descend(doc, kid, &name, field_type.as_deref(), depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether filling the field `name` would change a field locked by an earlier
/// signature: through a signature field's `/Lock`, or through a FieldMDP transform
/// in its signature's `/Reference` (12.8.2.4).
pub(crate) fn is_locked<R: Read + Seek>(
    doc: &mut Document<R>,
    fields: &[Field],
    name: &str,
) -> Result<bool> {
    for field in fields
        .iter()
        .filter(|field| field.is_signature() && field.is_signed())
    {
        let mut locks = Vec::new();
        if let Ok(lock) = field.dict.at(b"Lock")
            && let Object::Dictionary(lock) = doc.resolve(lock)?
        {
            locks.push(lock);
        }
        if let Ok(value) = field.dict.at(b"V")
            && let Object::Dictionary(signature) = doc.resolve(value)?
            && let Ok(references) = signature.at(b"Reference")
            && let Object::Array(references) = doc.resolve(references)?
        {
            for reference in &references {
                let Object::Dictionary(reference) = doc.resolve(reference)? else {
                    continue;
                };
                let is_field_mdp = matches!(reference.at(b"TransformMethod"), Ok(Object::Name(method)) if method == b"FieldMDP");
                if is_field_mdp
                    && let Ok(params) = reference.at(b"TransformParams")
                    && let Object::Dictionary(params) = doc.resolve(params)?
                {
                    locks.push(params);
                }
            }
        }
        for lock in &locks {
            if lock_covers(doc, lock, name)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn lock_covers<R: Read + Seek>(
    doc: &mut Document<R>,
    lock: &Dictionary,
    name: &str,
) -> Result<bool> {
    let listed = match lock.at(b"Fields") {
        Ok(fields) => match doc.resolve(fields)? {
            Object::Array(fields) => fields.iter().any(|field| match field {
                Object::String(field, _) => decode_text_string(field) == name,
                _ => false,
            }),
            _ => false,
        },
        Err(_) => false,
    };
    Ok(match lock.at(b"Action") {
        Ok(Object::Name(action)) if action == b"All" => true,
        Ok(Object::Name(action)) if action == b"Include" => listed,
        Ok(Object::Name(action)) if action == b"Exclude" => !listed,
        _ => false,
    })
}
