//! What a Send batch decides without the database: which sends repeat an idempotency key,
//! the rows the new ones store, their positions, and each send's answer. The store (`sql.rs`)
//! runs the SQL between these steps.

use std::{
    collections::{BTreeMap, HashSet, btree_map::Entry},
    ops::Range,
};

use switchboard::Error;
use uuid::Uuid;

use super::SendOutcome;
use crate::domain::{Audience, NewSend, Notification};

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
}

impl NewRows {
    /// One row per recipient of every send claimed [`Claim::New`] (one without recipient
    /// for a broadcast), each with a fresh id, unread, created at `now`.
    pub fn of(sends: &[NewSend], claims: &[Claim], now: i64) -> NewRows {
        let mut rows = NewRows {
            notifications: Vec::new(),
            owners: Vec::new(),
            spans: vec![0..0; sends.len()],
        };
        for (i, (send, claim)) in sends.iter().zip(claims).enumerate() {
            if !matches!(claim, Claim::New) {
                continue;
            }
            let recipients: Vec<Option<String>> = match &send.audience {
                Audience::Broadcast => vec![None],
                Audience::Recipients(ids) => ids.iter().cloned().map(Some).collect(),
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

    /// Each send's answer, in batch order: a new send its own rows, a repeat the rows of the
    /// send it repeats (committed earlier, or earlier in this batch).
    pub fn outcomes(&self, claims: Vec<Claim>) -> Result<Vec<SendOutcome>, Error> {
        let mut outcomes: Vec<SendOutcome> = Vec::with_capacity(claims.len());
        for (i, claim) in claims.into_iter().enumerate() {
            let outcome = match claim {
                Claim::New => SendOutcome {
                    notifications: self.notifications[self.spans[i].clone()].to_vec(),
                    created: true,
                },
                Claim::Committed(notifications) => SendOutcome {
                    notifications,
                    created: false,
                },
                // The first send of the key is earlier in the batch, so already answered.
                Claim::SameAs(first) => SendOutcome {
                    notifications: outcomes
                        .get(first)
                        .map(|earlier| earlier.notifications.clone())
                        .ok_or_else(|| {
                            Error::Internal(anyhow::anyhow!(
                                "send {i} repeats send {first}, which is not before it"
                            ))
                        })?,
                    created: false,
                },
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
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
        let rows = NewRows::of(&sends, &claims, 42);
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
        assert!(NewRows::of(&sends, &claims, 1).is_empty());
    }

    #[test]
    fn positions_follow_batch_order_and_end_at_the_head() {
        let sends = [send_to(&["u1", "u2"]), send_to(&["u3"])];
        let claims = ClaimPlan::of(&sends).claims;
        let mut rows = NewRows::of(&sends, &claims, 1);
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
            ..NewRows::of(&sends[1..2], &[Claim::New], 1).notifications[0].clone()
        };
        // (a, j) was committed by an earlier batch.
        claims[2] = Claim::Committed(vec![earlier]);
        let rows = NewRows::of(&sends, &claims, 1);
        let outcomes = rows.outcomes(claims).expect("every repeat points back");

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
        let rows = NewRows::of(&sends, &claims, 1);
        assert!(matches!(rows.outcomes(claims), Err(Error::Internal(_))));
    }
}
