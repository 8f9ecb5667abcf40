//! Tests of the object parser: syntax, windows, limits, and round trips with lopdf's writer.

use proptest::prelude::*;

use super::*;

fn parse(text: &[u8]) -> Result<Object> {
    Parser::new(text, 0, true).object()
}

#[test]
fn scalars() {
    assert_eq!(parse(b"42").unwrap(), Object::Integer(42));
    assert_eq!(parse(b"-17").unwrap(), Object::Integer(-17));
    assert_eq!(parse(b"+3").unwrap(), Object::Integer(3));
    assert_eq!(parse(b"-.5").unwrap(), Object::Real(-0.5));
    assert_eq!(parse(b"4.").unwrap(), Object::Real(4.0));
    assert_eq!(parse(b"true").unwrap(), Object::Boolean(true));
    assert_eq!(parse(b"null").unwrap(), Object::Null);
    assert_eq!(parse(b"/A#20B").unwrap(), Object::Name(b"A B".to_vec()));
    assert_eq!(parse(b"12 0 R").unwrap(), Object::Reference((12, 0)));
    assert!(matches!(parse(b"--5"), Err(Error::Syntax { .. })));
    assert!(matches!(parse(b"foo"), Err(Error::Syntax { .. })));
    // Digits on the short path and past it.
    assert_eq!(parse(b"0").unwrap(), Object::Integer(0));
    assert_eq!(parse(b"007").unwrap(), Object::Integer(7));
    for digits in [
        "999999999999999999",
        "1000000000000000000",
        "9223372036854775807",
    ] {
        assert_eq!(
            parse(digits.as_bytes()).unwrap(),
            Object::Integer(digits.parse().unwrap())
        );
    }
    assert_eq!(
        parse(b"9223372036854775808").unwrap(),
        Object::Real(9_223_372_036_854_775_808.0)
    );
}

#[test]
fn strings() {
    assert_eq!(
        parse(b"(a(b)c\\)\\n\\053\\\r\nx\r\ny)").unwrap(),
        Object::String(b"a(b)c)\n+x\ny".to_vec(), StringFormat::Literal)
    );
    assert_eq!(
        parse(b"<41 42 4>").unwrap(),
        Object::String(b"AB@".to_vec(), StringFormat::Hexadecimal)
    );
    assert!(matches!(parse(b"<4G>"), Err(Error::Syntax { .. })));
    assert!(matches!(parse(b"(abc"), Err(Error::UnexpectedEof { .. })));
}

#[test]
fn hex_strings_fast_and_slow_read_alike() {
    for (text, bytes) in [
        (&b"<>"[..], &b""[..]),
        (b"<4142>", b"AB"),
        (b"<aBcD>", b"\xAB\xCD"),
        (b"<41 42>", b"AB"),
        (b"<414>", b"A@"),
        (b"<4\n1>", b"A"),
    ] {
        assert_eq!(
            parse(text).unwrap(),
            Object::String(bytes.to_vec(), StringFormat::Hexadecimal),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    // Digits then the end of the data, or a stray byte before `>`.
    assert!(matches!(parse(b"<4142"), Err(Error::UnexpectedEof { .. })));
    assert!(matches!(parse(b"<41x2>"), Err(Error::Syntax { .. })));
    // What follows the string is read after it.
    assert_eq!(
        parse(b"[<4142><43>]").unwrap(),
        Object::Array(vec![
            Object::String(b"AB".to_vec(), StringFormat::Hexadecimal),
            Object::String(b"C".to_vec(), StringFormat::Hexadecimal),
        ])
    );
}

#[test]
fn containers_and_references() {
    let object = parse(b"<</Kids [1 0 R 2 0 R 3] /N [5 0 /X] /X<</Y null>>>>").unwrap();
    let Object::Dictionary(dict) = object else {
        panic!("not a dictionary")
    };
    assert_eq!(
        dict.get(b"Kids").unwrap(),
        &Object::Array(vec![
            Object::Reference((1, 0)),
            Object::Reference((2, 0)),
            Object::Integer(3)
        ])
    );
    // `5 0` followed by a name is not a reference.
    assert_eq!(
        dict.get(b"N").unwrap(),
        &Object::Array(vec![
            Object::Integer(5),
            Object::Integer(0),
            Object::Name(b"X".to_vec())
        ])
    );
}

#[test]
fn window_end_asks_for_more() {
    // A token cut by the window's end might continue: more data is needed.
    for text in [&b"12"[..], b"12 0", b"<</A 1", b"[1 2", b"(ab", b"<"] {
        let result = Parser::new(text, 0, false).object();
        assert!(
            matches!(result, Err(Error::UnexpectedEof { .. })),
            "{text:?}: {result:?}"
        );
    }
    assert_eq!(
        Parser::new(b"12 /", 0, false).object().unwrap(),
        Object::Integer(12)
    );
}

#[test]
fn nesting_is_limited() {
    let deep = [b"[".repeat(MAX_NESTING), b"]".repeat(MAX_NESTING)].concat();
    assert!(parse(&deep).is_ok());
    let deeper = [b"[".repeat(MAX_NESTING + 1), b"]".repeat(MAX_NESTING + 1)].concat();
    assert!(matches!(parse(&deeper), Err(Error::NestingTooDeep { .. })));
    let dicts = b"<</A ".repeat(10_000);
    assert!(matches!(parse(&dicts), Err(Error::NestingTooDeep { .. })));
}

/// Objects as lopdf builds them, without streams; reals are whole hundredths, which f32
/// keeps exactly enough for a writer's shortest form to read back the same. The
/// increment's own serializer (`crate::syntax`) is tested with these too.
pub(crate) fn object_strategy() -> impl Strategy<Value = Object> {
    let leaf = prop_oneof![
        Just(Object::Null),
        any::<bool>().prop_map(Object::Boolean),
        any::<i64>().prop_map(Object::Integer),
        (-1_000_000i32..1_000_000).prop_map(|hundredths| Object::Real(hundredths as f32 / 100.0)),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Object::Name),
        prop::collection::vec(any::<u8>(), 0..24)
            .prop_map(|bytes| Object::String(bytes, StringFormat::Literal)),
        prop::collection::vec(any::<u8>(), 0..24)
            .prop_map(|bytes| Object::String(bytes, StringFormat::Hexadecimal)),
        (any::<u32>(), any::<u16>()).prop_map(Object::Reference),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Object::Array),
            prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), inner), 0..6)
                .prop_map(|entries| Object::Dictionary(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    /// What lopdf's writer serializes (as files made with lopdf are written), this parser
    /// reads back unchanged.
    #[test]
    fn reads_back_what_lopdf_writes(object in object_strategy()) {
        let mut bytes = Vec::new();
        lopdf::Writer::write_object(&mut bytes, &object).unwrap();
        let parsed = Parser::new(&bytes, 0, true).object().unwrap();
        prop_assert_eq!(parsed, object);
    }

    /// Checking without building accepts exactly what reading accepts, fails the same
    /// way, and stops at the same place: whole, cut and damaged objects.
    #[test]
    fn checking_agrees_with_reading(
        object in object_strategy(),
        cut in any::<prop::sample::Index>(),
        damage in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(
            b"()<>[]{}/%#\\ \r\n0R".to_vec(),
        ))),
        complete: bool,
    ) {
        let mut bytes = Vec::new();
        lopdf::Writer::write_object(&mut bytes, &object).unwrap();
        if let Some((at, byte)) = damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if !complete {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let mut reading = Parser::new(&bytes, 0, complete);
        let read = reading.object();
        let mut checking = Parser::new(&bytes, 0, complete);
        let checked = checking.object_at_depth::<false>(0);
        prop_assert_eq!(
            read.as_ref().map(|_| ()).map_err(|error| error.to_string()),
            checked.as_ref().map(|_| ()).map_err(|error| error.to_string())
        );
        if read.is_ok() {
            prop_assert_eq!(reading.pos, checking.pos);
        }
    }

    /// A dictionary kept as found gives each key the value reading it into lopdf's
    /// model gives, and amended, reads back as the model with the entry set.
    #[test]
    fn raw_dictionaries_read_like_the_model(
        object in object_strategy(),
        key in prop::collection::vec(any::<u8>(), 0..8),
        value in object_strategy(),
    ) {
        let Object::Dictionary(mut dict) = object else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        lopdf::Writer::write_object(&mut bytes, &Object::Dictionary(dict.clone())).unwrap();
        let raw = Parser::new(&bytes, 0, true).raw_dictionary().unwrap().unwrap();
        for (name, expected) in &dict {
            prop_assert_eq!(raw.get(name).unwrap(), Some(expected.clone()));
            prop_assert!(raw.has(name));
        }
        prop_assert_eq!(raw.has(&key), dict.has(&key));
        let mut amended = Vec::new();
        crate::syntax::amended(&mut amended, &raw, &key, &value);
        dict.set(key, value);
        let parsed = Parser::new(&amended, 0, true).object().unwrap();
        prop_assert_eq!(parsed, Object::Dictionary(dict));
    }

    #[test]
    fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), complete: bool) {
        let mut parser = Parser::new(&bytes, 0, complete);
        let _ = parser.indirect_object();
        let _ = Parser::new(&bytes, 0, complete).object();
    }
}

#[test]
fn indirect_stream_header() {
    let text = b"7 0 obj\n<</Length 3>>\nstream\r\nabc\nendstream\nendobj";
    let found = Parser::new(text, 100, true).indirect_object().unwrap();
    assert_eq!(found.id, (7, 0));
    assert_eq!(found.stream_data, Some(100 + 30));
}
