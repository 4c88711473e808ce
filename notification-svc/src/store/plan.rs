//! What a Send batch decides without the database: which sends repeat an idempotency key,
//! whose mutes matter, the rows the new ones store (skipping muted recipients), their
//! positions, and each send's answer. The store (`sql.rs`) runs the SQL between these steps.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, btree_map::Entry},
    ops::Range,
};

use switchboard::Error;
use uuid::Uuid;

use super::SendOutcome;
use crate::{
    domain::{Audience, NewSend, Notification},
    preferences,
};

/// The mutes in force for a batch's recipients: each user's muted categories among
/// [`MuteLookup::categories`] (users with none are absent).
pub type Mutes = HashMap<String, Vec<String>>;

/// The one mute lookup of a batch: the recipients of its new sends that mutes apply to (not
/// critical; broadcasts are stored whatever the mutes), and every category whose mute would
/// cover one of those sends (see [`preferences::covering_categories`]). Both sorted, no
/// repeats; empty when no send can be muted.
#[derive(Debug, PartialEq, Eq)]
pub struct MuteLookup {
    pub users: Vec<String>,
    pub categories: Vec<String>,
}

impl MuteLookup {
    pub fn of(sends: &[NewSend], claims: &[Claim]) -> MuteLookup {
        let mut users = BTreeSet::new();
        let mut categories = BTreeSet::new();
        for (send, claim) in sends.iter().zip(claims) {
            let Audience::Recipients(ids) = &send.audience else {
                continue;
            };
            if send.critical || !matches!(claim, Claim::New) {
                continue;
            }
            users.extend(ids.iter().map(String::as_str));
            categories.extend(preferences::covering_categories(&send.category));
        }
        MuteLookup {
            users: users.into_iter().map(str::to_owned).collect(),
            categories: categories.into_iter().map(str::to_owned).collect(),
        }
    }
}

/// Where a send of a batch stands once idempotency keys are sorted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Stored as a new send (its key, if any, is claimed for it).
    New,
    /// Its key belongs to a send committed earlier: that send's notifications.
    Committed(Vec<Notification>),
    /// Same caller and key as the send at this (earlier) index of the batch: it gets that
    /// send's notifications, which are not in the database yet when the key is looked at.
    SameAs(usize),
}

/// The idempotency work of a batch, before the database is asked anything.
#[derive(Debug, PartialEq, Eq)]
pub struct ClaimPlan {
    /// One per send: `SameAs` for a repeat of a key earlier in the batch, else `New` (until
    /// the database says the key was taken before).
    pub claims: Vec<Claim>,
    /// The first send of each distinct (caller, key), sorted by (caller, key): the order
    /// every batch claims keys in.
    pub keyed: Vec<usize>,
}

impl ClaimPlan {
    pub fn of(sends: &[NewSend]) -> ClaimPlan {
        let mut first: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let claims = sends
            .iter()
            .enumerate()
            .map(|(i, send)| match &send.idempotency_key {
                None => Claim::New,
                Some(key) => match first.entry((send.caller_id.as_str(), key.as_str())) {
                    Entry::Occupied(earlier) => Claim::SameAs(*earlier.get()),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        Claim::New
                    }
                },
            })
            .collect();
        ClaimPlan {
            claims,
            keyed: first.into_values().collect(),
        }
    }

    /// The keyed sends whose (caller, key) is not among those this batch `claimed`: a send
    /// committed earlier holds the key. Each as (index, caller, key), in claim order.
    pub fn taken_before<'a>(
        &self,
        sends: &'a [NewSend],
        claimed: &HashSet<(String, String)>,
    ) -> Vec<(usize, &'a str, &'a str)> {
        self.keyed
            .iter()
            .filter_map(|&i| {
                let send = &sends[i];
                let key = send.idempotency_key.as_deref()?;
                let taken = !claimed.contains(&(send.caller_id.clone(), key.to_owned()));
                taken.then_some((i, send.caller_id.as_str(), key))
            })
            .collect()
    }
}

/// The notifications of a batch's new sends, in batch order: what the batch inserts.
#[derive(Debug)]
pub struct NewRows {
    /// Every row; `seq` is 0 until [`NewRows::position_up_to`].
    pub notifications: Vec<Notification>,
    /// The index in the batch of each row's send.
    pub owners: Vec<usize>,
    /// Each send's rows (empty unless it is new).
    spans: Vec<Range<usize>>,
    /// Each new send's recipients skipped because they muted its category.
    muted: Vec<Vec<String>>,
}

impl NewRows {
    /// One row per recipient of every send claimed [`Claim::New`] (one without recipient
    /// for a broadcast), each with a fresh id, unread, created at `now`; a recipient whose
    /// `mutes` cover the category gets none, unless the send is critical.
    pub fn of(sends: &[NewSend], claims: &[Claim], mutes: &Mutes, now: i64) -> NewRows {
        let mut rows = NewRows {
            notifications: Vec::new(),
            owners: Vec::new(),
            spans: vec![0..0; sends.len()],
            muted: vec![Vec::new(); sends.len()],
        };
        for (i, (send, claim)) in sends.iter().zip(claims).enumerate() {
            if !matches!(claim, Claim::New) {
                continue;
            }
            let recipients: Vec<Option<String>> = match &send.audience {
                Audience::Broadcast => vec![None],
                Audience::Recipients(ids) => {
                    let (muted, notified): (Vec<String>, Vec<String>) =
                        ids.iter().cloned().partition(|id| {
                            !send.critical
                                && mutes.get(id).is_some_and(|muted| {
                                    preferences::is_muted(&send.category, muted)
                                })
                        });
                    rows.muted[i] = muted;
                    notified.into_iter().map(Some).collect()
                }
            };
            let start = rows.notifications.len();
            for recipient_id in recipients {
                rows.notifications.push(Notification {
                    id: Uuid::now_v7().to_string(),
                    category: send.category.clone(),
                    content: send.content.clone(),
                    link: send.link.clone(),
                    sender_id: send.sender_id.clone(),
                    recipient_id,
                    created_at: now,
                    read_at: None,
                    seen_at: None,
                    archived_at: None,
                    snoozed_until: None,
                    seq: 0,
                    data: send.data.clone(),
                    critical: send.critical,
                });
                rows.owners.push(i);
            }
            rows.spans[i] = start..rows.notifications.len();
        }
        rows
    }

    pub fn len(&self) -> usize {
        self.notifications.len()
    }

    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty()
    }

    /// Numbers the rows in batch order, the last at `head`: the log's head after one bump
    /// by [`NewRows::len`].
    pub fn position_up_to(&mut self, head: i64) {
        let first = head - self.len() as i64 + 1;
        for (notification, seq) in self.notifications.iter_mut().zip(first..) {
            notification.seq = seq;
        }
    }

    /// Each send's answer, in batch order: a new send its own rows and the recipients it
    /// skipped, a repeat the rows of the send it repeats (committed earlier, or earlier in
    /// this batch) and the recipients those rows leave out ([`skipped_by`]).
    pub fn outcomes(
        &self,
        sends: &[NewSend],
        claims: Vec<Claim>,
    ) -> Result<Vec<SendOutcome>, Error> {
        let mut outcomes: Vec<SendOutcome> = Vec::with_capacity(claims.len());
        for (i, (send, claim)) in sends.iter().zip(claims).enumerate() {
            let outcome = match claim {
                Claim::New => SendOutcome {
                    notifications: self.notifications[self.spans[i].clone()].to_vec(),
                    muted_recipient_ids: self.muted[i].clone(),
                    created: true,
                },
                Claim::Committed(notifications) => SendOutcome {
                    muted_recipient_ids: skipped_by(send, &notifications),
                    notifications,
                    created: false,
                },
                // The first send of the key is earlier in the batch, so already answered.
                Claim::SameAs(first) => {
                    let notifications = outcomes
                        .get(first)
                        .map(|earlier| earlier.notifications.clone())
                        .ok_or_else(|| {
                            Error::Internal(anyhow::anyhow!(
                                "send {i} repeats send {first}, which is not before it"
                            ))
                        })?;
                    SendOutcome {
                        muted_recipient_ids: skipped_by(send, &notifications),
                        notifications,
                        created: false,
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

/// What a repeat of `send` reports as muted: its recipients the original stored nothing for
/// (`original`: the original's rows), in request order. The original stored a row for each of
/// its recipients but the muted ones, and a Send's rows stay together (retention prunes them
/// with its key, at the same age), so a retry of the same request gets exactly the original's
/// list, whatever the mutes are by the time it comes. A broadcast skips nobody.
fn skipped_by(send: &NewSend, original: &[Notification]) -> Vec<String> {
    let Audience::Recipients(ids) = &send.audience else {
        return Vec::new();
    };
    if original.iter().any(Notification::is_broadcast) {
        return Vec::new();
    }
    let stored: HashSet<&str> = original
        .iter()
        .filter_map(|n| n.recipient_id.as_deref())
        .collect();
    ids.iter()
        .filter(|id| !stored.contains(id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(caller: &str, key: Option<&str>) -> NewSend {
        NewSend {
            caller_id: caller.into(),
            audience: Audience::Broadcast,
            category: "test".into(),
            content: "x".into(),
            link: String::new(),
            sender_id: caller.into(),
            idempotency_key: key.map(Into::into),
            data: None,
            critical: false,
        }
    }

    fn mutes(entries: &[(&str, &[&str])]) -> Mutes {
        entries
            .iter()
            .map(|(user, muted)| {
                (
                    user.to_string(),
                    muted.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect()
    }

    fn in_category(category: &str, send: NewSend) -> NewSend {
        NewSend {
            category: category.into(),
            ..send
        }
    }

    fn send_to(recipients: &[&str]) -> NewSend {
        NewSend {
            audience: Audience::Recipients(recipients.iter().map(|r| r.to_string()).collect()),
            ..send("service", None)
        }
    }

    fn ids(notifications: &[Notification]) -> Vec<&str> {
        notifications.iter().map(|n| n.id.as_str()).collect()
    }

    #[test]
    fn repeats_inside_a_batch_point_at_the_first_send_of_their_key() {
        let plan = ClaimPlan::of(&[
            send("b", Some("k")),
            send("a", Some("k")),
            send("b", None),
            send("b", Some("k")),
            send("a", Some("j")),
            send("b", None),
            send("a", Some("k")),
        ]);
        use Claim::*;
        assert_eq!(plan.claims, [New, New, New, SameAs(0), New, New, SameAs(1)]);
        // (a, j), (a, k), (b, k): the one claim order of every batch.
        assert_eq!(plan.keyed, [4, 1, 0]);
    }

    #[test]
    fn keys_the_batch_did_not_claim_were_taken_before_in_claim_order() {
        let sends = [
            send("b", Some("k")),
            send("a", Some("k")),
            send("a", None),
            send("a", Some("j")),
        ];
        let plan = ClaimPlan::of(&sends);
        let claimed = HashSet::from([("a".to_owned(), "k".to_owned())]);
        assert_eq!(
            plan.taken_before(&sends, &claimed),
            [(3, "a", "j"), (0, "b", "k")]
        );
        let all = HashSet::from([
            ("a".to_owned(), "j".to_owned()),
            ("a".to_owned(), "k".to_owned()),
            ("b".to_owned(), "k".to_owned()),
        ]);
        assert!(plan.taken_before(&sends, &all).is_empty());
    }

    #[test]
    fn new_sends_get_one_unread_row_per_recipient_and_a_broadcast_one_row() {
        let sends = [
            send_to(&["u1", "u2"]),
            send("a", Some("k")),
            send_to(&["u3"]),
            send("a", Some("k")),
        ];
        let claims = ClaimPlan::of(&sends).claims;
        let rows = NewRows::of(&sends, &claims, &Mutes::new(), 42);
        let recipients: Vec<Option<&str>> = rows
            .notifications
            .iter()
            .map(|n| n.recipient_id.as_deref())
            .collect();
        assert_eq!(recipients, [Some("u1"), Some("u2"), None, Some("u3")]);
        assert_eq!(rows.owners, [0, 0, 1, 2], "the repeat (3) stores nothing");
        assert_eq!(rows.len(), 4);
        for n in &rows.notifications {
            assert_eq!((n.created_at, n.read_at, n.seq), (42, None, 0));
            assert_eq!((n.category.as_str(), n.content.as_str()), ("test", "x"));
        }
        let mut distinct = ids(&rows.notifications);
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "every row has its own id");
    }

    #[test]
    fn a_batch_that_only_repeats_stores_no_row() {
        let sends = [send("a", Some("k"))];
        let claims = vec![Claim::Committed(Vec::new())];
        assert!(NewRows::of(&sends, &claims, &Mutes::new(), 1).is_empty());
    }

    #[test]
    fn positions_follow_batch_order_and_end_at_the_head() {
        let sends = [send_to(&["u1", "u2"]), send_to(&["u3"])];
        let claims = ClaimPlan::of(&sends).claims;
        let mut rows = NewRows::of(&sends, &claims, &Mutes::new(), 1);
        rows.position_up_to(10);
        let seqs: Vec<i64> = rows.notifications.iter().map(|n| n.seq).collect();
        assert_eq!(seqs, [8, 9, 10]);
    }

    #[test]
    fn each_send_is_answered_with_its_own_rows_or_those_it_repeats() {
        let sends = [
            send_to(&["u1", "u2"]),
            send("a", Some("k")),
            send("a", Some("j")),
            send("a", Some("k")),
            send("a", Some("j")),
        ];
        let mut claims = ClaimPlan::of(&sends).claims;
        let earlier = Notification {
            id: "earlier".into(),
            ..NewRows::of(&sends[1..2], &[Claim::New], &Mutes::new(), 1).notifications[0].clone()
        };
        // (a, j) was committed by an earlier batch.
        claims[2] = Claim::Committed(vec![earlier]);
        let rows = NewRows::of(&sends, &claims, &Mutes::new(), 1);
        let outcomes = rows
            .outcomes(&sends, claims)
            .expect("every repeat points back");

        let created: Vec<bool> = outcomes.iter().map(|o| o.created).collect();
        assert_eq!(created, [true, true, false, false, false]);
        let answers: Vec<Vec<&str>> = outcomes.iter().map(|o| ids(&o.notifications)).collect();
        let new = ids(&rows.notifications);
        assert_eq!(answers[0], new[0..2]);
        assert_eq!(answers[1], new[2..3]);
        assert_eq!(answers[2], ["earlier"]);
        assert_eq!(answers[3], answers[1], "a repeat inside the batch");
        assert_eq!(answers[4], ["earlier"], "a repeat of a committed repeat");
    }

    #[test]
    fn a_repeat_that_points_forward_is_an_internal_error() {
        let sends = [send("a", None), send("a", None)];
        let claims = vec![Claim::SameAs(1), Claim::New];
        let rows = NewRows::of(&sends, &claims, &Mutes::new(), 1);
        assert!(matches!(
            rows.outcomes(&sends, claims),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn the_mute_lookup_covers_the_new_sends_that_mutes_apply_to() {
        let critical = NewSend {
            critical: true,
            ..in_category("page", send_to(&["zed"]))
        };
        let sends = [
            in_category("build.ci.nightly", send_to(&["u2", "u1"])),
            in_category("chat", send_to(&["u1", "u3"])),
            critical,
            in_category("news", send("a", None)),
            in_category(
                "task",
                NewSend {
                    idempotency_key: Some("k".into()),
                    ..send_to(&["u4"])
                },
            ),
        ];
        let mut claims = ClaimPlan::of(&sends).claims;
        claims[4] = Claim::Committed(Vec::new());
        assert_eq!(
            MuteLookup::of(&sends, &claims),
            MuteLookup {
                users: ["u1", "u2", "u3"].map(String::from).into(),
                categories: ["build", "build.ci", "build.ci.nightly", "chat"]
                    .map(String::from)
                    .into(),
            },
            "not the critical send, the broadcast or the repeat"
        );
        assert_eq!(
            MuteLookup::of(&sends[2..4], &claims[2..4]),
            MuteLookup {
                users: Vec::new(),
                categories: Vec::new()
            }
        );
    }

    #[test]
    fn muted_recipients_get_no_row_unless_the_send_is_critical() {
        let sends = [
            in_category("build.ci", send_to(&["u1", "u2", "u3"])),
            NewSend {
                critical: true,
                ..in_category("build.ci", send_to(&["u1", "u2"]))
            },
            in_category("build", send("a", None)),
            in_category("buildx", send_to(&["u1"])),
            in_category("build", send_to(&["u2"])),
        ];
        let claims = ClaimPlan::of(&sends).claims;
        let muted = mutes(&[("u1", &["build"]), ("u2", &["build.ci", "chat"])]);
        let rows = NewRows::of(&sends, &claims, &muted, 1);
        let recipients: Vec<Option<&str>> = rows
            .notifications
            .iter()
            .map(|n| n.recipient_id.as_deref())
            .collect();
        assert_eq!(
            recipients,
            [
                Some("u3"),
                Some("u1"),
                Some("u2"),
                None,
                Some("u1"),
                Some("u2")
            ]
        );
        assert_eq!(rows.owners, [0, 1, 1, 2, 3, 4]);
        let outcomes = rows.outcomes(&sends, claims).expect("outcomes");
        let skipped: Vec<Vec<&str>> = outcomes
            .iter()
            .map(|o| o.muted_recipient_ids.iter().map(String::as_str).collect())
            .collect();
        let none: Vec<&str> = Vec::new();
        assert_eq!(
            skipped,
            [
                vec!["u1", "u2"],
                none.clone(),
                none.clone(),
                none.clone(),
                none
            ],
            "u2 muted build.ci, which build is not under"
        );
    }

    #[test]
    fn a_send_whose_every_recipient_muted_stores_nothing_and_says_who() {
        let sends = [in_category("chat", send_to(&["u1", "u2"]))];
        let claims = ClaimPlan::of(&sends).claims;
        let rows = NewRows::of(
            &sends,
            &claims,
            &mutes(&[("u1", &["chat"]), ("u2", &["chat"])]),
            1,
        );
        assert!(rows.is_empty());
        let outcomes = rows.outcomes(&sends, claims).expect("outcomes");
        assert!(outcomes[0].notifications.is_empty() && outcomes[0].created);
        assert_eq!(outcomes[0].muted_recipient_ids, ["u1", "u2"]);
    }

    #[test]
    fn a_repeat_reports_who_the_original_stored_nothing_for() {
        let keyed = |recipients: &[&str]| NewSend {
            idempotency_key: Some("k".into()),
            ..in_category("chat", send_to(recipients))
        };
        let sends = [keyed(&["u1", "u2", "u3"]), keyed(&["u1", "u2", "u3"])];
        let claims = ClaimPlan::of(&sends).claims;
        assert_eq!(claims[1], Claim::SameAs(0));
        let rows = NewRows::of(&sends, &claims, &mutes(&[("u2", &["chat"])]), 1);
        let outcomes = rows.outcomes(&sends, claims).expect("outcomes");
        assert_eq!(outcomes[0].muted_recipient_ids, ["u2"]);
        assert_eq!(
            outcomes[1].muted_recipient_ids,
            ["u2"],
            "a repeat in the batch"
        );
        assert_eq!(
            ids(&outcomes[1].notifications),
            ids(&outcomes[0].notifications)
        );

        // Committed earlier: the same answer, with no mute in force now.
        let original = outcomes[0].notifications.clone();
        let later = [keyed(&["u1", "u2", "u3"])];
        let rows = NewRows::of(
            &later,
            &[Claim::Committed(original.clone())],
            &Mutes::new(),
            2,
        );
        let repeat = rows
            .outcomes(&later, vec![Claim::Committed(original)])
            .expect("outcomes");
        assert_eq!(repeat[0].muted_recipient_ids, ["u2"]);
        assert!(!repeat[0].created);

        // A repeat of a Send that stored nothing at all.
        let rows = NewRows::of(&later, &[Claim::Committed(Vec::new())], &Mutes::new(), 2);
        let repeat = rows
            .outcomes(&later, vec![Claim::Committed(Vec::new())])
            .expect("outcomes");
        assert_eq!(repeat[0].muted_recipient_ids, ["u1", "u2", "u3"]);
    }
}
