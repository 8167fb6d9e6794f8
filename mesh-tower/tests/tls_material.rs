//! Loading TLS material: every kind of bad file is a typed error naming
//! the file; reload swaps good material in and keeps the old on a bad
//! file; the expiry gauge reports the seconds left.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::path::Path;
use std::time::Duration;

use mesh_core::config::MeshEnv;
use mesh_tests::tls::{Pki, Validity, spiffe};
use mesh_tower::tls::{Tls, TlsConfig, TlsError};

fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Tls, TlsError> {
    Tls::load(TlsConfig::new(cert, key, ca))
}

#[track_caller]
fn names(err: &TlsError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "`{msg}` does not name {}",
        path.display()
    );
}

#[test]
fn each_kind_of_bad_material_is_a_typed_error_naming_the_file() {
    let pki = Pki::new("mesh");
    let good = pki.leaf("news-service", "news");
    let other = pki.leaf("app-ui", "app");
    let dir = pki.dir();
    let ca = pki.ca();
    assert_eq!(
        load(&good.cert, &good.key, &ca)
            .unwrap()
            .identity()
            .as_str(),
        spiffe("news-service")
    );

    let missing = dir.join("missing.crt");
    let e = load(&missing, &good.key, &ca).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
    names(&e, &missing);

    // A certificate file holding only a key.
    let e = load(&good.key, &good.key, &ca).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    names(&e, &good.key);

    // A key file holding only a certificate.
    let e = load(&good.cert, &good.cert, &ca).unwrap_err();
    assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
    names(&e, &good.cert);

    let junk = dir.join("junk.key");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = load(&good.cert, &junk, &ca).unwrap_err();
    assert!(matches!(e, TlsError::UnsupportedKey { .. }), "{e:?}");
    names(&e, &junk);

    let e = load(&good.cert, &other.key, &ca).unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    names(&e, &good.cert);
    names(&e, &other.key);

    let expired = pki.issue(Some(&spiffe("news-service")), Validity::Expired, "expired");
    let e = load(&expired.cert, &expired.key, &ca).unwrap_err();
    assert!(matches!(e, TlsError::Expired { .. }), "{e:?}");
    names(&e, &expired.cert);
    assert!(e.to_string().contains("expired"), "{e}");

    let early = pki.issue(
        Some(&spiffe("news-service")),
        Validity::NotYetValid,
        "early",
    );
    let e = load(&early.cert, &early.key, &ca).unwrap_err();
    assert!(matches!(e, TlsError::NotYetValid { .. }), "{e:?}");
    names(&e, &early.cert);

    let anon = pki.issue(None, Validity::Current, "anon");
    let e = load(&anon.cert, &anon.key, &ca).unwrap_err();
    assert!(matches!(e, TlsError::NoSpiffeId { .. }), "{e:?}");
    names(&e, &anon.cert);

    let empty_ca = dir.join("empty-ca.pem");
    std::fs::write(&empty_ca, "").unwrap();
    let e = load(&good.cert, &good.key, &empty_ca).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    names(&e, &empty_ca);
}

#[test]
fn the_environment_needs_all_three_files() {
    let env = |vars: &[(&str, &str)]| {
        MeshEnv::from_vars_os(vars.iter().map(|(k, v)| ((*k).into(), (*v).into()))).unwrap()
    };
    assert_eq!(TlsConfig::from_env(&env(&[])).unwrap(), None);
    let e = TlsConfig::from_env(&env(&[
        ("MESH_TLS_CERT", "c.pem"),
        ("MESH_TLS_CA", "ca.pem"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("MESH_TLS_KEY"), "{e}");
    let c = TlsConfig::from_env(&env(&[
        ("MESH_TLS_CERT", "c.pem"),
        ("MESH_TLS_KEY", "k.pem"),
        ("MESH_TLS_CA", "ca.pem"),
        ("MESH_TLS_MODE", "permissive"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.mode, mesh_tower::tls::TlsMode::Permissive);
    assert_eq!(c.key, Path::new("k.pem"));
}

#[tokio::test]
async fn reload_takes_good_files_and_keeps_the_old_material_on_bad_ones() {
    let pki = Pki::new("mesh");
    let leaf = pki.leaf("news-service", "news");
    let tls = Tls::load(
        TlsConfig::new(&leaf.cert, &leaf.key, pki.ca()).reload_interval(Duration::from_millis(20)),
    )
    .unwrap();

    // A truncated certificate: logged, ignored.
    std::fs::write(&leaf.cert, &leaf.cert_pem[..leaf.cert_pem.len() / 2]).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tls.identity().as_str(), spiffe("news-service"));
    assert!(matches!(
        tls.reload(),
        Err(TlsError::Pem { .. } | TlsError::NoCertificate { .. })
    ));

    // A new identity, certificate and key written one after the other.
    let (cert, key) = pki.issue_pem(Some(&spiffe("news-v2")), Validity::Current);
    std::fs::write(&leaf.cert, &cert).unwrap();
    std::fs::write(&leaf.key, &key).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tls.identity().as_str() != spiffe("news-v2") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new material never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_expiry_gauge_reports_seconds_left() {
    let pki = Pki::new("mesh");
    let leaf = pki.leaf("news-service", "news");
    let tls = load(&leaf.cert, &leaf.key, &pki.ca()).unwrap();
    let left = tls.expires_in();
    assert!(
        left > Duration::from_secs(86_000) && left <= Duration::from_secs(86_400),
        "{left:?}"
    );

    let (provider, exposition) = mesh_tower::metrics::prometheus::pipeline(None).unwrap();
    tls.register_metrics(&opentelemetry::metrics::MeterProvider::meter(
        &provider,
        "mesh-tower",
    ));
    let text = exposition.render().unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("mesh_tls_cert_expiry_seconds{"))
        .unwrap_or_else(|| panic!("no gauge in\n{text}"));
    assert!(line.contains(&spiffe("news-service")), "{line}");
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((86_000.0..=86_400.0).contains(&value), "{line}");
}
