use http::{HeaderMap, HeaderValue, Request};

use super::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_and_formats_round_trip() {
    let tp: TraceParent = VALID.parse().unwrap();
    assert_eq!(tp.version, 0);
    assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
    assert!(tp.flags.is_sampled());
    assert_eq!(tp.to_string(), VALID);
    assert_eq!(tp.to_header_value(), VALID);
    let unsampled: TraceParent = VALID.replace("-01", "-00").parse().unwrap();
    assert!(!unsampled.flags.is_sampled());
    // Optional whitespace around the value is tolerated.
    assert_eq!(format!(" {VALID}\t").parse::<TraceParent>().unwrap(), tp);
}

#[test]
fn future_versions_parse_by_their_prefix() {
    let v = format!("cc{}-what-the-future-holds", &VALID[2..]);
    let tp: TraceParent = v.parse().unwrap();
    assert_eq!(tp.version, 0xcc);
    assert_eq!(tp.to_string(), VALID, "formatted as version 00");
    // But the field after 55 bytes must start with a dash.
    let bad = format!("cc{}x", &VALID[2..]);
    assert_eq!(
        bad.parse::<TraceParent>(),
        Err(TraceParseError::Delimiter(55))
    );
}

#[test]
fn malformed_traceparents_are_typed_errors() {
    use TraceParseError::*;
    let cases: &[(&str, TraceParseError)] = &[
        ("", Length(0)),
        ("00-4bf9", Length(7)),
        (&format!("{VALID}-"), Length(56)),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Version,
        ),
        (
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Version,
        ),
        (
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Delimiter(2),
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            Delimiter(35),
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            Delimiter(52),
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            TraceId,
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            TraceId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ParentId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9z2b7-01",
            ParentId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            Flags,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
            Flags,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            input.parse::<TraceParent>().as_ref(),
            Err(want),
            "{input:?}"
        );
    }
    // Never panics on arbitrary bytes, including multi-byte UTF-8 at the
    // field boundaries.
    for len in 0..70 {
        for b in [0u8, b'-', b'0', b'f', 0xc3, 0xff] {
            let bytes = vec![b; len];
            let _ = parse::traceparent(&bytes);
        }
    }
}

#[test]
fn tracestate_grammar() {
    let ok = TraceState::from_str_checked(
        "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,tenant1@vendor=x y",
    );
    let entries: Vec<_> = ok.entries().collect();
    assert_eq!(
        entries,
        [
            ("rojo", "00f067aa0ba902b7"),
            ("congo", "t61rcWkgMzE"),
            ("tenant1@vendor", "x y")
        ]
    );
    use TraceStateError::*;
    assert_eq!("Rojo=1".parse::<TraceState>(), Err(InvalidMember(0)));
    assert_eq!("a=1,b".parse::<TraceState>(), Err(InvalidMember(1)));
    assert_eq!("a=1,b=x=y".parse::<TraceState>(), Err(InvalidMember(1)));
    assert_eq!("a=".parse::<TraceState>(), Err(InvalidMember(0)));
    assert_eq!("a=1,a=2".parse::<TraceState>(), Err(DuplicateKey(1)));
    assert_eq!("@v=1".parse::<TraceState>(), Err(InvalidMember(0)));
    assert_eq!(
        "t@toolongsystemid=1".parse::<TraceState>(),
        Err(InvalidMember(0))
    );
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert_eq!(
        many.join(",").parse::<TraceState>(),
        Err(TooManyMembers(33))
    );
    assert!(many[..32].join(",").parse::<TraceState>().is_ok());
    assert_eq!(
        TraceState::from_header(&HeaderValue::from_bytes(b"a=\xff").unwrap()),
        Err(NotVisibleAscii)
    );
}

impl TraceState {
    fn from_str_checked(s: &str) -> TraceState {
        s.parse().unwrap()
    }
}

#[test]
fn extract_reads_headers() {
    let mut h = HeaderMap::new();
    assert_eq!(extract(&h), Ok(None));
    h.insert(TRACEPARENT, HeaderValue::from_static(VALID));
    h.insert(TRACESTATE, HeaderValue::from_static("a=1"));
    h.append(TRACESTATE, HeaderValue::from_static("b=2"));
    let ctx = extract(&h).unwrap().unwrap();
    assert_eq!(ctx.parent.to_string(), VALID);
    let state: Vec<_> = ctx.state.as_ref().unwrap().entries().collect();
    assert_eq!(state, [("a", "1"), ("b", "2")]);

    // A bad tracestate is dropped, the traceparent kept.
    h.insert(TRACESTATE, HeaderValue::from_static("BAD"));
    assert_eq!(extract(&h).unwrap().unwrap().state, None);

    h.append(TRACEPARENT, HeaderValue::from_static(VALID));
    assert_eq!(extract(&h), Err(TraceParseError::Repeated));
    h.insert(TRACEPARENT, HeaderValue::from_static("nope"));
    assert_eq!(extract(&h), Err(TraceParseError::Length(4)));
}

#[test]
fn inject_starts_continues_or_leaves_alone() {
    let ids = SeededIds::new(7);

    // New trace.
    let mut req = Request::new(());
    inject(&mut req, &ids, TraceFlags::SAMPLED);
    let first = TraceParent::from_header(&req.headers()[TRACEPARENT]).unwrap();
    assert!(first.flags.is_sampled());
    assert!(req.headers().get(TRACESTATE).is_none());

    // Deterministic with the same seed.
    let mut again = Request::new(());
    inject(&mut again, &SeededIds::new(7), TraceFlags::SAMPLED);
    assert_eq!(again.headers()[TRACEPARENT], req.headers()[TRACEPARENT]);

    // Continue an incoming context: same trace and flags, new parent id.
    let incoming: TraceParent = VALID.replace("-01", "-00").parse().unwrap();
    let mut req = Request::new(());
    req.extensions_mut().insert(TraceContext {
        parent: incoming,
        state: Some("congo=t61rcWkgMzE".parse().unwrap()),
    });
    inject(&mut req, &ids, TraceFlags::SAMPLED);
    let sent = TraceParent::from_header(&req.headers()[TRACEPARENT]).unwrap();
    assert_eq!(sent.trace_id, incoming.trace_id);
    assert_ne!(sent.parent_id, incoming.parent_id);
    assert!(!sent.flags.is_sampled(), "flags carried over");
    assert_eq!(req.headers()[TRACESTATE], "congo=t61rcWkgMzE");

    // An application-set header wins.
    let mut req = Request::new(());
    req.headers_mut()
        .insert(TRACEPARENT, HeaderValue::from_static(VALID));
    inject(&mut req, &ids, TraceFlags::SAMPLED);
    assert_eq!(req.headers()[TRACEPARENT], VALID);
}

#[test]
fn random_ids_are_distinct_and_nonzero() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let t = RandomIds.trace_id();
        assert!(!t.is_zero());
        assert!(seen.insert(t), "repeated trace id");
        assert!(!RandomIds.span_id().is_zero());
    }
    // Another thread is seeded differently.
    let here = RandomIds.trace_id();
    let there = std::thread::spawn(|| RandomIds.trace_id()).join().unwrap();
    assert_ne!(here, there);
}

#[test]
fn an_injected_traceparent_is_never_indexed_by_hpack() {
    // Unique per request: sent as a never-indexed literal over HTTP/2.
    let mut req = http::Request::new(());
    inject(&mut req, &RandomIds, TraceFlags::SAMPLED);
    let value = req.headers().get(TRACEPARENT).unwrap();
    assert!(value.is_sensitive());
    assert!(TraceParent::from_header(value).is_ok());
}
