use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_core::Endpoint;
use mesh_core::config::Format;

use super::endpoints::RegisterOutcome;
use super::*;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn reg(id: &str, port: u16, ttl: Option<u64>) -> Registration {
    Registration {
        service: "news".into(),
        id: id.into(),
        endpoint: Endpoint::new(([127, 0, 0, 1], port).into()).with_weight(2),
        ttl: ttl.map(Duration::from_secs),
    }
}

#[test]
fn config_history_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open_dir(dir.path()).unwrap();
        assert!(store.current_config().unwrap().is_none());
        assert_eq!(store.migrations().unwrap(), vec![1]);
        let v1 = store
            .append_config(Format::Yaml, "services: {}\n", "apply", None, t(0))
            .unwrap();
        let v2 = store
            .append_config(Format::Json, "{}", "apply", None, t(1))
            .unwrap();
        let v3 = store
            .append_config(Format::Yaml, "services: {}\n", "rollback", Some(v1), t(2))
            .unwrap();
        assert_eq!((v1, v2, v3), (1, 2, 3));
    }
    // Reopen: the lock was released with the connection, the state is back.
    let store = Store::open_dir(dir.path()).unwrap();
    let cur = store.current_config().unwrap().unwrap();
    assert_eq!(cur.info.version, 3);
    assert_eq!(cur.info.rollback_of, Some(1));
    assert_eq!(cur.source, "services: {}\n");
    assert_eq!(cur.info.created, t(2));
    let history = store.config_versions().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[1].format, Format::Json);
    assert!(store.config_version(9).unwrap().is_none());
    assert_eq!(store.config_version(2).unwrap().unwrap().source, "{}");
    assert_eq!(store.migrations().unwrap(), vec![1], "migrations run once");
}

#[test]
fn register_renew_change_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_dir(dir.path()).unwrap();
    let a = reg("a", 8081, Some(10));
    assert_eq!(store.register(&a, t(0)).unwrap(), RegisterOutcome::Created);
    assert_eq!(store.register(&a, t(5)).unwrap(), RegisterOutcome::Renewed);
    let mut changed = a.clone();
    changed.endpoint = changed.endpoint.with_label("version", "v2");
    assert_eq!(
        store.register(&changed, t(6)).unwrap(),
        RegisterOutcome::Changed
    );
    assert_eq!(
        store.register(&reg("b", 8081, None), t(6)).unwrap(),
        RegisterOutcome::AddressInUse { id: "a".into() }
    );
    store.register(&reg("c", 8082, None), t(6)).unwrap();

    let got = store.registration("news", "a").unwrap().unwrap();
    assert_eq!(got.registration, changed);
    assert_eq!(got.registered, t(0));
    assert_eq!(got.expires_in(t(10)), Some(Duration::from_secs(6)));

    assert!(store.expire(t(15)).unwrap().is_empty(), "alive until 16");
    assert!(store.heartbeat("news", "a", t(15)).unwrap().is_some());
    assert!(store.heartbeat("news", "zz", t(15)).unwrap().is_none());
    assert!(store.expire(t(24)).unwrap().is_empty(), "renewed until 25");
    let expired = store.expire(t(25)).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].registration.id, "a");
    let left = store.registrations().unwrap();
    assert_eq!(left.len(), 1, "c has no TTL and stays");
    assert_eq!(left[0].registration.id, "c");
    assert!(store.deregister("news", "c").unwrap());
    assert!(!store.deregister("news", "c").unwrap());
}

#[test]
fn second_open_is_locked_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open_dir(dir.path()).unwrap();
    let err = Store::open_dir(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&dir.path().join(DB_FILE).display().to_string()),
        "{err}"
    );
}

#[test]
fn garbage_file_is_corrupt_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DB_FILE);
    std::fs::write(&file, vec![0x5a_u8; 8192]).unwrap();
    let err = Store::open_dir(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_dir(dir.path()).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (99, 0)",
                [],
            )
            .unwrap();
    }
    let err = Store::open_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
}
