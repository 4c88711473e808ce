//! gRPC-Web for browsers, translated in front of the routes by tonic-web's layer, so
//! authentication, identity rewriting, deadlines, rate limits and logging see an ordinary
//! gRPC request, and the proxy stays free of per-method code.
//!
//! tonic-web fits the transparent proxy: it decodes the request body (base64 for
//! `application/grpc-web-text`) into the gRPC frames the proxy forwards, passes each
//! response frame through as it arrives (HTTP/1.1 chunked: a Subscribe event reaches the
//! browser when it happens), and turns the trailers into the gRPC-Web trailer frame (flag
//! 0x80). A trailers-only answer (an error before any message) keeps its status in the
//! response headers, as the gRPC-Web protocol allows; CORS exposes them. An upstream that
//! fails mid-stream ends with UNAVAILABLE trailers (mended in `logging`), so with a trailer
//! frame. A browser that goes away drops the response body and with it the upstream stream.

use switchboard::observe::ObserveLayer;
use tonic::service::Routes;
use tonic_web::GrpcWebLayer;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;

use crate::{serving::HttpService, web::WebApp};

/// Every request of a connection: CORS first (a preflight is answered there, before any
/// authentication), then the web app's files for a GET or HEAD, else gRPC-Web translation;
/// gRPC over HTTP/2 passes through unchanged. `observe` sees every call as gRPC, so gRPC-Web
/// calls are traced and counted like the others.
pub fn service(
    routes: Routes,
    observe: ObserveLayer,
    cors: Option<CorsLayer>,
    app: Option<WebApp>,
) -> HttpService {
    let grpc = HttpService::new(
        ServiceBuilder::new()
            .layer(GrpcWebLayer::new())
            .layer(observe)
            .service(routes.prepare()),
    );
    HttpService::new(
        ServiceBuilder::new()
            .option_layer(cors)
            .service(crate::web::route(grpc, app)),
    )
}
