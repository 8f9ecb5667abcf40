//! `list`: the slots, tokens and objects of a module, as a PKCS#11 URI selects them.
//!
//! Without a PIN only public objects show (certificates, public keys); with one, a
//! token's private keys too, each with the subject of its certificate (same `CKA_ID`).
//! Every object comes with the URI that names it, ready for `--key`.

use std::path::Path;

use der::Decode;
use p11_raw::{
    Attribute, AttributeType, KeyType, Module, ObjectClass, ObjectHandle, Rv, Session, SlotId,
    TokenInfo, UserType,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::module;
use crate::pin::Pin;
use crate::uri::{ObjectType, Pkcs11Uri};

/// What a module shows.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// The module's file.
    pub module: String,
    /// `C_GetInfo`: manufacturer, description, library version.
    pub library: String,
    /// Every slot the URI selects (all, when it selects no token).
    pub slots: Vec<SlotEntry>,
}

/// A slot and its token.
#[derive(Debug, Clone, Serialize)]
pub struct SlotEntry {
    /// The slot's number (the URI's `slot-id`).
    pub slot_id: u64,
    /// The slot's description.
    pub description: String,
    /// The token in it, if any.
    pub token: Option<TokenEntry>,
}

/// A token and its objects.
#[derive(Debug, Clone, Serialize)]
pub struct TokenEntry {
    /// Label (the URI's `token`).
    pub label: String,
    /// Manufacturer ID.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number (the URI's `serial`).
    pub serial: String,
    /// The user-PIN flags that are set (`CKF_USER_PIN_COUNT_LOW`, ...).
    pub pin_flags: Vec<&'static str>,
    /// Whether the token is initialised (SoftHSM2 always shows one free, uninitialised
    /// token); an uninitialised one has no objects.
    pub initialized: bool,
    /// Whether the objects were listed logged in (private keys included).
    pub logged_in: bool,
    /// Why the objects could not be listed, if they could not.
    pub error: Option<String>,
    /// The URI of the token.
    pub uri: String,
    /// Its objects (those the URI's object attributes select).
    pub objects: Vec<ObjectEntry>,
}

/// One object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectEntry {
    /// `private`, `public`, `cert`, `data` or `secret-key` (the URI's `type`).
    #[serde(rename = "type")]
    pub object_type: &'static str,
    /// `CKA_LABEL` (the URI's `object`).
    pub label: String,
    /// `CKA_ID`, hex.
    pub id: String,
    /// For keys: `RSA-2048`, `EC P-256`, ...
    pub key: Option<String>,
    /// For certificates, and private keys with a certificate: its subject.
    pub subject: Option<String>,
    /// The URI naming this object.
    pub uri: String,
}

/// Lists what `uri` selects in its module (or `fallback_module`). With a `pin`, logs in to
/// the one token the URI selects (exactly one attempt) and lists its private keys too.
///
/// # Errors
/// Module errors ([`Error::ModuleNotFound`], [`Error::Pkcs11`]); with a PIN,
/// [`Error::TokenNotFound`] / [`Error::AmbiguousToken`] unless exactly one token matches,
/// and [`Error::WrongPin`].
pub fn inventory(
    uri: &Pkcs11Uri,
    fallback_module: Option<&Path>,
    pin: Option<&Pin>,
) -> Result<Inventory> {
    let module = module::open(uri, fallback_module)?;
    let info = module.info()?;
    let library = format!(
        "{} {} {}.{}",
        info.manufacturer, info.description, info.library_version.major, info.library_version.minor
    );
    let login_slot = match pin {
        Some(_) => Some(module::find_slot(&module, uri)?.0),
        None => None,
    };
    let mut slots = Vec::new();
    for slot in module.slots(false)? {
        let slot_info = module.slot_info(slot)?;
        let token = if slot_info.token_present {
            match module.token_info(slot) {
                Ok(token) if module::token_matches(&module, slot, &token, uri) => Some(token),
                Ok(_) => continue,
                // An uninitialised or absent token: show the slot alone.
                Err(_) => None,
            }
        } else {
            None
        };
        if token.is_none() && (uri.token().is_some() || uri.serial().is_some()) {
            continue;
        }
        if uri
            .slot_id()
            .is_some_and(|id| id != module::slot_number(slot))
        {
            continue;
        }
        let token = match token {
            Some(token) => {
                let pin = pin.filter(|_| login_slot == Some(slot));
                Some(list_token(&module, slot, token, uri, pin)?)
            }
            None => None,
        };
        slots.push(SlotEntry {
            slot_id: module::slot_number(slot),
            description: slot_info.description,
            token,
        });
    }
    Ok(Inventory {
        module: module.path().display().to_string(),
        library,
        slots,
    })
}

fn list_token(
    module: &Module,
    slot: SlotId,
    token: TokenInfo,
    uri: &Pkcs11Uri,
    pin: Option<&Pin>,
) -> Result<TokenEntry> {
    let mut token_uri = Pkcs11Uri::new();
    token_uri
        .set_token(&token.label)
        .set_serial(&token.serial_number)
        .set_module_path(&module.path().display().to_string());
    let mut entry = TokenEntry {
        label: token.label.clone(),
        manufacturer: token.manufacturer.clone(),
        model: token.model.clone(),
        serial: token.serial_number.clone(),
        pin_flags: token.flags.user_pin_flag_names(),
        initialized: token.flags.token_initialized(),
        logged_in: false,
        error: None,
        uri: token_uri.to_string(),
        objects: Vec::new(),
    };
    if !entry.initialized {
        return Ok(entry);
    }
    let session = match module.open_session(slot, false) {
        Ok(session) => session,
        Err(e) if pin.is_none() => {
            entry.error = Some(e.to_string());
            return Ok(entry);
        }
        Err(e) => return Err(e.into()),
    };
    let mut logged_in = false;
    if let Some(pin) = pin {
        match session.login(UserType::User, Some(pin.expose())) {
            Ok(()) => logged_in = true,
            Err(e) if e.rv() == Some(Rv::UserAlreadyLoggedIn) => logged_in = true,
            Err(e) if e.recovery_class() == p11_raw::RecoveryClass::Pin => {
                let flags = module
                    .token_info(slot)
                    .map(|t| t.flags.user_pin_flag_names())
                    .unwrap_or_default();
                return Err(Error::WrongPin {
                    token: token.label,
                    flags,
                    source: e,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let objects = list_objects(&session, uri, &token_uri);
    if logged_in {
        // Leave the token as found: logged out once this listing's session closes.
        if let Err(e) = session.logout() {
            tracing::debug!(error = %e, "logout after listing failed");
        }
    }
    entry.logged_in = logged_in;
    match objects {
        Ok(objects) => entry.objects = objects,
        Err(e) if pin.is_none() => entry.error = Some(e.to_string()),
        Err(e) => return Err(e),
    }
    Ok(entry)
}

fn list_objects(
    session: &Session,
    uri: &Pkcs11Uri,
    token_uri: &Pkcs11Uri,
) -> Result<Vec<ObjectEntry>> {
    let classes = [
        (ObjectClass::PRIVATE_KEY, ObjectType::Private),
        (ObjectClass::CERTIFICATE, ObjectType::Cert),
        (ObjectClass::PUBLIC_KEY, ObjectType::Public),
        (ObjectClass::DATA, ObjectType::Data),
        (ObjectClass::SECRET_KEY, ObjectType::SecretKey),
    ];
    let mut out = Vec::new();
    for (class, object_type) in classes {
        if uri.object_type().is_some_and(|t| t != object_type) {
            continue;
        }
        let mut template = vec![Attribute::Class(class)];
        if let Some(label) = uri.object() {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = uri.id() {
            template.push(Attribute::Id(id.to_vec()));
        }
        for handle in session.find_objects(&template)? {
            out.push(describe(session, handle, class, object_type, token_uri)?);
        }
    }
    Ok(out)
}

fn describe(
    session: &Session,
    handle: ObjectHandle,
    class: ObjectClass,
    object_type: ObjectType,
    token_uri: &Pkcs11Uri,
) -> Result<ObjectEntry> {
    let mut wanted = vec![AttributeType::Label, AttributeType::Id];
    let is_key = matches!(class, ObjectClass::PRIVATE_KEY | ObjectClass::PUBLIC_KEY);
    if is_key {
        wanted.extend([
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::EcParams,
        ]);
    }
    if class == ObjectClass::CERTIFICATE {
        wanted.push(AttributeType::Value);
    }
    let mut label = Vec::new();
    let mut id = Vec::new();
    let (mut key_type, mut modulus, mut ec_params, mut value) = (None, None, None, None);
    for found in session.attributes(handle, &wanted)? {
        match found.present() {
            Some(Attribute::Label(l)) => label = l,
            Some(Attribute::Id(i)) => id = i,
            Some(Attribute::KeyType(k)) => key_type = Some(k),
            Some(Attribute::Modulus(m)) => modulus = Some(m),
            Some(Attribute::EcParams(p)) => ec_params = Some(p),
            Some(Attribute::Value(v)) => value = Some(v),
            _ => {}
        }
    }
    let key = is_key.then(|| key_description(key_type, modulus.as_deref(), ec_params.as_deref()));
    let subject = match (class, value) {
        (ObjectClass::CERTIFICATE, Some(der)) => subject_of(&der),
        (ObjectClass::PRIVATE_KEY, _) if !id.is_empty() => certificate_subject(session, &id),
        _ => None,
    };
    let label = String::from_utf8_lossy(&label).into_owned();
    let mut uri = token_uri.clone();
    uri.set_object(&label).set_object_type(object_type);
    if !id.is_empty() {
        uri.set_id(&id);
    }
    Ok(ObjectEntry {
        object_type: object_type.as_str(),
        label,
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        key,
        subject,
        uri: uri.to_string(),
    })
}

/// `RSA-2048`, `EC P-256`, ... from a key's attributes.
pub(crate) fn key_description(
    key_type: Option<KeyType>,
    modulus: Option<&[u8]>,
    ec_params: Option<&[u8]>,
) -> String {
    match key_type {
        Some(KeyType::RSA) => match modulus {
            Some(m) => {
                let significant = m.iter().skip_while(|&&b| b == 0).count();
                let bits = significant * 8
                    - m.iter()
                        .find(|&&b| b != 0)
                        .map_or(0, |b| b.leading_zeros() as usize);
                format!("RSA-{bits}")
            }
            None => "RSA".to_owned(),
        },
        Some(KeyType::EC) => match ec_params.and_then(curve_name) {
            Some(curve) => format!("EC {curve}"),
            None => "EC (unknown curve)".to_owned(),
        },
        Some(other) => other.to_string(),
        None => "unknown".to_owned(),
    }
}

/// The curve of a DER `CKA_EC_PARAMS` (a named-curve OID).
pub(crate) fn curve_name(params: &[u8]) -> Option<&'static str> {
    let oid: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::from_der(params).ok()?;
    Some(match oid.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        _ => return None,
    })
}

fn certificate_subject(session: &Session, id: &[u8]) -> Option<String> {
    let certificates = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.to_vec()),
        ])
        .ok()?;
    let first = *certificates.first()?;
    match session
        .attributes(first, &[AttributeType::Value])
        .ok()?
        .pop()?
        .present()?
    {
        Attribute::Value(der) => subject_of(&der),
        _ => None,
    }
}

fn subject_of(der: &[u8]) -> Option<String> {
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    Some(certificate.tbs_certificate().subject().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_descriptions() {
        let mut modulus = vec![0u8; 256];
        modulus[0] = 0xc1;
        assert_eq!(
            key_description(Some(KeyType::RSA), Some(&modulus), None),
            "RSA-2048"
        );
        modulus[0] = 0x01;
        assert_eq!(
            key_description(Some(KeyType::RSA), Some(&modulus), None),
            "RSA-2041"
        );
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert_eq!(
            key_description(Some(KeyType::EC), None, Some(&p256)),
            "EC P-256"
        );
        assert_eq!(
            key_description(Some(KeyType::EC), None, Some(&[1, 2])),
            "EC (unknown curve)"
        );
        assert_eq!(key_description(None, None, None), "unknown");
    }
}
