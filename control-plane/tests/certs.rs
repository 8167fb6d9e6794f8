//! `meshctl certs` as a user runs it: the real binary writes a CA and leaf
//! certificates, and OpenSSL (the peer) reads and verifies them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .output()
        .expect("run meshctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = meshctl(args);
    assert!(
        out.status.success(),
        "meshctl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Fails with `code`; returns stderr.
fn fails(args: &[&str], code: i32) -> String {
    let out = meshctl(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "meshctl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Whether `openssl` runs. Skips (false) with a message when it does not,
/// fails when `CI=true`.
fn openssl_available() -> bool {
    if Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    let msg = "SKIP: openssl not found on PATH (apt-get install -y openssl)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg}; failing because CI=true"
    );
    eprintln!("{msg}");
    false
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `notBefore=...` / `notAfter=...` of `openssl x509 -dates`, as Unix time
/// via `date -d` (GNU date reads OpenSSL's format).
fn dates(cert: &Path) -> (i64, i64) {
    let out = text(&openssl(&["x509", "-in", p(cert), "-noout", "-dates"]).stdout);
    let get = |key: &str| {
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {out}"));
        let d = Command::new("date")
            .args(["-u", "-d", v, "+%s"])
            .output()
            .unwrap();
        text(&d.stdout).trim().parse::<i64>().unwrap()
    };
    (get("notBefore="), get("notAfter="))
}

#[test]
fn ca_and_leaf_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let leaf = dir.path().join("news");
    let out = ok(&[
        "certs",
        "ca",
        "--out",
        p(&ca),
        "--trust-domain",
        "prod.mesh",
        "--ttl",
        "48h",
    ]);
    assert!(out.contains("prod.mesh"), "{out}");
    let out = ok(&[
        "certs",
        "issue",
        "--service",
        "news-service",
        "--namespace",
        "web",
        "--ca",
        p(&ca),
        "--out",
        p(&leaf),
        "--ttl",
        "90m",
    ]);
    assert!(
        out.contains("spiffe://prod.mesh/ns/web/svc/news-service"),
        "{out}"
    );
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        assert!(leaf.join(f).is_file(), "{f} written");
    }
    assert_eq!(
        std::fs::read(ca.join("ca.pem")).unwrap(),
        std::fs::read(leaf.join("ca.pem")).unwrap(),
        "ca.pem is a copy of the CA"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&ca.join("ca-key.pem")), 0o600);
        assert_eq!(mode(&leaf.join("key.pem")), 0o600);
    }
    if !openssl_available() {
        return;
    }
    // The chain verifies, for both purposes.
    for purpose in ["sslserver", "sslclient"] {
        let v = openssl(&[
            "verify",
            "-CAfile",
            p(&ca.join("ca.pem")),
            "-purpose",
            purpose,
            p(&leaf.join("cert.pem")),
        ]);
        assert!(
            v.status.success(),
            "verify {purpose}: {}{}",
            text(&v.stdout),
            text(&v.stderr)
        );
        assert!(text(&v.stdout).contains(": OK"), "{}", text(&v.stdout));
    }
    // The leaf: SPIFFE URI SAN, CN, EKUs, not a CA.
    let t = text(&openssl(&["x509", "-in", p(&leaf.join("cert.pem")), "-noout", "-text"]).stdout);
    assert!(
        t.contains("URI:spiffe://prod.mesh/ns/web/svc/news-service"),
        "{t}"
    );
    assert!(
        t.contains("CN = news-service") || t.contains("CN=news-service"),
        "{t}"
    );
    assert!(t.contains("TLS Web Server Authentication"), "{t}");
    assert!(t.contains("TLS Web Client Authentication"), "{t}");
    assert!(t.contains("CA:FALSE"), "{t}");
    // The CA: a CA, with the trust domain's URI.
    let t = text(&openssl(&["x509", "-in", p(&ca.join("ca.pem")), "-noout", "-text"]).stdout);
    assert!(t.contains("CA:TRUE"), "{t}");
    assert!(t.contains("URI:spiffe://prod.mesh"), "{t}");
    // Validity = TTL, starting now.
    let (nb, na) = dates(&leaf.join("cert.pem"));
    assert_eq!(na - nb, 90 * 60);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - nb).abs() < 300, "starts now: {nb} vs {now}");
    let (nb, na) = dates(&ca.join("ca.pem"));
    assert_eq!(na - nb, 48 * 3600);
    // The key is the certificate's key.
    let pub_cert = openssl(&[
        "x509",
        "-in",
        p(&leaf.join("cert.pem")),
        "-noout",
        "-pubkey",
    ])
    .stdout;
    let pub_key = openssl(&["pkey", "-in", p(&leaf.join("key.pem")), "-pubout"]).stdout;
    assert_eq!(text(&pub_cert), text(&pub_key));
}

#[test]
fn a_certificate_of_another_ca_does_not_verify() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b, leaf) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("leaf"),
    );
    ok(&["certs", "ca", "--out", p(&a)]);
    ok(&["certs", "ca", "--out", p(&b)]);
    ok(&[
        "certs",
        "issue",
        "--service",
        "app-ui",
        "--ca",
        p(&a),
        "--out",
        p(&leaf),
    ]);
    let t = text(&openssl(&["x509", "-in", p(&leaf.join("cert.pem")), "-noout", "-text"]).stdout);
    assert!(
        t.contains("URI:spiffe://mesh.local/ns/default/svc/app-ui"),
        "defaults: {t}"
    );
    let v = openssl(&[
        "verify",
        "-CAfile",
        p(&b.join("ca.pem")),
        p(&leaf.join("cert.pem")),
    ]);
    assert!(
        !v.status.success(),
        "verified against the wrong CA: {}",
        text(&v.stdout)
    );
}

#[test]
fn refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    ok(&["certs", "ca", "--out", p(&ca)]);
    let before = std::fs::read(ca.join("ca.pem")).unwrap();
    let err = fails(&["certs", "ca", "--out", p(&ca)], 1);
    assert!(err.contains("ca.pem") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(ca.join("ca.pem")).unwrap(),
        before,
        "untouched"
    );
    ok(&["certs", "ca", "--out", p(&ca), "--force"]);
    assert_ne!(
        std::fs::read(ca.join("ca.pem")).unwrap(),
        before,
        "replaced"
    );

    let leaf = dir.path().join("leaf");
    ok(&[
        "certs",
        "issue",
        "--service",
        "s",
        "--ca",
        p(&ca),
        "--out",
        p(&leaf),
    ]);
    let err = fails(
        &[
            "certs",
            "issue",
            "--service",
            "s",
            "--ca",
            p(&ca),
            "--out",
            p(&leaf),
        ],
        1,
    );
    assert!(
        err.contains("cert.pem") && err.contains("already exists"),
        "{err}"
    );
    ok(&[
        "certs",
        "issue",
        "--service",
        "s",
        "--ca",
        p(&ca),
        "--out",
        p(&leaf),
        "--force",
    ]);
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let out = dir.path().join("out");
    ok(&["certs", "ca", "--out", p(&ca), "--ttl", "10h"]);
    let issue = |extra: &[&str]| {
        let mut args = vec!["certs", "issue", "--out", p(&out)];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, code| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&refs, code)
    };

    // Missing CA directory: named, exit 2 (I/O).
    let missing = dir.path().join("nope");
    let err = run(issue(&["--service", "s", "--ca", p(&missing)]), 2);
    assert!(err.contains("nope/ca.pem"), "{err}");
    // Bad TTLs.
    let err = run(issue(&["--service", "s", "--ca", p(&ca), "--ttl", "24"]), 1);
    assert!(err.contains("--ttl") && err.contains("unit"), "{err}");
    let err = run(issue(&["--service", "s", "--ca", p(&ca), "--ttl", "0s"]), 1);
    assert!(err.contains("ttl"), "{err}");
    let err = run(
        issue(&["--service", "s", "--ca", p(&ca), "--ttl", "11h"]),
        1,
    );
    assert!(err.contains("outlives the CA"), "{err}");
    // Bad names.
    let err = run(issue(&["--service", "a/b", "--ca", p(&ca)]), 1);
    assert!(err.contains("service name \"a/b\""), "{err}");
    let err = run(
        issue(&["--service", "s", "--namespace", "..", "--ca", p(&ca)]),
        1,
    );
    assert!(err.contains("namespace name \"..\""), "{err}");
    let err = fails(
        &["certs", "ca", "--out", p(&out), "--trust-domain", "Bad_TD"],
        1,
    );
    assert!(err.contains("trust domain \"Bad_TD\""), "{err}");
    // A key that is not the CA's.
    let other = dir.path().join("other");
    ok(&["certs", "ca", "--out", p(&other)]);
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(ca.join("ca.pem"), mixed.join("ca.pem")).unwrap();
    std::fs::copy(other.join("ca-key.pem"), mixed.join("ca-key.pem")).unwrap();
    let err = run(issue(&["--service", "s", "--ca", p(&mixed)]), 1);
    assert!(
        err.contains("ca-key.pem is not the key of") && err.contains("mixed/ca.pem"),
        "{err}"
    );
    // An unreadable key and a certificate that is not a CA.
    std::fs::write(mixed.join("ca-key.pem"), "garbage").unwrap();
    let err = run(issue(&["--service", "s", "--ca", p(&mixed)]), 1);
    assert!(
        err.contains("ca-key.pem") && err.contains("private key"),
        "{err}"
    );
    let leaf = dir.path().join("leaf");
    ok(&[
        "certs",
        "issue",
        "--service",
        "s",
        "--ca",
        p(&ca),
        "--out",
        p(&leaf),
        "--ttl",
        "1h",
    ]);
    std::fs::copy(leaf.join("cert.pem"), mixed.join("ca.pem")).unwrap();
    std::fs::copy(leaf.join("key.pem"), mixed.join("ca-key.pem")).unwrap();
    let err = run(issue(&["--service", "s", "--ca", p(&mixed)]), 1);
    assert!(err.contains("not a CA certificate"), "{err}");
    assert!(!out.join("cert.pem").exists(), "nothing written on errors");
}
