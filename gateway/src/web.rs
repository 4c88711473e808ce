//! The web app's static files (`--web-dir`), served on the gRPC port so a browser loads the
//! app and calls the API from one origin (no CORS needed).
//!
//! Only GET and HEAD without a gRPC content type reach the files; gRPC and gRPC-Web are
//! POSTs and go on to the routes, so assets need no token and a call never reads a file.
//! tower-http's `ServeDir` does the file serving (content types, ranges, conditional
//! requests, no path escapes); this module adds the headers a deployed app wants: a strict
//! Content-Security-Policy, long caching for hashed assets and revalidation for the rest, and
//! `index.html` for the app's own routes (`/conversations/<id>`, the links notifications carry).

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
};

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tonic::body::Body;
use tower::{ServiceExt, util::BoxCloneService};
use tower_http::services::{ServeDir, ServeFile};

use crate::serving::HttpService;

/// Scripts, styles, fonts and calls from the app's own origin only; avatars from anywhere
/// over https (they are URLs in the identity provider's `picture` claim). No inline script or
/// style and no `eval`: the app is built to need none.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: https:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Vite writes content-hashed file names under `assets/`: a new build gets new names, so
/// these can be cached for good.
pub const HASHED_ASSETS: &str = "/assets/";
pub const CACHE_HASHED: &str = "public, max-age=31536000, immutable";
/// Everything else (`index.html` above all) is revalidated on every load, so a deploy shows.
pub const CACHE_REVALIDATE: &str = "no-cache";

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "--web-dir {0}: no index.html there (build the app: cd web && npm ci && npm run build)"
    )]
    NoIndex(PathBuf),
}

type FileService = BoxCloneService<Request<Incoming>, Response<Body>, Infallible>;

/// The built app in one directory.
#[derive(Clone)]
pub struct WebApp {
    files: FileService,
}

impl WebApp {
    /// Checks that `dir` holds a built app (an `index.html`), so a wrong path stops start-up.
    pub fn new(dir: &Path) -> Result<WebApp, WebError> {
        let index = dir.join("index.html");
        if !index.is_file() {
            return Err(WebError::NoIndex(dir.to_owned()));
        }
        let app_route = AppRoute {
            index: ServeFile::new(index),
        };
        let files = ServeDir::new(dir)
            .append_index_html_on_directories(true)
            .fallback(tower::service_fn(move |request| {
                let app_route = app_route.clone();
                async move { app_route.serve(request).await }
            }));
        let files = tower::service_fn(move |request: Request<Incoming>| {
            let files = files.clone();
            async move {
                let path = request.uri().path().to_owned();
                let response = match files.oneshot(request).await {
                    Ok(response) => response.map(Body::new),
                    Err(err) => {
                        tracing::warn!(error = %err, %path, "cannot read a web app file");
                        status(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                };
                Ok::<_, Infallible>(with_headers(&path, response))
            }
        });
        Ok(WebApp {
            files: BoxCloneService::new(files),
        })
    }

    /// What the files answer: GET and HEAD without a gRPC content type.
    pub fn wants(request: &Request<Incoming>) -> bool {
        let grpc = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        !grpc && (request.method() == Method::GET || request.method() == Method::HEAD)
    }
}

/// Requests the files answer go to `app`, every other one to `grpc` (when there is an app).
pub fn route(grpc: HttpService, app: Option<WebApp>) -> HttpService {
    let Some(app) = app else { return grpc };
    HttpService::new(tower::service_fn(move |request: Request<Incoming>| {
        let (grpc, app) = (grpc.clone(), app.clone());
        async move {
            if WebApp::wants(&request) {
                app.files.oneshot(request).await
            } else {
                grpc.oneshot(request).await
            }
        }
    }))
}

/// A path with no file: `index.html` for a route of the app (its last segment has no dot),
/// 404 for a missing file (`/assets/gone.js` must not turn into HTML).
#[derive(Clone)]
struct AppRoute {
    index: ServeFile,
}

impl AppRoute {
    async fn serve(self, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let last = request.uri().path().rsplit('/').next().unwrap_or_default();
        if last.contains('.') || request.uri().path().starts_with(HASHED_ASSETS) {
            return Ok(status(StatusCode::NOT_FOUND));
        }
        match self.index.oneshot(request).await {
            Ok(response) => Ok(response.map(Body::new)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the web app's index.html");
                Ok(status(StatusCode::INTERNAL_SERVER_ERROR))
            }
        }
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

fn with_headers(path: &str, mut response: Response<Body>) -> Response<Body> {
    let cache = if path.starts_with(HASHED_ASSETS) && response.status().is_success() {
        CACHE_HASHED
    } else {
        CACHE_REVALIDATE
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::CACHE_CONTROL, cache),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
