//! Object management: find, read attributes, create, destroy, generate key pairs.

use std::ffi::c_void;

use cryptoki_sys::*;

use crate::attribute::{Attribute, AttributeType, AttributeValue, Layout, Template, ulong};
use crate::error::{Error, Function, Result, Rv};
use crate::mechanism::{Mechanism, RawMechanism};
use crate::session::Session;
use crate::types::ObjectHandle;

/// How many handles one `C_FindObjects` call asks for.
const FIND_BATCH: usize = 64;

/// A search in progress: `C_FindObjectsFinal` runs when it is dropped, whatever
/// happened, and a failure there marks the session unfit.
struct FindOperation<'s> {
    session: &'s Session,
}

impl Drop for FindOperation<'_> {
    fn drop(&mut self) {
        let result = self
            .session
            .module()
            .function(Function::FindObjectsFinal, |l| l.C_FindObjectsFinal)
            .and_then(|f| {
                let rv = {
                    let _serial = self.session.module().serialize();
                    // SAFETY: takes a plain handle; ends the search this value started.
                    unsafe { f(self.session.handle().raw()) }
                };
                self.session.check(Function::FindObjectsFinal, rv)
            });
        if let Err(err) = result {
            self.session.mark_unfit();
            tracing::warn!(error = %err, "ending a PKCS#11 object search failed");
        }
    }
}

impl Session {
    /// Every object matching `template` (`C_FindObjectsInit`, `C_FindObjects`,
    /// `C_FindObjectsFinal`). Private objects are found only while logged in. Always
    /// include a `CKA_CLASS`: some modules return mechanism objects otherwise.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_OPERATION_ACTIVE` if another search is running on
    /// this session.
    pub fn find_objects(&self, template: &[Attribute]) -> Result<Vec<ObjectHandle>> {
        let init = self
            .module()
            .function(Function::FindObjectsInit, |l| l.C_FindObjectsInit)?;
        let find = self
            .module()
            .function(Function::FindObjects, |l| l.C_FindObjects)?;
        let mut raw_template = Template::new(template)?;
        let (ptr, count) = raw_template.as_raw();
        let rv = {
            let _serial = self.module().serialize();
            // SAFETY: the template array and the values it points to live in
            // `raw_template` and `template`, both alive for the call; the module only
            // reads them.
            unsafe { init(self.handle().raw(), ptr, count) }
        };
        self.check(Function::FindObjectsInit, rv)?;
        let _operation = FindOperation { session: self };

        let mut found = Vec::new();
        let mut batch: [CK_OBJECT_HANDLE; FIND_BATCH] = [0; FIND_BATCH];
        loop {
            let mut got: CK_ULONG = 0;
            let rv = {
                let _serial = self.module().serialize();
                // SAFETY: `batch` has room for FIND_BATCH handles, the count we pass;
                // `got` is writable.
                unsafe {
                    find(
                        self.handle().raw(),
                        batch.as_mut_ptr(),
                        FIND_BATCH as CK_ULONG,
                        &mut got,
                    )
                }
            };
            self.check(Function::FindObjects, rv)?;
            let got = got as usize;
            if got > FIND_BATCH {
                return Err(Error::Inconsistent {
                    function: Function::FindObjects,
                    what: "more handles than room was given for",
                });
            }
            found.extend(batch[..got].iter().copied().map(ObjectHandle::from_raw));
            if got < FIND_BATCH {
                return Ok(found);
            }
        }
    }

    /// Reads attributes of an object (`C_GetAttributeValue`), one result per requested
    /// type, in order: present with its value, sensitive, or absent.
    ///
    /// Fixed-size values are read in the first call; variable ones are sized there and
    /// fetched in a second call (again if a value grew in between).
    ///
    /// # Errors
    /// The module's error other than `CKR_ATTRIBUTE_SENSITIVE` and
    /// `CKR_ATTRIBUTE_TYPE_INVALID` (which become per-attribute results), e.g.
    /// `CKR_OBJECT_HANDLE_INVALID`.
    pub fn attributes(
        &self,
        object: ObjectHandle,
        types: &[AttributeType],
    ) -> Result<Vec<AttributeValue>> {
        // Buffers: fixed-size ones allocated now, variable ones after sizing.
        let mut buffers: Vec<Option<Vec<u8>>> = types
            .iter()
            .map(|t| match t.layout() {
                Layout::Bool => Some(vec![0u8; 1]),
                Layout::Ulong => Some(vec![0u8; std::mem::size_of::<CK_ULONG>()]),
                Layout::Bytes | Layout::Mechanisms => None,
            })
            .collect();
        let (mut lengths, mut rv) = self.get_attribute_values(object, types, &mut buffers)?;

        // Variable-size values: allocate what the module asked for and fetch them. A value
        // can outgrow its buffer between calls: the module then answers
        // CKR_BUFFER_TOO_SMALL (and marks it unavailable), so size everything afresh.
        let mut rounds = 0;
        loop {
            if rv == CKR_BUFFER_TOO_SMALL {
                buffers.iter_mut().for_each(|b| *b = None);
                (lengths, rv) = self.get_attribute_values(object, types, &mut buffers)?;
            }
            let mut need_fetch = false;
            for (buffer, &len) in buffers.iter_mut().zip(&lengths) {
                if len == CK_UNAVAILABLE_INFORMATION {
                    *buffer = None;
                } else if buffer.is_none() {
                    *buffer = Some(vec![0u8; len as usize]);
                    need_fetch = true;
                }
            }
            if !need_fetch {
                break;
            }
            rounds += 1;
            if rounds > 4 {
                return Err(Error::Inconsistent {
                    function: Function::GetAttributeValue,
                    what: "attribute lengths kept changing",
                });
            }
            (lengths, rv) = self.get_attribute_values(object, types, &mut buffers)?;
        }

        let mut values = Vec::with_capacity(types.len());
        let mut unavailable = Vec::new();
        for (i, (&kind, buffer)) in types.iter().zip(&buffers).enumerate() {
            match buffer {
                Some(bytes) if lengths[i] != CK_UNAVAILABLE_INFORMATION => {
                    let bytes = bytes
                        .get(..lengths[i] as usize)
                        .ok_or(Error::Inconsistent {
                            function: Function::GetAttributeValue,
                            what: "a length beyond the buffer it was given",
                        })?;
                    let value = Attribute::decode(kind, bytes).ok_or(Error::Inconsistent {
                        function: Function::GetAttributeValue,
                        what: "an attribute value of the wrong size for its type",
                    })?;
                    values.push(AttributeValue::Present(value));
                }
                _ => {
                    unavailable.push(i);
                    values.push(AttributeValue::Absent(kind));
                }
            }
        }
        // One return value covers every unavailable attribute. When it cannot tell them
        // apart, ask for each alone.
        match Rv::from_raw(rv) {
            Rv::AttributeSensitive if unavailable.len() == 1 => {
                values[unavailable[0]] = AttributeValue::Sensitive(types[unavailable[0]]);
            }
            Rv::AttributeSensitive => {
                for i in unavailable {
                    let mut single = vec![None];
                    let (_, rv) = self.get_attribute_values(object, &types[i..=i], &mut single)?;
                    if rv == CKR_ATTRIBUTE_SENSITIVE {
                        values[i] = AttributeValue::Sensitive(types[i]);
                    }
                }
            }
            _ => {}
        }
        Ok(values)
    }

    /// One `C_GetAttributeValue` call with the given buffers (`None` asks for the
    /// length). Returns the lengths and the raw return value when it is one of those
    /// that still fill in every attribute.
    fn get_attribute_values(
        &self,
        object: ObjectHandle,
        types: &[AttributeType],
        buffers: &mut [Option<Vec<u8>>],
    ) -> Result<(Vec<CK_ULONG>, CK_RV)> {
        let f = self
            .module()
            .function(Function::GetAttributeValue, |l| l.C_GetAttributeValue)?;
        let mut raw: Vec<CK_ATTRIBUTE> = types
            .iter()
            .zip(buffers.iter_mut())
            .map(|(kind, buffer)| {
                let (ptr, len) = match buffer {
                    Some(b) => (b.as_mut_ptr().cast::<c_void>(), b.len()),
                    None => (std::ptr::null_mut(), 0),
                };
                Ok(CK_ATTRIBUTE {
                    type_: kind.raw(),
                    pValue: ptr,
                    ulValueLen: ulong(len, "an attribute buffer")?,
                })
            })
            .collect::<Result<_>>()?;
        let count = ulong(raw.len(), "the attribute template")?;
        let rv = {
            let _serial = self.module().serialize();
            // SAFETY: each entry points to a buffer of exactly `ulValueLen` writable bytes
            // (or NULL to ask the length), all alive in `buffers` for the call; the module
            // writes at most `ulValueLen` bytes into each.
            unsafe { f(self.handle().raw(), object.raw(), raw.as_mut_ptr(), count) }
        };
        match rv {
            CKR_OK
            | CKR_ATTRIBUTE_SENSITIVE
            | CKR_ATTRIBUTE_TYPE_INVALID
            | CKR_BUFFER_TOO_SMALL => Ok((raw.iter_mut().map(|a| a.ulValueLen).collect(), rv)),
            rv => {
                self.check(Function::GetAttributeValue, rv)?;
                Err(Error::Inconsistent {
                    function: Function::GetAttributeValue,
                    what: "an unexpected success code",
                })
            }
        }
    }

    /// Creates an object from a template (`C_CreateObject`); token objects need a
    /// read-write session.
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_TEMPLATE_INCOMPLETE`.
    pub fn create_object(&self, template: &[Attribute]) -> Result<ObjectHandle> {
        let f = self
            .module()
            .function(Function::CreateObject, |l| l.C_CreateObject)?;
        let mut raw_template = Template::new(template)?;
        let (ptr, count) = raw_template.as_raw();
        let mut handle: CK_OBJECT_HANDLE = 0;
        let rv = {
            let _serial = self.module().serialize();
            // SAFETY: the template lives in `raw_template`/`template` for the call and is
            // only read; `handle` is writable.
            unsafe { f(self.handle().raw(), ptr, count, &mut handle) }
        };
        self.check(Function::CreateObject, rv)?;
        Ok(ObjectHandle::from_raw(handle))
    }

    /// Destroys an object (`C_DestroyObject`).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_OBJECT_HANDLE_INVALID`.
    pub fn destroy_object(&self, object: ObjectHandle) -> Result<()> {
        let f = self
            .module()
            .function(Function::DestroyObject, |l| l.C_DestroyObject)?;
        let rv = {
            let _serial = self.module().serialize();
            // SAFETY: takes plain handles.
            unsafe { f(self.handle().raw(), object.raw()) }
        };
        self.check(Function::DestroyObject, rv)
    }

    /// Generates a key pair (`C_GenerateKeyPair`); returns (public, private).
    ///
    /// # Errors
    /// The module's error, e.g. `CKR_MECHANISM_INVALID` or `CKR_TEMPLATE_INCONSISTENT`.
    pub fn generate_key_pair(
        &self,
        mechanism: &Mechanism,
        public_template: &[Attribute],
        private_template: &[Attribute],
    ) -> Result<(ObjectHandle, ObjectHandle)> {
        let f = self
            .module()
            .function(Function::GenerateKeyPair, |l| l.C_GenerateKeyPair)?;
        let mut raw_mechanism = RawMechanism::new(mechanism);
        let mut public = Template::new(public_template)?;
        let mut private = Template::new(private_template)?;
        let (public_ptr, public_count) = public.as_raw();
        let (private_ptr, private_count) = private.as_raw();
        let mut public_handle: CK_OBJECT_HANDLE = 0;
        let mut private_handle: CK_OBJECT_HANDLE = 0;
        let rv = {
            let _serial = self.module().serialize();
            // SAFETY: mechanism and both templates live in the locals above for the call
            // and are only read; the two handle slots are writable.
            unsafe {
                f(
                    self.handle().raw(),
                    raw_mechanism.as_raw(),
                    public_ptr,
                    public_count,
                    private_ptr,
                    private_count,
                    &mut public_handle,
                    &mut private_handle,
                )
            }
        };
        self.check(Function::GenerateKeyPair, rv)?;
        Ok((
            ObjectHandle::from_raw(public_handle),
            ObjectHandle::from_raw(private_handle),
        ))
    }
}
