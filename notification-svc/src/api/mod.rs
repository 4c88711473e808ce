//! The tonic service: decode, validate, call the store or a group committer, encode.

/// Protobuf <-> domain conversion at the edge (public for the fuzz target).
pub mod convert;
mod struct_json;
mod subscribe;

pub use subscribe::StreamStats;
use subscribe::SubscribeStream;

use std::{sync::Arc, time::Duration};

use switchboard::{
    Caller, Error,
    proto::notification::v1::{self as pb, notification_service_server::NotificationService},
    time::now_micros,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    domain::{Change, NewMark, Selection},
    feed::Feed,
    group_commit::{Committer, Marks, Sends},
    hub::Hub,
    metrics::ServiceMetrics,
    store::NotificationStore,
    waker::WakeUp,
};

/// Shared state of every call.
#[derive(Clone)]
pub struct NotificationApi {
    store: Arc<dyn NotificationStore>,
    /// Sends and MarkReads go through their group committers (which also wake the feed),
    /// never straight to the store.
    sends: Committer<Sends>,
    marks: Committer<Marks>,
    hub: Arc<Hub>,
    /// Poked after an UpdatePreferences, which logs a state event the committers do not see.
    feed: Feed,
    /// Poked after a Snooze or an UpdatePreferences, so the waker sees the new due time.
    wake_up: WakeUp,
    streams: Arc<StreamStats>,
    metrics: Arc<ServiceMetrics>,
    heartbeat_interval: Duration,
    /// How long notifications are kept; an older `resume_after` is refused as such.
    retention: Duration,
    /// Cancelled at shutdown: every Subscribe stream then ends with UNAVAILABLE.
    shutdown: CancellationToken,
}

impl NotificationApi {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        (sends, marks): (Committer<Sends>, Committer<Marks>),
        (hub, feed, wake_up, streams): (Arc<Hub>, Feed, WakeUp, Arc<StreamStats>),
        metrics: Arc<ServiceMetrics>,
        heartbeat_interval: Duration,
        retention: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            sends,
            marks,
            hub,
            feed,
            wake_up,
            streams,
            metrics,
            heartbeat_interval,
            retention,
            shutdown,
        }
    }
}

impl NotificationApi {
    /// Applies a state change for the caller through the committer: how many notifications
    /// changed, and the caller's counts afterwards.
    async fn change(
        &self,
        caller: Caller,
        change: Change,
        selection: Selection,
    ) -> Result<(i64, pb::Counts), Error> {
        let marked = self
            .marks
            .submit(NewMark {
                user_id: caller.user_id,
                change,
                selection,
            })
            .await?;
        Ok((marked.count, convert::counts(&marked.counts)))
    }

    /// The log position of `resume_after`. A notification past the retention horizon is
    /// refused as such (OUT_OF_RANGE: re-list, then subscribe without `resume_after`), never
    /// answered with a silent partial replay; an id the caller cannot see is refused as
    /// unknown.
    async fn resume_position(&self, user_id: &str, id: &str) -> Result<i64, Error> {
        if let Some(seq) = self.store.seq_of(user_id, id).await? {
            return Ok(seq);
        }
        let minted_ms = uuid::Uuid::parse_str(id)
            .ok()
            .and_then(|u| u.get_timestamp())
            .map(|ts| {
                let (secs, nanos) = ts.to_unix();
                secs as i64 * 1000 + i64::from(nanos / 1_000_000)
            });
        let horizon_ms = (now_micros() - self.retention.as_micros() as i64) / 1000;
        match minted_ms {
            Some(ms) if ms < horizon_ms => Err(Error::OutOfRange(format!(
                "resume_after is older than the retained history ({}); list to resynchronise, \
                 then subscribe without resume_after",
                humantime::format_duration(self.retention)
            ))),
            _ => Err(Error::invalid("resume_after", "unknown notification")),
        }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let send = convert::send(&caller, request.into_inner())?;
        let sent = self.sends.submit(send).await?;
        if sent.created {
            self.metrics.stored(&sent.notifications);
        }
        let notifications = sent
            .notifications
            .iter()
            .map(convert::notification)
            .collect();
        Ok(Response::new(pb::SendResponse {
            notifications,
            muted_recipient_ids: sent.muted_recipient_ids,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let list = convert::list(&caller, request.get_ref())?;
        let page = self.store.list(&caller.user_id, &list.query).await?;
        let (notifications, next_page_token) =
            list.paging.cut(page.notifications, |last| last.id.clone());
        Ok(Response::new(pb::ListResponse {
            notifications: notifications.iter().map(convert::notification).collect(),
            next_page_token,
            total_unread: page.counts.total_unread(),
            unread_by_category: page.counts.unread.clone().into_iter().collect(),
            counts: Some(convert::counts(&page.counts)),
        }))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let selection = convert::mark_read(request.into_inner())?;
        let (marked, counts) = self.change(caller, Change::Read, selection).await?;
        Ok(Response::new(pb::MarkReadResponse {
            marked,
            total_unread: counts.unread,
            counts: Some(counts),
        }))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let params = convert::subscribe(request.into_inner())?;
        // Register before looking anything up, so nothing committed meanwhile is missed.
        let subscription = self.hub.subscribe(&caller.user_id)?;
        // Without resume_after the stream starts at the log's current head: what committed
        // before the call is history (List), what commits after is delivered.
        let (watermark, replay) = match &params.resume_after {
            None => (self.store.heads().await?.0, false),
            Some(id) => (self.resume_position(&caller.user_id, id).await?, true),
        };
        let stream = subscribe::start(
            self.store.clone(),
            subscribe::Start {
                subscription,
                watermark,
                replay,
                user_id: caller.user_id,
                categories: params.categories,
                stats: self.streams.clone(),
                metrics: self.metrics.clone(),
            },
            self.heartbeat_interval,
            self.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }

    async fn mark_seen(
        &self,
        request: Request<pb::MarkSeenRequest>,
    ) -> Result<Response<pb::MarkSeenResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let selection = convert::selection(request.into_inner().selection)?;
        let (changed, counts) = self.change(caller, Change::Seen, selection).await?;
        Ok(Response::new(pb::MarkSeenResponse {
            changed,
            counts: Some(counts),
        }))
    }

    async fn mark_unread(
        &self,
        request: Request<pb::MarkUnreadRequest>,
    ) -> Result<Response<pb::MarkUnreadResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let selection = convert::selection(request.into_inner().selection)?;
        let (changed, counts) = self.change(caller, Change::Unread, selection).await?;
        Ok(Response::new(pb::MarkUnreadResponse {
            changed,
            counts: Some(counts),
        }))
    }

    async fn archive(
        &self,
        request: Request<pb::ArchiveRequest>,
    ) -> Result<Response<pb::ArchiveResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let selection = convert::selection(request.into_inner().selection)?;
        let (changed, counts) = self.change(caller, Change::Archive, selection).await?;
        Ok(Response::new(pb::ArchiveResponse {
            changed,
            counts: Some(counts),
        }))
    }

    async fn unarchive(
        &self,
        request: Request<pb::UnarchiveRequest>,
    ) -> Result<Response<pb::UnarchiveResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let selection = convert::selection(request.into_inner().selection)?;
        let (changed, counts) = self.change(caller, Change::Unarchive, selection).await?;
        Ok(Response::new(pb::UnarchiveResponse {
            changed,
            counts: Some(counts),
        }))
    }

    async fn snooze(
        &self,
        request: Request<pb::SnoozeRequest>,
    ) -> Result<Response<pb::SnoozeResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let retention = i64::try_from(self.retention.as_micros()).unwrap_or(i64::MAX);
        let (selection, until) = convert::snooze(request.into_inner(), now_micros(), retention)?;
        let (changed, counts) = self
            .change(caller, Change::Snooze { until }, selection)
            .await?;
        if changed > 0 {
            // A new due time, perhaps the next one.
            self.wake_up.poke();
        }
        Ok(Response::new(pb::SnoozeResponse {
            changed,
            counts: Some(counts),
        }))
    }

    async fn unsnooze(
        &self,
        request: Request<pb::UnsnoozeRequest>,
    ) -> Result<Response<pb::UnsnoozeResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let selection = convert::selection(request.into_inner().selection)?;
        let (changed, counts) = self.change(caller, Change::Unsnooze, selection).await?;
        Ok(Response::new(pb::UnsnoozeResponse {
            changed,
            counts: Some(counts),
        }))
    }

    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let mutes = self
            .store
            .preferences(&caller.user_id, now_micros())
            .await?;
        Ok(Response::new(pb::GetPreferencesResponse {
            preferences: Some(convert::preferences(&mutes)),
        }))
    }

    async fn update_preferences(
        &self,
        request: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::UpdatePreferencesResponse>, Status> {
        let caller = Caller::from_metadata(request.metadata())?;
        let now = now_micros();
        let mutes = convert::update_preferences(request.into_inner(), now)?;
        let stored = self
            .store
            .replace_preferences(&caller.user_id, &mutes, now)
            .await?;
        // The change's state event, and perhaps the next mute to end.
        self.feed.poke();
        self.wake_up.poke();
        Ok(Response::new(pb::UpdatePreferencesResponse {
            preferences: Some(convert::preferences(&stored)),
        }))
    }
}
