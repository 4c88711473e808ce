use switchboard::proto::conversation::v1::{
    self as pb, conversation_service_client::ConversationServiceClient,
};
use tonic::{Code, transport::Endpoint};

use crate::helpers::*;

async fn calls_without_the_internal_token_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let channel = Endpoint::from_shared(format!("http://{}", app.addr()))
        .unwrap()
        .connect_lazy();
    let mut client = ConversationServiceClient::new(channel);
    let status = client.list(pb::ListRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .create(pb::CreateRequest {
            username: "bob".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

switchboard::both_backends!(calls_without_the_internal_token_are_refused);
