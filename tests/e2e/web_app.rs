//! The web app's files from the gateway (`--web-dir`): content types, the strict CSP,
//! caching of hashed assets, the fallback to `index.html` for the app's routes, no token,
//! and gRPC and gRPC-Web on the same port as before. The app itself is tested in a browser
//! (`web/e2e`).

use std::path::Path;

use bytes::Bytes;
use e2e::*;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use prost::Message;
use switchboard::proto::notification::v1 as npb;
use tonic::Code;

use crate::web_client::*;

const INDEX: &str = "<!doctype html><title>app</title><script type=\"module\" src=\"/assets/index-3f2a1c.js\"></script>";
const SCRIPT: &str = "console.log('app');";

/// A built app as Vite writes it: `index.html` and content-hashed `assets/`.
fn built_app(dir: &Path) {
    std::fs::create_dir_all(dir.join("assets")).expect("assets dir");
    std::fs::write(dir.join("index.html"), INDEX).expect("index.html");
    std::fs::write(dir.join("assets/index-3f2a1c.js"), SCRIPT).expect("script");
    std::fs::write(dir.join("assets/index-77d0e1.css"), "body{margin:0}").expect("style");
    std::fs::write(
        dir.join("favicon.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .expect("icon");
}

async fn start_serving_app() -> (E2e, tempfile::TempDir) {
    let site = tempfile::tempdir().expect("temp dir");
    let app_dir = site.path().join("dist");
    built_app(&app_dir);
    // Beside the app, not in it: no path may reach it.
    std::fs::write(site.path().join("secret.txt"), "not for the web").expect("secret");
    let app = start_with(Backend::Sqlite, |c| c.web_dir = Some(app_dir)).await;
    (app, site)
}

fn get(path: &str) -> http::Request<Full<Bytes>> {
    request(Method::GET, path)
}

fn request(method: Method, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "gateway.switchboard.test")
        .header("accept", "text/html,*/*")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

async fn fetch(app: &E2e, request: http::Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
    // The client lives until the body is read: dropping it closes the connection.
    let mut client = connect(app.gateway).await;
    let response = client.send(request).await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts, body)
}

fn header(parts: &http::response::Parts, name: header::HeaderName) -> &str {
    parts
        .headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_without_a_token_with_its_content_types_and_a_strict_csp() {
    let (app, _site) = start_serving_app().await;
    let (index, body) = fetch(&app, get("/")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(body, INDEX.as_bytes());
    assert!(header(&index, header::CONTENT_TYPE).starts_with("text/html"));
    let csp = header(&index, header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("a script-src directive");
    assert_eq!(script_src, "script-src 'self'");
    for loose in ["unsafe-inline", "unsafe-eval", "*"] {
        assert!(!csp.contains(loose), "{loose} in {csp}");
    }
    assert_eq!(header(&index, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(&index, header::REFERRER_POLICY), "no-referrer");

    let (script, body) = fetch(&app, get("/assets/index-3f2a1c.js")).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(body, SCRIPT.as_bytes());
    assert!(header(&script, header::CONTENT_TYPE).contains("javascript"));
    let (style, _) = fetch(&app, get("/assets/index-77d0e1.css")).await;
    assert!(header(&style, header::CONTENT_TYPE).starts_with("text/css"));
    let (icon, _) = fetch(&app, get("/favicon.svg")).await;
    assert_eq!(header(&icon, header::CONTENT_TYPE), "image/svg+xml");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_assets_are_cached_for_good_and_everything_else_is_revalidated() {
    let (app, _site) = start_serving_app().await;
    let (script, _) = fetch(&app, get("/assets/index-3f2a1c.js")).await;
    assert_eq!(
        header(&script, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    for path in ["/", "/favicon.svg", "/conversations/abc"] {
        let (parts, _) = fetch(&app, get(path)).await;
        assert_eq!(header(&parts, header::CACHE_CONTROL), "no-cache", "{path}");
    }
    // A missing asset is not cached: the next deploy may bring it.
    let (missing, _) = fetch(&app, get("/assets/index-000000.js")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(header(&missing, header::CACHE_CONTROL), "no-cache");
    // Revalidation works: the same file again with its validator is a 304.
    let (index, _) = fetch(&app, get("/")).await;
    let last_modified = header(&index, header::LAST_MODIFIED).to_owned();
    let mut again = get("/");
    again.headers_mut().insert(
        header::IF_MODIFIED_SINCE,
        last_modified.parse().expect("header value"),
    );
    let (revalidated, body) = fetch(&app, again).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_routes_fall_back_to_index_html_but_missing_files_are_404() {
    let (app, _site) = start_serving_app().await;
    for route in [
        "/conversations",
        "/conversations/0192-abc",
        "/preferences",
        "/?tab=read",
    ] {
        let (parts, body) = fetch(&app, get(route)).await;
        assert_eq!(parts.status, StatusCode::OK, "{route}");
        assert_eq!(body, INDEX.as_bytes(), "{route}");
        assert!(header(&parts, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
    }
    for missing in [
        "/favicon.ico",
        "/assets/gone.js",
        "/assets/deep/route",
        "/robots.txt",
    ] {
        let (parts, body) = fetch(&app, get(missing)).await;
        assert_eq!(parts.status, StatusCode::NOT_FOUND, "{missing}");
        assert_ne!(body, INDEX.as_bytes(), "{missing}");
    }
    for escape in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
    ] {
        let (parts, body) = fetch(&app, get(escape)).await;
        assert!(
            !String::from_utf8_lossy(&body).contains("not for the web"),
            "{escape}: {:?}",
            parts.status
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_answered_like_get_without_a_body_and_other_methods_read_no_file() {
    let (app, _site) = start_serving_app().await;
    let (head, body) = fetch(&app, request(Method::HEAD, "/assets/index-3f2a1c.js")).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        header(&head, header::CONTENT_LENGTH),
        SCRIPT.len().to_string()
    );
    // A POST, PUT or DELETE is not a file request: it goes to the gRPC routes, which serve
    // no files.
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let (parts, body) = fetch(&app, request(method.clone(), "/index.html")).await;
        assert_ne!(body, INDEX.as_bytes(), "{method}");
        assert_ne!(parts.status, StatusCode::OK, "{method}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_grpc_web_work_as_before_on_the_port_that_serves_the_app() {
    let (app, _site) = start_serving_app().await;
    let sender = app.token("ci", "notifications:send");
    app.notifications(&sender)
        .send(to("wes", "build 8 passed"))
        .await
        .expect("send over gRPC");
    let token = app.token("wes", "");
    let list = unary(
        app.gateway,
        call(LIST, &token, BINARY, &npb::ListRequest::default()),
    )
    .await;
    assert_eq!(list.status.code(), Code::Ok, "{:?}", list.status);
    let response = npb::ListResponse::decode(list.messages[0].clone()).expect("ListResponse");
    assert_eq!(response.notifications[0].content, "build 8 passed");
    // Files need no token, calls still do.
    let refused = unary(
        app.gateway,
        call(LIST, "", BINARY, &npb::ListRequest::default()),
    )
    .await;
    assert_eq!(refused.status.code(), Code::Unauthenticated);
    app.stop().await;
}

#[test]
fn a_web_dir_without_a_built_app_stops_the_gateway_at_start() {
    let empty = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(processes::binary("gateway"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--internal-token",
            "t",
            "--jwt-secret",
            "s",
        ])
        .arg("--web-dir")
        .arg(empty.path())
        .output()
        .expect("run the gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no index.html"), "{stderr}");
}
