use std::time::Duration;

use mesh_core::Endpoint;

use super::*;
use crate::update::Update;
use futures_util::StreamExt;

/// A YAML config: `news=127.0.0.1:1,127.0.0.1:2` lines become services
/// with those endpoints; a line `!` becomes an invalid config.
fn yaml(spec: &str) -> String {
    let mut out = String::from("services:\n");
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        if line == "!" {
            return "services:\n  news:\n    endpoints: [{ address: not-an-address }]\n    retry: { attempts: 0 }\n".to_string();
        }
        let (name, eps) = line.split_once('=').unwrap();
        out.push_str(&format!("  {name}:\n    endpoints:\n"));
        for a in eps.split(',') {
            out.push_str(&format!("      - {{ address: \"{a}\" }}\n"));
        }
    }
    out
}

fn write(path: &Path, spec: &str) {
    std::fs::write(path, yaml(spec)).unwrap();
}

fn open(path: &Path, options: FileOptions) -> Result<FileSource, DiscoveryError> {
    FileSource::open(path, options)
}

fn fast(use_events: bool) -> FileOptions {
    FileOptions {
        poll_interval: Duration::from_millis(100),
        debounce: Duration::from_millis(20),
        use_events,
        ..FileOptions::default()
    }
}

fn addrs(c: &MeshConfig, svc: &str) -> Vec<String> {
    c.services
        .get(svc)
        .map(|s| s.endpoints.iter().map(|e| e.address.to_string()).collect())
        .unwrap_or_default()
}

async fn wait_for(rx: &mut watch::Receiver<Arc<MeshConfig>>, svc: &str, want: &[&str]) {
    let res = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if addrs(&rx.borrow_and_update(), svc) == want {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert!(res.is_ok(), "config never had {svc} = {want:?}");
}

fn ep(s: &str) -> Endpoint {
    Endpoint::new(s.parse().unwrap())
}

#[tokio::test]
async fn initial_load_then_a_good_edit_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1\n");
    let src = open(&path, fast(true)).unwrap();
    assert_eq!(addrs(&src.current(), "news"), vec!["127.0.0.1:1"]);
    let mut rx = src.subscribe();
    write(&path, "news=127.0.0.1:2\n");
    wait_for(&mut rx, "news", &["127.0.0.1:2"]).await;
    assert!(src.last_error().is_none());
}

#[tokio::test]
async fn a_bad_edit_keeps_the_last_good_config_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1\n");
    let src = open(&path, fast(true)).unwrap();
    let mut rx = src.subscribe();

    write(&path, "!\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while src.last_error().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bad edit not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = src.last_error().unwrap();
    assert!(matches!(*err, FileError::Invalid { .. }), "{err:?}");
    let FileError::Invalid { source, .. } = &*err else {
        unreachable!()
    };
    // Every problem is reported, each with its field path.
    assert!(source.errors.len() >= 2, "{source}");
    assert!(
        source
            .errors
            .iter()
            .all(|e| e.path.starts_with("services.news")),
        "{source}"
    );
    let chain = crate::error::error_chain(&*err);
    assert!(chain.contains("mesh.yaml"), "{chain}");
    assert_eq!(addrs(&src.current(), "news"), vec!["127.0.0.1:1"]);
    assert!(
        !rx.has_changed().unwrap(),
        "a bad config must not be published"
    );

    write(&path, "news=127.0.0.1:3\n");
    wait_for(&mut rx, "news", &["127.0.0.1:3"]).await;
    assert!(src.last_error().is_none(), "a good edit clears the error");
}

#[tokio::test]
async fn a_file_replaced_by_rename_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1\n");
    let src = open(&path, fast(true)).unwrap();
    let mut rx = src.subscribe();
    for (i, addr) in ["127.0.0.1:4", "127.0.0.1:5"].into_iter().enumerate() {
        let tmp = dir.path().join(format!(".mesh.yaml.swp{i}"));
        write(&tmp, &format!("news={addr}\n"));
        std::fs::rename(&tmp, &path).unwrap();
        wait_for(&mut rx, "news", &[addr]).await;
    }
}

#[tokio::test]
async fn polling_alone_notices_changes_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1\n");
    let src = open(&path, fast(false)).unwrap();
    let mut rx = src.subscribe();
    // A different size, so the mtime+size check sees it even within one second.
    write(&path, "news=127.0.0.1:1,127.0.0.1:22\n");
    wait_for(&mut rx, "news", &["127.0.0.1:1", "127.0.0.1:22"]).await;

    std::fs::remove_file(&path).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while src.last_error().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deletion not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(*src.last_error().unwrap(), FileError::Read { .. }));
    assert_eq!(addrs(&src.current(), "news").len(), 2, "last good kept");
}

async fn next(s: &mut UpdateStream) -> Option<Update> {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
}

#[tokio::test]
async fn per_service_streams_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1\n");
    let src = open(&path, fast(true)).unwrap();
    let mut news = src.watch("news").unwrap();
    let mut other = src.watch("other").unwrap();
    assert_eq!(
        next(&mut news).await,
        Some(Update::Reset(vec![ep("127.0.0.1:1")]))
    );
    assert_eq!(next(&mut other).await, Some(Update::DoesNotExist));

    write(&path, "news=127.0.0.1:2\nother=127.0.0.1:7\n");
    assert_eq!(
        next(&mut news).await,
        Some(Update::Reset(vec![ep("127.0.0.1:2")]))
    );
    assert_eq!(
        next(&mut other).await,
        Some(Update::Reset(vec![ep("127.0.0.1:7")]))
    );

    write(&path, "other=127.0.0.1:7\n");
    assert_eq!(next(&mut news).await, Some(Update::DoesNotExist));
}

#[tokio::test]
async fn the_first_load_must_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let err = open(&missing, fast(true)).unwrap_err();
    assert!(
        matches!(
            err,
            DiscoveryError::File {
                source: FileError::Read { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let bad = dir.path().join("bad.yaml");
    write(&bad, "!\n");
    let err = open(&bad, fast(true)).unwrap_err();
    assert!(
        matches!(
            err,
            DiscoveryError::File {
                source: FileError::Invalid { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn without_a_runtime_open_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1\n");
    let err = open(&path, fast(true)).unwrap_err();
    assert!(matches!(
        err,
        DiscoveryError::File {
            source: FileError::NoRuntime,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_caught_between_truncate_and_write_is_not_taken_for_an_edit() {
    // `std::fs::write` and many editors truncate, then write. A reload that
    // lands in between reads an empty file, which is a valid (empty) config:
    // taking it would drop every service for a moment.
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write(&path, "news=127.0.0.1:1");
    let options = FileOptions {
        debounce: Duration::from_millis(100),
        ..fast(true)
    };
    let source = open(&path, options).unwrap();
    let mut rx = source.subscribe();
    let seen = tokio::spawn(async move {
        let mut lost = false;
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                let now = rx.borrow_and_update().clone();
                if !now.services.contains_key("news") {
                    lost = true;
                }
                if addrs(&now, "news") == ["127.0.0.1:2"] {
                    return;
                }
            }
        })
        .await;
        lost
    });
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(&path).unwrap(); // truncates
            std::thread::sleep(Duration::from_millis(150)); // past one debounce
            f.write_all(yaml("news=127.0.0.1:2").as_bytes()).unwrap();
        })
    };
    writer.join().unwrap();
    let mut rx = source.subscribe();
    wait_for(&mut rx, "news", &["127.0.0.1:2"]).await;
    assert!(
        !seen.await.unwrap(),
        "a half-written (empty) file was published as the config"
    );
}
