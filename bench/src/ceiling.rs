//! The ceiling: the notification contract served by a service that does nothing.
//!
//! Same messages, same codec, same server limits as notification-svc, no identity check, no
//! database: what tonic, HTTP/2 and this machine can do at most, measured by the same
//! generator in the same run, so every other figure can be read as a share of it.

use std::{net::SocketAddr, pin::Pin};

use clap::Parser;
use futures::Stream;
use switchboard::proto::notification::v1::{
    self as pb,
    notification_service_server::{NotificationService, NotificationServiceServer},
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

#[derive(Debug, Parser)]
#[command(name = "ceiling")]
pub struct Config {
    #[arg(long)]
    pub listen: SocketAddr,
}

pub struct Ceiling;

#[tonic::async_trait]
impl NotificationService for Ceiling {
    async fn send(
        &self,
        _: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        Ok(Response::new(pb::SendResponse::default()))
    }

    async fn list(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        Ok(Response::new(pb::ListResponse::default()))
    }

    async fn mark_read(
        &self,
        _: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        Ok(Response::new(pb::MarkReadResponse::default()))
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        _: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("the ceiling serves unary calls only"))
    }

    async fn mark_seen(
        &self,
        _: Request<pb::MarkSeenRequest>,
    ) -> Result<Response<pb::MarkSeenResponse>, Status> {
        Ok(Response::new(pb::MarkSeenResponse::default()))
    }

    async fn mark_unread(
        &self,
        _: Request<pb::MarkUnreadRequest>,
    ) -> Result<Response<pb::MarkUnreadResponse>, Status> {
        Ok(Response::new(pb::MarkUnreadResponse::default()))
    }

    async fn archive(
        &self,
        _: Request<pb::ArchiveRequest>,
    ) -> Result<Response<pb::ArchiveResponse>, Status> {
        Ok(Response::new(pb::ArchiveResponse::default()))
    }

    async fn unarchive(
        &self,
        _: Request<pb::UnarchiveRequest>,
    ) -> Result<Response<pb::UnarchiveResponse>, Status> {
        Ok(Response::new(pb::UnarchiveResponse::default()))
    }

    async fn snooze(
        &self,
        _: Request<pb::SnoozeRequest>,
    ) -> Result<Response<pb::SnoozeResponse>, Status> {
        Ok(Response::new(pb::SnoozeResponse::default()))
    }

    async fn unsnooze(
        &self,
        _: Request<pb::UnsnoozeRequest>,
    ) -> Result<Response<pb::UnsnoozeResponse>, Status> {
        Ok(Response::new(pb::UnsnoozeResponse::default()))
    }

    async fn get_preferences(
        &self,
        _: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        Ok(Response::new(pb::GetPreferencesResponse::default()))
    }

    async fn update_preferences(
        &self,
        _: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::UpdatePreferencesResponse>, Status> {
        Ok(Response::new(pb::UpdatePreferencesResponse::default()))
    }
}

/// Serves the empty service (and health, so start-up can be awaited like the others, and
/// so a gateway in front of it keeps it in its balance as it does a real notification-svc).
pub async fn serve(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_serving::<NotificationServiceServer<Ceiling>>()
        .await;
    switchboard::grpc::server_builder()
        .add_service(health)
        .add_service(NotificationServiceServer::new(Ceiling))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
