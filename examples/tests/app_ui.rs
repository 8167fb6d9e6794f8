//! `app-ui` as a real process: news fetched from a real `news-service`
//! through the mesh client it builds from its environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{command, get, mesh_client, spawn_listening};
use mesh_examples::ui::ApiNews;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_news_fetched_through_the_mesh() {
    let mut cmd = command(env!("CARGO_BIN_EXE_news-service"));
    cmd.env("NEWS_VERSION", "v7");
    let news = spawn_listening(cmd);

    let mut cmd = command(env!("CARGO_BIN_EXE_app-ui"));
    cmd.env("MESH_ENDPOINTS_NEWS_SERVICE", news.addr.to_string());
    let ui = spawn_listening(cmd);

    let yaml = format!(
        "services:\n  app-ui:\n    endpoints: [ {{ address: \"{}\" }} ]\n",
        ui.addr
    );
    let (_mesh, client) = mesh_client(&yaml, "app-ui");

    let (parts, api) = get(&client, "http://app-ui/api/news").await;
    assert_eq!(parts.status, http::StatusCode::OK, "{api}");
    let api: ApiNews = serde_json::from_str(&api).unwrap();
    assert_eq!(api.version, "v7");
    assert_eq!(api.address, news.addr.to_string());
    assert_eq!(api.served_by, Some(news.addr.to_string()));
    assert_eq!(api.attempts, 1);
    assert!(!api.items.is_empty());

    let (parts, html) = get(&client, "http://app-ui/").await;
    assert_eq!(parts.status, http::StatusCode::OK);
    assert!(
        parts.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    for story in &api.items {
        assert!(
            html.contains(&format!("<li>{}</li>", story.title)),
            "{html}"
        );
    }
    assert!(
        html.contains(&format!("news-service v7 at {}", news.addr)),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_502_when_news_service_is_down() {
    // A port nothing listens on.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cmd = command(env!("CARGO_BIN_EXE_app-ui"));
    cmd.env("MESH_ENDPOINTS_NEWS_SERVICE", gone.to_string());
    let ui = spawn_listening(cmd);
    let yaml = format!(
        "services:\n  app-ui:\n    endpoints: [ {{ address: \"{}\" }} ]\n",
        ui.addr
    );
    let (_mesh, client) = mesh_client(&yaml, "app-ui");
    let (parts, body) = get(&client, "http://app-ui/api/news").await;
    assert_eq!(parts.status, http::StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("calling news-service"), "{body}");
}
