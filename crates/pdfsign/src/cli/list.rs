//! `pdfsign list`.

use pdfsign::{Error, Inventory, Pkcs11Uri};

use super::SUCCESS;
use super::args::ListArgs;
use super::key::{PinSources, fallback_module, parse_uri, resolve_pin};
use super::report::print_json;

pub(crate) fn run(args: &ListArgs, json: bool) -> Result<u8, Error> {
    let uri = match &args.key {
        Some(text) => parse_uri(text)?,
        None => Pkcs11Uri::new(),
    };
    let prompt_for = args.login.then(|| {
        uri.token()
            .map_or_else(|| "the token".to_owned(), |t| format!("token {t:?}"))
    });
    // Only --login asks on the terminal; a PIN given some other way logs in by itself.
    let pin = resolve_pin(&PinSources {
        flag_source: args.pin_source.as_deref(),
        flag_value: args.pin.as_deref(),
        uri: Some(&uri),
        prompt_for,
    })?;
    let pin = match pin {
        Some(pin) => Some(pin),
        None if args.login => return Err(pdfsign::PinError::Missing.into()),
        None => None,
    };
    let fallback = fallback_module(args.module.as_ref());
    let inventory = pdfsign::inventory(&uri, fallback.as_deref(), pin.as_ref())?;
    drop(pin);
    if json {
        print_json(&inventory)?;
    } else {
        print!("{}", render(&inventory));
    }
    Ok(SUCCESS)
}

fn render(inventory: &Inventory) -> String {
    let mut out = format!("module {} ({})\n", inventory.module, inventory.library);
    if inventory.slots.is_empty() {
        out.push_str("  no slot matches\n");
    }
    for slot in &inventory.slots {
        out.push_str(&format!("  slot {}: {}\n", slot.slot_id, slot.description));
        let Some(token) = &slot.token else {
            out.push_str("    (no token)\n");
            continue;
        };
        out.push_str(&format!(
            "    token {:?}  serial {}  {} {}\n",
            token.label, token.serial, token.manufacturer, token.model
        ));
        out.push_str(&format!("    uri   {}\n", token.uri));
        if !token.initialized {
            out.push_str("    (not initialised)\n");
            continue;
        }
        if let Some(error) = &token.error {
            out.push_str(&format!("    cannot list its objects: {error}\n"));
            continue;
        }
        if !token.pin_flags.is_empty() {
            out.push_str(&format!("    PIN flags: {}\n", token.pin_flags.join(", ")));
        }
        if !token.logged_in {
            out.push_str(
                "    (not logged in: private keys are not shown; give a PIN or --login)\n",
            );
        }
        if token.objects.is_empty() {
            out.push_str("    no objects\n");
        }
        for object in &token.objects {
            let mut line = format!(
                "    {:<8} {:<16} id={}",
                object.object_type, object.label, object.id
            );
            if let Some(key) = &object.key {
                line.push_str(&format!("  {key}"));
            }
            if let Some(subject) = &object.subject {
                line.push_str(&format!("  {subject}"));
            }
            out.push_str(&line);
            out.push('\n');
            if object.object_type == "private" {
                out.push_str(&format!("             {}\n", object.uri));
            }
        }
    }
    out
}
