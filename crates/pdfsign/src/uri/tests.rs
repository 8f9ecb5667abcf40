use proptest::prelude::*;

use super::*;

fn parse(s: &str) -> Result<Pkcs11Uri, UriError> {
    s.parse()
}

#[test]
fn parses_the_rfc_examples() {
    // RFC 7512 section 3, a few of its examples.
    let uri = parse("pkcs11:object=my-pubkey;type=public").unwrap();
    assert_eq!(uri.object(), Some("my-pubkey"));
    assert_eq!(uri.object_type(), Some(ObjectType::Public));

    let uri = parse(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;\
         manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;\
         type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=\
         ?pin-source=file:/etc/token_pin",
    )
    .unwrap();
    assert_eq!(uri.token(), Some("The Software PKCS#11 Softtoken"));
    assert_eq!(uri.manufacturer(), Some("Snake Oil, Inc."));
    assert_eq!(uri.serial(), Some(""));
    assert_eq!(
        uri.id(),
        Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
    );
    assert_eq!(uri.pin_source(), Some("file:/etc/token_pin"));

    let uri = parse("pkcs11:slot-description=Sun%20Metaslot").unwrap();
    assert_eq!(uri.slot_description(), Some("Sun Metaslot"));

    let uri = parse(
        "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token;\
         library-version=1.23",
    )
    .unwrap();
    assert_eq!(uri.library_version(), Some("1.23"));

    let uri =
        parse("pkcs11:token=Software%20PKCS%2311%20softtoken;object=my-key?module-name=mypkcs11")
            .unwrap();
    assert_eq!(uri.module_name(), Some("mypkcs11"));

    let uri =
        parse("pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1").unwrap();
    assert_eq!(uri.module_path(), Some(Path::new("/mnt/libmypkcs11.so.1")));

    let uri = parse("pkcs11:slot-id=100;object=x?pin-value=the%20pin").unwrap();
    assert_eq!(uri.slot_id(), Some(100));
    assert_eq!(uri.pin_value(), Some("the pin"));
    assert_eq!(parse("pkcs11:").unwrap(), Pkcs11Uri::new());
    assert_eq!(parse("PKCS11:token=a").unwrap().token(), Some("a"));
}

#[test]
fn the_pin_is_never_displayed() {
    let uri = parse("pkcs11:token=t;object=k?module-path=/m.so&pin-value=s3cret").unwrap();
    assert_eq!(uri.to_string(), "pkcs11:token=t;object=k?module-path=/m.so");
    assert!(!format!("{uri:?}").contains("s3cret"));
    assert_eq!(
        parse(&uri.to_string_with_pin()).unwrap(),
        uri,
        "to_string_with_pin keeps it"
    );
    let only_pin = parse("pkcs11:object=k?pin-value=1%262").unwrap();
    assert_eq!(only_pin.to_string(), "pkcs11:object=k");
    assert_eq!(
        only_pin.to_string_with_pin().as_str(),
        "pkcs11:object=k?pin-value=1%262"
    );
}

#[test]
fn errors_are_precise_and_never_quote_values() {
    assert_eq!(parse("pkcs1:token=a"), Err(UriError::MissingScheme));
    assert_eq!(parse("token=a"), Err(UriError::MissingScheme));
    assert_eq!(
        parse("pkcs11:token"),
        Err(UriError::MissingEquals { offset: 7 })
    );
    assert_eq!(
        parse("pkcs11:token=a;=b"),
        Err(UriError::BadName { offset: 15 })
    );
    assert_eq!(
        parse("pkcs11:token=a;token=b"),
        Err(UriError::Duplicate {
            name: "token".into()
        })
    );
    assert_eq!(
        parse("pkcs11:?pin-value=a&pin-value=b"),
        Err(UriError::Duplicate {
            name: "pin-value".into()
        })
    );
    assert_eq!(
        parse("pkcs11:id=%0"),
        Err(UriError::BadPercentEncoding {
            name: "id".into(),
            offset: 10
        })
    );
    assert_eq!(
        parse("pkcs11:object=a b"),
        Err(UriError::MustBeEncoded {
            name: "object".into(),
            ch: Some(' '),
            offset: 15
        })
    );
    assert_eq!(
        parse("pkcs11:object=a/b"),
        Err(UriError::MustBeEncoded {
            name: "object".into(),
            ch: Some('/'),
            offset: 15
        })
    );
    assert_eq!(
        parse("pkcs11:object=%FF"),
        Err(UriError::NotUtf8 {
            name: "object".into()
        })
    );
    assert_eq!(parse("pkcs11:slot-id=-1"), Err(UriError::BadSlotId));
    assert_eq!(parse("pkcs11:slot-id="), Err(UriError::BadSlotId));
    assert_eq!(
        parse("pkcs11:slot-id=99999999999999999999999"),
        Err(UriError::BadSlotId)
    );
    assert_eq!(parse("pkcs11:type=secret"), Err(UriError::BadType));
    assert_eq!(
        parse("pkcs11:?pin-value=1&pin-source=/p"),
        Err(UriError::PinValueAndSource)
    );
    let err = parse("pkcs11:?pin-value=se%ZZcret").unwrap_err();
    assert!(!err.to_string().contains("se"), "{err}");
    let err = parse("pkcs11:?pin-value=sec ret").unwrap_err();
    assert!(!err.to_string().contains("sec"), "{err}");
    assert!(matches!(err, UriError::MustBeEncoded { ch: None, .. }));
}

#[test]
fn vendor_attributes_are_kept_and_named() {
    let uri = parse("pkcs11:token=a;x-vendor=1?x-q=2").unwrap();
    assert_eq!(
        uri.unsupported_attributes().collect::<Vec<_>>(),
        ["x-vendor", "x-q"]
    );
    assert_eq!(uri.to_string(), "pkcs11:token=a;x-vendor=1?x-q=2");
    assert!(
        parse("pkcs11:token=a;x-vendor=1;x-vendor=2").is_err(),
        "duplicates refused"
    );
}

#[test]
fn setters_build_the_same_uri() {
    let mut uri = Pkcs11Uri::new();
    uri.set_token("pdfsign-demo")
        .set_object("p256")
        .set_id(&[1, 2])
        .set_object_type(ObjectType::Private)
        .set_module_path("/usr/lib/softhsm/libsofthsm2.so")
        .set_pin_source("file:/run/pin");
    assert_eq!(
        uri.to_string(),
        "pkcs11:token=pdfsign-demo;object=p256;id=%01%02;type=private\
         ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin"
    );
    assert_eq!(parse(&uri.to_string()).unwrap(), uri);
    uri.set_pin_value("1234");
    assert!(uri.pin_source().is_none() && uri.has_pin_value());
    uri.clear_pin_value();
    assert!(!uri.has_pin_value());
}

#[test]
fn redaction_of_unparsed_text() {
    assert_eq!(
        redact_pin("pkcs11:a=b?pin-value=1234&module-path=/x"),
        "pkcs11:a=b?pin-value=(hidden)&module-path=/x"
    );
    assert_eq!(redact_pin("pin-value=12 34"), "pin-value=(hidden)");
    assert_eq!(
        redact_pin("?pin-value=1&pin-value=2"),
        "?pin-value=(hidden)&pin-value=(hidden)"
    );
}

// Regressions found by the property tests below, kept as plain tests.

#[test]
fn regression_empty_components_are_skipped() {
    assert_eq!(
        parse("pkcs11:;;token=a;;?&&module-name=m&").unwrap(),
        parse("pkcs11:token=a?module-name=m").unwrap()
    );
}

#[test]
fn regression_percent_then_multibyte_character() {
    // "%" followed by a multi-byte character must not slice inside it.
    assert!(matches!(
        parse("pkcs11:object=%é"),
        Err(UriError::BadPercentEncoding { .. })
    ));
    assert!(matches!(
        parse("pkcs11:object=%1é"),
        Err(UriError::BadPercentEncoding { .. })
    ));
    assert!(matches!(
        parse("pkcs11:object=é"),
        Err(UriError::MustBeEncoded { ch: Some('é'), .. })
    ));
}

#[test]
fn regression_question_mark_and_equals_inside_query_values() {
    let uri = parse("pkcs11:?module-path=/a?b=c").unwrap();
    assert_eq!(uri.module_path(), Some(Path::new("/a?b=c")));
    assert_eq!(uri.to_string(), "pkcs11:?module-path=/a?b=c");
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, biased towards the characters that need encoding.
    prop_oneof![
        "[a-z0-9 %;?&=/#:é]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn opt<T: std::fmt::Debug + Clone>(
    strategy: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(strategy)
}

prop_compose! {
    fn any_uri()(
        token in opt(text()),
        serial in opt(text()),
        slot in opt(any::<u64>()),
        object in opt(text()),
        id in opt(prop::collection::vec(any::<u8>(), 0..20)),
        object_type in opt(prop_oneof![
            Just(ObjectType::Public), Just(ObjectType::Private), Just(ObjectType::Cert),
            Just(ObjectType::SecretKey), Just(ObjectType::Data),
        ]),
        module_path in opt(text()),
        module_name in opt(text()),
        pin in opt(prop_oneof![text().prop_map(Ok), text().prop_map(Err)]),
    ) -> Pkcs11Uri {
        let mut uri = Pkcs11Uri::new();
        if let Some(v) = token { uri.set_token(&v); }
        if let Some(v) = serial { uri.set_serial(&v); }
        if let Some(v) = slot { uri.set_slot_id(v); }
        if let Some(v) = object { uri.set_object(&v); }
        if let Some(v) = id { uri.set_id(&v); }
        if let Some(v) = object_type { uri.set_object_type(v); }
        if let Some(v) = module_path { uri.set_module_path(&v); }
        if let Some(v) = module_name { uri.set_module_name(&v); }
        match pin {
            Some(Ok(value)) => { uri.set_pin_value(&value); }
            Some(Err(source)) => { uri.set_pin_source(&source); }
            None => {}
        }
        uri
    }
}

proptest! {
    #[test]
    fn display_then_parse_round_trips_without_the_pin(uri in any_uri()) {
        let shown = uri.to_string();
        let mut expected = uri;
        expected.clear_pin_value();
        prop_assert_eq!(parse(&shown).unwrap(), expected);
    }

    #[test]
    fn with_the_pin_round_trips_whole(uri in any_uri()) {
        prop_assert_eq!(parse(&uri.to_string_with_pin()).unwrap(), uri);
    }

    #[test]
    fn the_pin_never_shows(pin in "[a-zA-Z0-9]{8,16}", uri in any_uri()) {
        let mut uri = uri;
        uri.set_pin_value(&pin);
        prop_assert!(!uri.to_string().contains(&pin));
        let debug = format!("{uri:?}");
        prop_assert!(!debug.contains(&pin));
    }

    #[test]
    fn parse_never_panics_and_canonical_form_is_stable(s in "pkcs11:[ -~é]{0,40}") {
        if let Ok(uri) = parse(&s) {
            let shown = uri.to_string();
            let again = parse(&shown).unwrap();
            prop_assert_eq!(again.to_string(), shown);
        }
    }

    #[test]
    fn errors_never_quote_a_pin(pin in "[a-zA-Z0-9]{8,16}", junk in "[ %é/]{1,3}") {
        let s = format!("pkcs11:object=k?pin-value={pin}{junk}");
        if let Err(err) = parse(&s) {
            prop_assert!(!err.to_string().contains(&pin));
            let debug = format!("{err:?}");
            prop_assert!(!debug.contains(&pin));
        }
    }
}
