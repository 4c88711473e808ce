use switchboard::proto::notification::v1 as pb;
use tonic::{Code, Status};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

fn code<T>(result: Result<T, Status>) -> Code {
    result.map_or_else(|status| status.code(), |_| Code::Ok)
}

/// Calls every RPC with `client` (each with a valid request) and returns the codes.
async fn codes_of_every_rpc(client: &mut Client) -> Vec<Code> {
    let mark_all = pb::MarkReadRequest {
        all: true,
        ..Default::default()
    };
    let all = || {
        Some(pb::Selection {
            all: true,
            ..Default::default()
        })
    };
    let preferences = pb::UpdatePreferencesRequest {
        preferences: Some(pb::Preferences::default()),
    };
    vec![
        code(client.send(send_to(&["alice"], "x")).await),
        code(client.list(pb::ListRequest::default()).await),
        code(client.mark_read(mark_all).await),
        code(client.subscribe(pb::SubscribeRequest::default()).await),
        code(
            client
                .mark_seen(pb::MarkSeenRequest { selection: all() })
                .await,
        ),
        code(
            client
                .mark_unread(pb::MarkUnreadRequest { selection: all() })
                .await,
        ),
        code(
            client
                .archive(pb::ArchiveRequest { selection: all() })
                .await,
        ),
        code(
            client
                .unarchive(pb::UnarchiveRequest { selection: all() })
                .await,
        ),
        code(
            client
                .snooze(pb::SnoozeRequest {
                    selection: all(),
                    until: minutes_ahead(5),
                })
                .await,
        ),
        code(
            client
                .unsnooze(pb::UnsnoozeRequest { selection: all() })
                .await,
        ),
        code(client.get_preferences(pb::GetPreferencesRequest {}).await),
        code(client.update_preferences(preferences).await),
    ]
}

/// How many RPCs [`codes_of_every_rpc`] calls.
const RPCS: usize = 12;

async fn every_rpc_needs_the_internal_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = caller("alice", ALL_SCOPES);
    for token in [None, Some("wrong-token"), Some("")] {
        let codes = codes_of_every_rpc(&mut app.client_as(Some(alice.clone()), token)).await;
        assert_eq!(codes, [Code::Unauthenticated; RPCS], "token {token:?}");
    }
    assert!(
        list_all(&mut app.user("alice"))
            .await
            .notifications
            .is_empty()
    );
}

async fn a_valid_token_without_a_user_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let codes = codes_of_every_rpc(&mut app.client_as(None, Some(INTERNAL_TOKEN))).await;
    assert_eq!(codes, [Code::Unauthenticated; RPCS]);
}

async fn the_token_and_a_user_pass_every_rpc(backend: Backend) {
    let app = spawn_app(backend).await;
    let codes = codes_of_every_rpc(&mut app.user_with_scopes("alice", ALL_SCOPES)).await;
    assert_eq!(codes, [Code::Ok; RPCS]);
}

async fn health_needs_no_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", "switchboard.notification.v1.NotificationService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
}

switchboard::both_backends!(
    every_rpc_needs_the_internal_token,
    a_valid_token_without_a_user_is_unauthenticated,
    the_token_and_a_user_pass_every_rpc,
    health_needs_no_token,
);
