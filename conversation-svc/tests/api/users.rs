use switchboard::proto::conversation::v1 as pb;

use crate::helpers::*;

async fn a_username_moved_to_another_id_follows_the_newest_claim(backend: Backend) {
    let app = spawn_app(backend).await;
    // "sam" first belongs to id-sam...
    app.sign_in(&["sam"]).await;
    // ...then the identity provider gives it (in another case) to a new account.
    let mut new_sam = person("SAM");
    new_sam.user_id = "id-sam-2".into();
    app.as_caller(new_sam)
        .list(pb::ListRequest::default())
        .await
        .unwrap();

    let response = create(&mut app.user("alice"), "sam").await;
    assert_eq!(
        response.conversation.unwrap().other_participant.unwrap().id,
        "id-sam-2"
    );

    // The old account can take a new name and be found by it; the store stays consistent.
    let mut old_sam = person("samuel");
    old_sam.user_id = "id-sam".into();
    app.as_caller(old_sam)
        .list(pb::ListRequest::default())
        .await
        .unwrap();
    let response = create(&mut app.user("alice"), "samuel").await;
    assert_eq!(
        response.conversation.unwrap().other_participant.unwrap().id,
        "id-sam"
    );
}

async fn profile_changes_show_up_for_the_other_participant(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let id = conversation_with(&mut app.user("alice"), "bob").await.id;
    let mut renamed = person("robert");
    renamed.user_id = "id-bob".into();
    renamed.avatar_url = "https://avatars.example/new.png".into();
    app.as_caller(renamed)
        .list(pb::ListRequest::default())
        .await
        .unwrap();
    let other = get(&mut app.user("alice"), &id)
        .await
        .other_participant
        .unwrap();
    assert_eq!(other.username, "robert");
    assert_eq!(other.avatar_url, "https://avatars.example/new.png");
    assert_not_found(
        app.user("alice")
            .create(pb::CreateRequest {
                username: "bob".into(),
            })
            .await,
    );
}

async fn concurrent_claims_of_one_username_all_succeed(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut claimant = person("popular");
        claimant.user_id = format!("id-popular-{i}");
        let mut client = app.as_caller(claimant);
        tasks.push(tokio::spawn(async move {
            client.list(pb::ListRequest::default()).await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every claim succeeds");
    }
    let response = create(&mut app.user("alice"), "popular").await;
    let holder = response.conversation.unwrap().other_participant.unwrap();
    assert!(holder.id.starts_with("id-popular-"), "{holder:?}");
}

async fn an_unchanged_caller_is_not_written_again(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["alice"]).await;
    let first = app.user_updated_at("id-alice").await;
    for _ in 0..3 {
        app.sign_in(&["alice"]).await;
    }
    assert_eq!(
        app.user_updated_at("id-alice").await,
        first,
        "no write when nothing changed"
    );
    let mut new_avatar = person("alice");
    new_avatar.avatar_url = "https://avatars.example/alice-2.png".into();
    app.as_caller(new_avatar)
        .list(pb::ListRequest::default())
        .await
        .unwrap();
    assert!(
        app.user_updated_at("id-alice").await > first,
        "a change is written"
    );
}

switchboard::both_backends!(
    an_unchanged_caller_is_not_written_again,
    concurrent_claims_of_one_username_all_succeed,
    a_username_moved_to_another_id_follows_the_newest_claim,
    profile_changes_show_up_for_the_other_participant,
);
