//! gRPC over mTLS with intentions end to end: the real `greeter-server` in
//! strict mode (`MESH_TLS_*`, `MESH_CONFIG`), called by the real
//! `greeter-client` and by a stock Python grpcio client with
//! `grpc.ssl_channel_credentials(root_certificates, private_key,
//! certificate_chain)`.
//!
//! The grpcio test skips with a message when grpcio is missing (see
//! `scripts/install-peers.sh`) and fails when `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Proc, command, run_bounded, spawn_listening};
use mesh_tests::grpcio;
use mesh_tests::tls::{Leaf, Pki};
use serde_json::{Value, json};

const SERVER: &str = env!("CARGO_BIN_EXE_greeter-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_greeter-client");

/// Only `greeter-client` may call `greeter`; everything else gets the
/// default policy (deny).
const INTENTIONS: &str = "default_policy: deny
intentions:
  - { source: greeter-client, destination: greeter, action: allow }
";

fn with_tls(bin: &str, pki: &Pki, leaf: &Leaf) -> Command {
    let mut cmd = command(bin);
    cmd.env("MESH_TLS_CERT", &leaf.cert)
        .env("MESH_TLS_KEY", &leaf.key)
        .env("MESH_TLS_CA", pki.ca())
        .env("MESH_TLS_MODE", "strict");
    cmd
}

/// greeter-server in strict mTLS, service `greeter`, with [`INTENTIONS`].
fn server(pki: &Pki) -> Proc {
    let config = pki.dir().join("intentions.yaml");
    std::fs::write(&config, INTENTIONS).unwrap();
    let leaf = pki.leaf("greeter", "greeter");
    let mut cmd = with_tls(SERVER, pki, &leaf);
    cmd.env("MESH_SERVICE", "greeter")
        .env("MESH_CONFIG", &config);
    spawn_listening(cmd)
}

/// A mesh config naming the server as `greeter`'s endpoint.
fn client_config(pki: &Pki, server: &Proc) -> PathBuf {
    let path = pki.dir().join("client.yaml");
    std::fs::write(
        &path,
        format!(
            "services:\n  greeter:\n    protocol: grpc\n    endpoints: [{{ address: \"{}\" }}]\n",
            server.addr
        ),
    )
    .unwrap();
    path
}

#[test]
fn greeter_client_over_mtls_is_allowed_and_another_identity_is_denied() {
    let pki = Pki::new("mesh");
    let server = server(&pki);
    let config = client_config(&pki, &server);

    let run = |identity: &str| -> (bool, Value) {
        let leaf = pki.leaf(identity, identity);
        let mut client = with_tls(CLIENT, &pki, &leaf);
        client
            .env("MESH_CONFIG", &config)
            .args(["--requests", "5", "--json"]);
        let (status, stdout) = run_bounded(client, Duration::from_secs(60));
        let report = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"));
        (status.success(), report)
    };

    let (ok, report) = run("greeter-client");
    assert!(ok, "{report}");
    assert_eq!(report["status"], json!({ "OK": 5 }), "{report}");
    assert_eq!(report["endpoints"][server.addr.to_string()], 5, "{report}");

    let (ok, report) = run("billing");
    assert!(!ok, "{report}");
    assert_eq!(
        report["status"],
        json!({ "PERMISSION_DENIED": 5 }),
        "{report}"
    );
}

#[test]
fn grpcio_ssl_client_gets_ok_permission_denied_or_no_handshake() {
    if !grpcio::available() {
        return;
    }
    let pki = Pki::new("mesh");
    let server = server(&pki);
    let target = server.addr.to_string();
    let limit = Duration::from_secs(60);
    let ca = pki.ca();

    let allowed = pki.leaf("greeter-client", "greeter-client");
    let out = grpcio::run_tls_client(&target, &ca, Some((&allowed.cert, &allowed.key)), 3, limit);
    let v: Value = serde_json::from_str(&out).unwrap();
    let greeting = format!("Hello mesh from {}", server.addr);
    assert_eq!(v["counts"], json!({ greeting: 3 }), "{v}");
    assert_eq!(v["errors"], json!({}), "{v}");

    let denied = pki.leaf("billing", "billing");
    let out = grpcio::run_tls_client(&target, &ca, Some((&denied.cert, &denied.key)), 3, limit);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["counts"], json!({}), "{v}");
    assert_eq!(v["errors"], json!({ "PERMISSION_DENIED": 3 }), "{v}");

    // No client certificate: strict mode refuses the handshake.
    let out = grpcio::run_tls_client(&target, &ca, None, 3, limit);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["counts"], json!({}), "{v}");
    assert_eq!(v["errors"], json!({ "UNAVAILABLE": 3 }), "{v}");
}
