//! The per-person inbox model (issue 19): which notifications a state change selects, what it
//! changes, and the counts of what a person's inbox holds.
//!
//! A notification is in a person's inbox while it is neither archived nor snoozed (nor, for a
//! broadcast, hidden by a mute). The counts are of the inbox only, so archiving or snoozing
//! takes a notification out of them and unarchiving or waking puts it back.

use std::collections::BTreeMap;

/// Most ids one selection may list.
pub const MAX_SELECTION_IDS: usize = 1000;

/// The shortest snooze: `until` must be at least this far ahead (microseconds).
pub const MIN_SNOOZE_MICROS: i64 = 60_000_000;

/// Checks a Snooze's `until` (microseconds) against `now`: at least a minute ahead, at most
/// `retention` ahead (a notification is not kept longer than that).
pub fn snooze_until(until: i64, now: i64, retention: i64) -> Result<i64, String> {
    if until < now.saturating_add(MIN_SNOOZE_MICROS) {
        return Err("must be at least one minute ahead".into());
    }
    if until > now.saturating_add(retention) {
        return Err("must be at most the retention ahead".into());
    }
    Ok(until)
}

/// What a state change does to the selected notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Marks read, and seen (you cannot read what you have not seen).
    Read,
    Seen,
    /// Marks unread again; seen stays.
    Unread,
    Archive,
    Unarchive,
    /// Hides until `until` (microseconds), when the notification wakes. Archived ones are left
    /// alone.
    Snooze {
        until: i64,
    },
    /// Wakes snoozed notifications now.
    Unsnooze,
}

impl Change {
    /// What its state events say it was.
    pub fn kind(self) -> ChangeKind {
        match self {
            Change::Read => ChangeKind::Read,
            Change::Seen => ChangeKind::Seen,
            Change::Unread => ChangeKind::Unread,
            Change::Archive => ChangeKind::Archived,
            Change::Unarchive => ChangeKind::Unarchived,
            Change::Snooze { .. } => ChangeKind::Snoozed,
            Change::Unsnooze => ChangeKind::Unsnoozed,
        }
    }
}

/// What a state event reports: a change without its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Read,
    Seen,
    Unread,
    Archived,
    Unarchived,
    Snoozed,
    Unsnoozed,
    /// The person's preferences changed (an UpdatePreferences, or a timed mute ended): no
    /// notification's state did, but what their inbox shows may have. Streams re-read the
    /// preferences with the counts and send whichever differ.
    Preferences,
}

impl ChangeKind {
    const ALL: [ChangeKind; 8] = [
        ChangeKind::Read,
        ChangeKind::Seen,
        ChangeKind::Unread,
        ChangeKind::Archived,
        ChangeKind::Unarchived,
        ChangeKind::Snoozed,
        ChangeKind::Unsnoozed,
        ChangeKind::Preferences,
    ];

    /// Its name in the state-event log.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Read => "read",
            ChangeKind::Seen => "seen",
            ChangeKind::Unread => "unread",
            ChangeKind::Archived => "archived",
            ChangeKind::Unarchived => "unarchived",
            ChangeKind::Snoozed => "snoozed",
            ChangeKind::Unsnoozed => "unsnoozed",
            ChangeKind::Preferences => "preferences",
        }
    }

    pub fn parse(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// Which notifications a selection of `all` covers for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Not archived and not snoozed.
    Inbox,
    Archived,
    Snoozed,
}

impl Change {
    pub fn view(self) -> View {
        match self {
            Change::Unarchive => View::Archived,
            Change::Unsnooze => View::Snoozed,
            _ => View::Inbox,
        }
    }
}

/// One person's state of one notification, as the counters see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    pub read: bool,
    pub seen: bool,
    pub archived: bool,
    pub snoozed: bool,
}

impl State {
    pub fn in_inbox(self) -> bool {
        !self.archived && !self.snoozed
    }

    /// Whether it counts as unread in the inbox.
    pub fn counts_unread(self) -> bool {
        self.in_inbox() && !self.read
    }

    /// Whether it counts as unseen in the inbox.
    pub fn counts_unseen(self) -> bool {
        self.in_inbox() && !self.seen
    }
}

/// What a person's inbox holds, by category (categories at zero are left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub unread: BTreeMap<String, i64>,
    pub unseen: BTreeMap<String, i64>,
}

impl Counts {
    pub fn total_unread(&self) -> i64 {
        self.unread.values().sum()
    }

    pub fn total_unseen(&self) -> i64 {
        self.unseen.values().sum()
    }

    /// Adds a counter row's share (categories that end at zero are dropped by
    /// [`Counts::without_zeros`]).
    pub fn add(&mut self, category: &str, unread: i64, unseen: i64) {
        *self.unread.entry(category.to_owned()).or_default() += unread;
        *self.unseen.entry(category.to_owned()).or_default() += unseen;
    }

    pub fn without_zeros(mut self) -> Counts {
        self.unread.retain(|_, n| *n != 0);
        self.unseen.retain(|_, n| *n != 0);
        self
    }
}

/// Seen-state filter of List.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenFilter {
    All,
    Unseen,
    Seen,
}

/// Archive filter of List.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFilter {
    /// Not archived.
    Inbox,
    Archived,
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_kinds_round_trip_through_their_names() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ChangeKind::parse("nope"), None);
    }

    #[test]
    fn a_snooze_is_one_minute_to_the_retention_ahead() {
        let (now, retention) = (1_000_000_000, 90 * 86_400_000_000);
        assert!(snooze_until(now + MIN_SNOOZE_MICROS - 1, now, retention).is_err());
        assert!(snooze_until(now + MIN_SNOOZE_MICROS, now, retention).is_ok());
        assert!(snooze_until(now + retention, now, retention).is_ok());
        assert!(snooze_until(now + retention + 1, now, retention).is_err());
        assert!(snooze_until(now - 1, now, retention).is_err());
    }

    #[test]
    fn only_the_inbox_counts() {
        let unread = State::default();
        assert!(unread.counts_unread() && unread.counts_unseen());
        let archived = State {
            archived: true,
            ..unread
        };
        assert!(!archived.counts_unread() && !archived.counts_unseen());
        let seen = State {
            seen: true,
            ..unread
        };
        assert!(seen.counts_unread() && !seen.counts_unseen());
    }
}
