use proptest::prelude::*;

use super::*;

fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
    s.parse()
}

#[test]
fn parses_service_id() {
    let id = parse("spiffe://mesh.local/ns/prod/svc/news-service").unwrap();
    assert_eq!(id.trust_domain(), "mesh.local");
    assert_eq!(id.path(), "/ns/prod/svc/news-service");
    assert_eq!(
        id.service_identity(),
        Some(ServiceIdentity {
            namespace: "prod",
            service: "news-service"
        })
    );
    assert_eq!(
        id.to_string(),
        "spiffe://mesh.local/ns/prod/svc/news-service"
    );
}

#[test]
fn trust_domain_id_and_other_paths_name_no_service() {
    let td = parse("spiffe://example.org").unwrap();
    assert_eq!(td.trust_domain(), "example.org");
    assert_eq!(td.path(), "");
    assert_eq!(td.service_identity(), None);
    for other in [
        "spiffe://example.org/workload/a",
        "spiffe://example.org/ns/default",
        "spiffe://example.org/ns/default/svc",
        "spiffe://example.org/ns/default/svc/a/extra",
        "spiffe://example.org/ns/default/sa/a",
        "spiffe://example.org/x/ns/default/svc/a",
    ] {
        let id = parse(other).unwrap();
        assert_eq!(id.service_identity(), None, "{other}");
    }
}

#[test]
fn for_service_builds_and_validates() {
    let id = SpiffeId::for_service("mesh.local", DEFAULT_NAMESPACE, "app-ui").unwrap();
    assert_eq!(id.as_str(), "spiffe://mesh.local/ns/default/svc/app-ui");
    assert_eq!(
        SpiffeId::for_service("mesh.local", "a/b", "x"),
        Err(SpiffeIdError::BadPathChar { ch: '/', at: 1 })
    );
    assert_eq!(
        SpiffeId::for_service("mesh.local", "default", ".."),
        Err(SpiffeIdError::DotSegment)
    );
    assert_eq!(
        SpiffeId::for_service("mesh.local", "", "x"),
        Err(SpiffeIdError::EmptySegment)
    );
    assert_eq!(
        SpiffeId::for_service("Mesh.local", "default", "x"),
        Err(SpiffeIdError::BadTrustDomainChar { ch: 'M', at: 0 })
    );
}

#[test]
fn bad_input_rejected_with_reason() {
    use SpiffeIdError::*;
    let cases: &[(&str, SpiffeIdError)] = &[
        ("", Empty),
        ("http://mesh.local/ns/a/svc/b", WrongScheme),
        ("SPIFFE://mesh.local/a", WrongScheme),
        ("spiffe:/mesh.local", WrongScheme),
        ("spiffe://", MissingTrustDomain),
        ("spiffe:///ns/a", MissingTrustDomain),
        ("spiffe://mesh.local:8443/a", Port),
        ("spiffe://user@mesh.local/a", UserInfo),
        (
            "spiffe://Mesh.local/a",
            BadTrustDomainChar { ch: 'M', at: 9 },
        ),
        ("spiffe://mesh.local/a?x=1", Query),
        ("spiffe://mesh.local/a#frag", Fragment),
        ("spiffe://mesh.local?x", Query),
        ("spiffe://mesh.local/a%20b", BadPathChar { ch: '%', at: 21 }),
        ("spiffe://mesh.local/a b", BadPathChar { ch: ' ', at: 21 }),
        ("spiffe://mesh.local/", EmptySegment),
        ("spiffe://mesh.local/a/", EmptySegment),
        ("spiffe://mesh.local//a", EmptySegment),
        ("spiffe://mesh.local/./a", DotSegment),
        ("spiffe://mesh.local/a/..", DotSegment),
        (
            "spiffe://mesh.lócal/a",
            BadTrustDomainChar { ch: 'ó', at: 15 },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input).as_ref(), Err(want), "input {input:?}");
    }
    let long = format!("spiffe://mesh.local/{}", "a".repeat(MAX_ID_LEN));
    assert_eq!(parse(&long), Err(TooLong { len: long.len() }));
    let long_td = format!("spiffe://{}/a", "a".repeat(256));
    assert_eq!(parse(&long_td), Err(TrustDomainTooLong { len: 256 }));
    // Dots are fine inside a segment.
    assert!(parse("spiffe://mesh.local/a.b/..c/.d").is_ok());
}

#[test]
fn error_messages_say_what_is_wrong() {
    let err = parse("spiffe://mesh.local:1/a").unwrap_err();
    assert_eq!(err.to_string(), "trust domain must not contain a port");
    let err = parse("spiffe://mesh.local/a!").unwrap_err();
    assert!(err.to_string().contains("invalid character '!'"), "{err}");
}

#[test]
fn serde_as_string() {
    let id = parse("spiffe://mesh.local/ns/default/svc/a").unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, "\"spiffe://mesh.local/ns/default/svc/a\"");
    let back: SpiffeId = serde_json::from_str(&json).unwrap();
    assert_eq!(back, id);
    assert!(serde_json::from_str::<SpiffeId>("\"spiffe://x/a/\"").is_err());
}

#[test]
fn equal_ids_hash_equal() {
    use std::collections::HashSet;
    let a = parse("spiffe://mesh.local/ns/default/svc/a").unwrap();
    let b = SpiffeId::for_service("mesh.local", "default", "a").unwrap();
    let set: HashSet<SpiffeId> = [a, b].into_iter().collect();
    assert_eq!(set.len(), 1);
}

fn trust_domain() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,40}"
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,20}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

proptest! {
    #[test]
    fn service_id_round_trips(td in trust_domain(), ns in segment(), svc in segment()) {
        let id = SpiffeId::for_service(&td, &ns, &svc).unwrap();
        let parsed: SpiffeId = id.to_string().parse().unwrap();
        prop_assert_eq!(&parsed, &id);
        prop_assert_eq!(parsed.trust_domain(), td.as_str());
        let svc_id = parsed.service_identity().unwrap();
        prop_assert_eq!(svc_id.namespace, ns.as_str());
        prop_assert_eq!(svc_id.service, svc.as_str());
    }

    #[test]
    fn any_path_round_trips(td in trust_domain(), segs in proptest::collection::vec(segment(), 0..6)) {
        let text = format!("spiffe://{td}{}", segs.iter().map(|s| format!("/{s}")).collect::<String>());
        let id = parse(&text).unwrap();
        prop_assert_eq!(id.to_string(), text);
        prop_assert_eq!(id.trust_domain(), td.as_str());
    }

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,64}", tail in "[a-zA-Z0-9/.:@?#%_-]{0,40}") {
        for input in [s.clone(), format!("spiffe://{s}"), format!("spiffe://{tail}")] {
            if let Ok(id) = parse(&input) {
                // Whatever parses formats back to itself and re-parses equal.
                prop_assert_eq!(id.to_string(), input.clone());
                let formatted = id.to_string();
                prop_assert_eq!(parse(&formatted).unwrap(), id);
            }
        }
    }
}
