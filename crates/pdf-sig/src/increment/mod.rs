//! What the increment adds and rewrites (DESIGN.md, "pdf-sig: the increment"): the
//! signature dictionary, a signature field merged with its widget (or an existing empty
//! field filled), the page's `/Annots`, and the AcroForm's `/Fields` and `/SigFlags`.
//! Rewritten objects keep their number and generation; new ones get numbers from
//! [`Document::next_object_number`] on.

mod appearance;
mod tree;

use crate::dict::Entry as _;
use std::io::{Read, Seek};
use std::time::SystemTime;

use lopdf::{Dictionary, Object};

use crate::Warning;
use crate::error::{Error, ObjectId, Result};
use crate::options::{Rect, SignOptions};
use crate::reader::{Document, RawDict};
use crate::syntax::NewDictionary;
use crate::text::CivilTime;
use appearance::{AppearanceText, appearance_stream};
use tree::Field;

/// Annotation flags of the widget: Print (4) and Locked (128).
const WIDGET_FLAGS: i64 = 132;

/// `/SigFlags 3`: SignaturesExist and AppendOnly (12.7.2, Table 219).
const SIG_FLAGS: i64 = 3;

/// The planned increment: every object to write except the cross-reference data.
pub(crate) struct Increment {
    /// Rewritten and new objects, in object-number order.
    pub(crate) objects: Vec<(ObjectId, Body)>,
    /// The signature dictionary's number; the layout writes it with its placeholders.
    pub(crate) signature_id: ObjectId,
    /// The signature dictionary without `/ByteRange` and `/Contents`, and not closed.
    pub(crate) signature: NewDictionary,
    /// The first object number not used by the increment.
    pub(crate) next_number: u32,
    /// The fully qualified name of the signed field.
    pub(crate) field_name: String,
    /// Things the caller should know (characters the appearance could not show).
    pub(crate) warnings: Vec<Warning>,
}

/// What the increment writes for one object.
pub(crate) enum Body {
    /// A new object, or one rewritten in lopdf's model.
    Object(Object),
    /// A new object, already written.
    Written(Vec<u8>),
    /// A dictionary of the input as found but for one entry, set to `value`.
    Amended {
        dict: RawDict,
        key: &'static [u8],
        value: Object,
    },
}

impl Body {
    fn amended(dict: RawDict, key: &'static [u8], value: impl Into<Object>) -> Self {
        Body::Amended {
            dict,
            key,
            value: value.into(),
        }
    }
}

impl From<Object> for Body {
    fn from(object: Object) -> Self {
        Body::Object(object)
    }
}

/// The objects the increment writes, each number once (the last insert wins). A
/// handful, so a vector: a `BTreeMap`'s first node alone takes 1.4 KiB.
#[derive(Default)]
struct Objects(Vec<(ObjectId, Body)>);

impl Objects {
    fn insert(&mut self, id: ObjectId, body: impl Into<Body>) {
        let body = body.into();
        match self.0.iter_mut().find(|(found, _)| *found == id) {
            Some(slot) => slot.1 = body,
            None => self.0.push((id, body)),
        }
    }

    /// The objects in object-number order.
    fn into_sorted(mut self) -> Vec<(ObjectId, Body)> {
        self.0.sort_unstable_by_key(|(id, _)| *id);
        self.0
    }
}

/// Hands out new object numbers.
struct Numbers {
    next: u32,
}

impl Numbers {
    fn take(&mut self) -> Result<ObjectId> {
        let number = self.next;
        self.next = number.checked_add(1).ok_or(Error::ObjectNumbersExhausted {
            highest: u64::from(number),
        })?;
        Ok((number, 0))
    }
}

/// Where the AcroForm dictionary lives.
enum FormHome {
    Missing,
    Direct,
    Indirect(ObjectId),
}

/// Plans the increment for signing `doc` with `options` at `time`.
pub(crate) fn plan<R: Read + Seek>(
    doc: &mut Document<R>,
    options: &SignOptions,
    time: SystemTime,
) -> Result<Increment> {
    let trailer = doc.raw_trailer();
    if trailer.has(b"Encrypt") {
        return Err(Error::Encrypted);
    }
    let Some(Object::Reference(root_id)) = trailer.get(b"Root")? else {
        return Err(Error::wrong_type(
            "the trailer's /Root",
            "an indirect reference",
            None,
        ));
    };
    let catalog = doc.raw_dictionary(root_id, "the /Root catalog")?;
    check_doc_mdp(doc, &catalog)?;

    let (home, mut form) = match catalog.get(b"AcroForm")? {
        None | Some(Object::Null) => (FormHome::Missing, Dictionary::new()),
        Some(Object::Reference(id)) => (
            FormHome::Indirect(id),
            doc.take_dictionary(id, "the AcroForm")?,
        ),
        Some(Object::Dictionary(form)) => (FormHome::Direct, form),
        Some(_) => {
            return Err(Error::wrong_type(
                "the catalog's /AcroForm",
                "a dictionary",
                Some(root_id),
            ));
        }
    };
    let (fields_id, mut field_roots) = match form.at(b"Fields") {
        Err(_) | Ok(Object::Null) => (None, Vec::new()),
        Ok(Object::Reference(id)) => match doc.object(*id)? {
            Object::Array(items) => (Some(*id), items),
            _ => {
                return Err(Error::wrong_type(
                    "the AcroForm's /Fields",
                    "an array",
                    Some(*id),
                ));
            }
        },
        Ok(Object::Array(items)) => (None, items.clone()),
        Ok(_) => {
            return Err(Error::wrong_type(
                "the AcroForm's /Fields",
                "an array",
                None,
            ));
        }
    };
    let fields = tree::fields(doc, &field_roots)?;

    // Everything is read before new numbers are handed out: reading may meet object
    // streams holding numbers above every cross-reference entry, and those count too.
    let existing = options
        .field_name
        .as_deref()
        .and_then(|name| fields.iter().find(|field| field.name == name));
    let target = match existing {
        Some(field) => {
            check_fillable(doc, &fields, field)?;
            let rotate = match field.dict.at(b"P") {
                Ok(Object::Reference(page)) => tree::page_rotation(doc, *page)?,
                _ => 0,
            };
            Target::Fill { field, rotate }
        }
        None => {
            let name = match &options.field_name {
                Some(name) if name.contains('.') => {
                    return Err(Error::InvalidOption(
                        "a new field's name cannot contain a period",
                    ));
                }
                Some(name) => name.clone(),
                None => free_name(&fields),
            };
            let page = tree::find_page(
                doc,
                &catalog.get(b"Pages")?.unwrap_or(Object::Null),
                options.page_index,
            )?;
            let annots = read_annots(doc, &page)?;
            Target::New { name, page, annots }
        }
    };

    let civil = CivilTime::from_system_time(time);
    let mut numbers = Numbers {
        next: doc.next_object_number()?,
    };
    let signature_id = numbers.take()?;
    let mut objects = Objects::default();
    let mut warnings = Vec::new();
    // Only a signature with an area shows it.
    let appearance_text = || AppearanceText {
        name: options.name.as_deref(),
        date: civil.display(),
        reason: options.reason.as_deref(),
        location: options.location.as_deref(),
    };

    let field_name = match target {
        Target::Fill { field, rotate } => {
            fill_field(
                rotate,
                field,
                signature_id,
                appearance_text,
                &mut numbers,
                &mut objects,
                &mut warnings,
            )?;
            field.name.clone()
        }
        Target::New { name, page, annots } => {
            let widget_id = numbers.take()?;
            let mut widget = NewDictionary::with_capacity(160);
            widget
                .name(b"Type", b"Annot")
                .name(b"Subtype", b"Widget")
                .name(b"FT", b"Sig")
                .text(b"T", &name)
                .entry(b"V", &Object::Reference(signature_id))
                .entry(b"F", &Object::Integer(WIDGET_FLAGS))
                .entry(b"P", &Object::Reference(page.id));
            match options.visible {
                Some(placement) => {
                    widget.entry(b"Rect", &rect_object(&placement.rect));
                    let (stream, stream_warnings) =
                        appearance_stream(&placement.rect, page.rotate, &appearance_text());
                    if page.rotate != 0 {
                        // For viewers that rebuild appearances: the widget turns with the page.
                        let rotation =
                            Dictionary::from_iter([("R", Object::Integer(i64::from(page.rotate)))]);
                        widget.entry(b"MK", &Object::Dictionary(rotation));
                    }
                    warnings.extend(stream_warnings);
                    let stream_id = numbers.take()?;
                    objects.insert(stream_id, Object::Stream(stream));
                    let appearance = Dictionary::from_iter([("N", Object::Reference(stream_id))]);
                    widget.entry(b"AP", &Object::Dictionary(appearance));
                }
                None => {
                    widget.entry(b"Rect", &rect_object(&Rect::new(0.0, 0.0, 0.0, 0.0)));
                }
            }
            objects.insert(widget_id, Body::Written(widget.finish()));
            add_to_annots(page, annots, widget_id, &mut objects);
            field_roots.push(Object::Reference(widget_id));
            match fields_id {
                Some(id) => {
                    objects.insert(id, Object::Array(field_roots));
                }
                None => form.set("Fields", Object::Array(field_roots)),
            }
            name
        }
    };

    // The AcroForm is rewritten where it lives, and only when it changed.
    let form_changed = (fields_id.is_none() && existing.is_none())
        || !matches!(form.at(b"SigFlags"), Ok(Object::Integer(flags)) if flags & SIG_FLAGS == SIG_FLAGS);
    if form_changed {
        let flags = match form.at(b"SigFlags") {
            Ok(Object::Integer(flags)) => flags | SIG_FLAGS,
            _ => SIG_FLAGS,
        };
        form.set("SigFlags", flags);
        if !form.has(b"Fields") {
            form.set("Fields", Object::Array(Vec::new()));
        }
        match home {
            FormHome::Indirect(id) => {
                objects.insert(id, Object::Dictionary(form));
            }
            FormHome::Direct => {
                objects.insert(root_id, Body::amended(catalog, b"AcroForm", form));
            }
            FormHome::Missing => {
                let form_id = numbers.take()?;
                objects.insert(form_id, Object::Dictionary(form));
                let reference = Object::Reference(form_id);
                objects.insert(root_id, Body::amended(catalog, b"AcroForm", reference));
            }
        }
    }

    let optional = [
        (&b"Name"[..], &options.name),
        (b"Reason", &options.reason),
        (b"Location", &options.location),
        (b"ContactInfo", &options.contact_info),
    ];
    let mut signature = NewDictionary::with_capacity(256);
    signature
        .name(b"Type", b"Sig")
        .name(b"Filter", b"Adobe.PPKLite")
        .name(b"SubFilter", options.sub_filter.name().as_bytes())
        .text(b"M", &civil.pdf_date());
    for (key, value) in optional {
        if let Some(value) = value {
            signature.text(key, value);
        }
    }
    Ok(Increment {
        objects: objects.into_sorted(),
        signature_id,
        signature,
        next_number: numbers.next,
        field_name,
        warnings,
    })
}

/// Refuses a document certified with DocMDP `/P 1` (12.8.2.2).
fn check_doc_mdp<R: Read + Seek>(doc: &mut Document<R>, catalog: &RawDict) -> Result<()> {
    let Some(perms) = catalog.get(b"Perms")? else {
        return Ok(());
    };
    let Object::Dictionary(perms) = doc.resolve(&perms)? else {
        return Ok(());
    };
    let Ok(certification) = perms.at(b"DocMDP") else {
        return Ok(());
    };
    let Object::Dictionary(certification) = doc.resolve(certification)? else {
        return Ok(());
    };
    let references = match certification.at(b"Reference") {
        Ok(references) => doc.resolve(references)?,
        Err(_) => return Ok(()),
    };
    let Object::Array(references) = references else {
        return Ok(());
    };
    for reference in &references {
        let Object::Dictionary(reference) = doc.resolve(reference)? else {
            continue;
        };
        if !matches!(reference.at(b"TransformMethod"), Ok(Object::Name(method)) if method == b"DocMDP")
        {
            continue;
        }
        let permission = match reference.at(b"TransformParams") {
            Ok(params) => match doc.resolve(params)? {
                Object::Dictionary(params) => match params.at(b"P") {
                    Ok(Object::Integer(permission)) => *permission,
                    _ => 2,
                },
                _ => 2,
            },
            Err(_) => 2,
        };
        if permission == 1 {
            return Err(Error::CertifiedNoChanges);
        }
    }
    Ok(())
}

/// `Signature1`, `Signature2`, ...: the first one no field is named.
fn free_name(fields: &[Field]) -> String {
    (1u32..)
        .map(|number| {
            let mut name = String::from("Signature");
            crate::text::push_padded(&mut name, number, 1);
            name
        })
        .find(|name| !fields.iter().any(|field| &field.name == name))
        .unwrap_or_else(|| "Signature".to_owned())
}

fn rect_object(rect: &Rect) -> Object {
    Object::Array(vec![
        Object::Real(rect.left),
        Object::Real(rect.bottom),
        Object::Real(rect.right),
        Object::Real(rect.top),
    ])
}

/// Reads a `/Rect` array of four numbers.
fn read_rect(object: &Object) -> Option<Rect> {
    let Object::Array(items) = object else {
        return None;
    };
    let numbers: Vec<f32> = items
        .iter()
        .filter_map(|item| match item {
            Object::Integer(value) => Some(*value as f32),
            Object::Real(value) => Some(*value),
            _ => None,
        })
        .collect();
    let [x1, y1, x2, y2] = numbers.as_slice() else {
        return None;
    };
    Some(Rect::new(
        x1.min(*x2),
        y1.min(*y2),
        x1.max(*x2),
        y1.max(*y2),
    ))
}

/// Checks that `field` is an empty signature field no earlier signature locks.
fn check_fillable<R: Read + Seek>(
    doc: &mut Document<R>,
    fields: &[Field],
    field: &Field,
) -> Result<()> {
    if !field.is_signature() {
        return Err(Error::FieldNotSignature {
            field: field.name.clone(),
        });
    }
    if field.is_signed() {
        return Err(Error::FieldAlreadySigned {
            field: field.name.clone(),
        });
    }
    if tree::is_locked(doc, fields, &field.name)? {
        return Err(Error::FieldLocked {
            field: field.name.clone(),
        });
    }
    Ok(())
}

/// Fills an existing empty signature field; a widget merged with it that has an area
/// gets an appearance.
fn fill_field<'a>(
    rotate: u16,
    field: &Field,
    signature_id: ObjectId,
    appearance_text: impl FnOnce() -> AppearanceText<'a>,
    numbers: &mut Numbers,
    objects: &mut Objects,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let mut dict = field.dict.clone();
    dict.set("V", Object::Reference(signature_id));
    let rect = dict.at(b"Rect").ok().and_then(read_rect);
    if let Some(rect) = rect.filter(|rect| rect.width() > 0.0 && rect.height() > 0.0) {
        let (stream, stream_warnings) = appearance_stream(&rect, rotate, &appearance_text());
        warnings.extend(stream_warnings);
        let stream_id = numbers.take()?;
        objects.insert(stream_id, Object::Stream(stream));
        dict.set(
            "AP",
            Dictionary::from_iter([("N", Object::Reference(stream_id))]),
        );
    }
    objects.insert(field.id, Object::Dictionary(dict));
    Ok(())
}

/// The page's `/Annots` as found.
enum Annots {
    /// No `/Annots`: the page gets a direct array.
    Missing,
    /// A direct array in the page.
    Direct(Vec<Object>),
    /// An indirect array object.
    Indirect(ObjectId, Vec<Object>),
}

/// What the increment is for: a new field on a page, or an existing field to fill.
enum Target<'f> {
    Fill {
        field: &'f Field,
        rotate: u16,
    },
    New {
        name: String,
        page: tree::Page,
        annots: Annots,
    },
}

fn read_annots<R: Read + Seek>(doc: &mut Document<R>, page: &tree::Page) -> Result<Annots> {
    match page.dict.get(b"Annots")? {
        Some(Object::Reference(id)) => match doc.object(id)? {
            Object::Array(annots) => Ok(Annots::Indirect(id, annots)),
            _ => Err(Error::wrong_type(
                "the page's /Annots",
                "an array",
                Some(id),
            )),
        },
        Some(Object::Array(annots)) => Ok(Annots::Direct(annots)),
        None | Some(Object::Null) => Ok(Annots::Missing),
        Some(_) => Err(Error::wrong_type(
            "the page's /Annots",
            "an array",
            Some(page.id),
        )),
    }
}

/// Adds the widget to the page's `/Annots`: in the page if the array is direct or
/// missing, in the array object if it is indirect.
fn add_to_annots(page: tree::Page, annots: Annots, widget_id: ObjectId, objects: &mut Objects) {
    let widget = Object::Reference(widget_id);
    match annots {
        Annots::Indirect(id, mut annots) => {
            annots.push(widget);
            objects.insert(id, Object::Array(annots));
        }
        Annots::Direct(mut annots) => {
            annots.push(widget);
            objects.insert(page.id, Body::amended(page.dict, b"Annots", annots));
        }
        Annots::Missing => {
            let annots = vec![widget];
            objects.insert(page.id, Body::amended(page.dict, b"Annots", annots));
        }
    }
}
