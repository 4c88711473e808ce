//! What a state change does to each row, decided without the database: the statements
//! ("steps") it runs, and how each row a step changed moves the inbox counters.
//!
//! Neither backend's `RETURNING` reports a row's values from before an `UPDATE`. So every
//! step pins, in its `WHERE`, the prior value of the one column it writes (and of any other
//! column it needs to know): the row it returns is the row after the change, and the row
//! before is that one with the written column put back to its pinned value. A change whose
//! prior values are not all pinned by one statement is split into several (MarkRead: first
//! the unseen rows are marked seen, then the seen ones read). Because the pins are
//! re-checked on the row as it is when the statement changes it, a concurrent writer can
//! never make a step count a change twice or count one that did not happen.

use crate::domain::{Change, State};

/// A per-person state column (on `notifications` for direct rows, on `broadcast_states` for
/// broadcasts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Read,
    Seen,
    Archived,
    Snoozed,
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Read => "read_at",
            Column::Seen => "seen_at",
            Column::Archived => "archived_at",
            Column::Snoozed => "snoozed_until",
        }
    }
}

/// What a step requires of a column's value before it changes a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    Unset,
    Set,
    /// Set, to something other than this (a Snooze moving to a new `until`).
    SetOtherThan(i64),
}

/// What a step writes into its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// The batch's time.
    Now,
    At(i64),
    Unset,
}

/// One statement of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub column: Column,
    pub value: Value,
    /// Every pinned column, the written one first.
    pub pins: Vec<(Column, Pin)>,
    /// Whether the rows it changes are what the change reports (MarkRead's marking seen is
    /// a side effect).
    pub reported: bool,
}

impl Step {
    fn new(column: Column, value: Value, pin: Pin) -> Step {
        Step {
            column,
            value,
            pins: vec![(column, pin)],
            reported: true,
        }
    }

    fn and(mut self, column: Column, pin: Pin) -> Step {
        self.pins.push((column, pin));
        self
    }

    fn side_effect(mut self) -> Step {
        self.reported = false;
        self
    }

    /// The row's state before this step changed it, from its state after.
    pub fn before(&self, after: State) -> State {
        let prior = self.pins[0].1 != Pin::Unset;
        let mut before = after;
        match self.column {
            Column::Read => before.read = prior,
            Column::Seen => before.seen = prior,
            Column::Archived => before.archived = prior,
            Column::Snoozed => before.snoozed = prior,
        }
        before
    }

    /// How a row this step changed moves the inbox's (unread, unseen) counts.
    pub fn deltas(&self, after: State) -> (i64, i64) {
        let before = self.before(after);
        (
            i64::from(after.counts_unread()) - i64::from(before.counts_unread()),
            i64::from(after.counts_unseen()) - i64::from(before.counts_unseen()),
        )
    }
}

/// The statements of a change, in the order they run.
pub fn steps(change: Change) -> Vec<Step> {
    use Column::*;
    match change {
        // Unseen implies unread (reading implies seen), so the read pin only lets the step use
        // the index of unread rows.
        Change::Seen => vec![Step::new(Seen, Value::Now, Pin::Unset).and(Read, Pin::Unset)],
        Change::Read => vec![
            Step::new(Seen, Value::Now, Pin::Unset)
                .and(Read, Pin::Unset)
                .side_effect(),
            Step::new(Read, Value::Now, Pin::Unset).and(Seen, Pin::Set),
        ],
        Change::Unread => vec![Step::new(Read, Value::Unset, Pin::Set)],
        Change::Archive => vec![Step::new(Archived, Value::Now, Pin::Unset)],
        Change::Unarchive => vec![Step::new(Archived, Value::Unset, Pin::Set)],
        Change::Snooze { until } => vec![
            Step::new(Snoozed, Value::At(until), Pin::Unset).and(Archived, Pin::Unset),
            Step::new(Snoozed, Value::At(until), Pin::SetOtherThan(until))
                .and(Archived, Pin::Unset),
        ],
        Change::Unsnooze => vec![Step::new(Snoozed, Value::Unset, Pin::Set)],
    }
}

/// The statement that wakes a snoozed notification when its `snoozed_until` is due (the same
/// as an Unsnooze, for the rows whose time came).
pub fn wake() -> Step {
    Step::new(Column::Snoozed, Value::Unset, Pin::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_state() -> Vec<State> {
        (0..16)
            .map(|bits| State {
                read: bits & 1 != 0,
                seen: bits & 2 != 0,
                archived: bits & 4 != 0,
                snoozed: bits & 8 != 0,
            })
            // Reading implies seen.
            .filter(|s| !s.read || s.seen)
            .collect()
    }

    /// What each change should do to a row, said plainly: the oracle the steps are checked
    /// against.
    fn expected(change: Change, s: State) -> State {
        match change {
            Change::Read => State {
                read: true,
                seen: true,
                ..s
            },
            Change::Seen => State { seen: true, ..s },
            Change::Unread => State { read: false, ..s },
            Change::Archive => State {
                archived: true,
                ..s
            },
            Change::Unarchive => State {
                archived: false,
                ..s
            },
            Change::Snooze { .. } if s.archived => s,
            Change::Snooze { .. } => State { snoozed: true, ..s },
            Change::Unsnooze => State {
                snoozed: false,
                ..s
            },
        }
    }

    fn holds(pin: Pin, set: bool) -> bool {
        match pin {
            Pin::Unset => !set,
            // A snooze's `until` differs from the new one in this test.
            Pin::Set | Pin::SetOtherThan(_) => set,
        }
    }

    fn value(s: State, column: Column) -> bool {
        match column {
            Column::Read => s.read,
            Column::Seen => s.seen,
            Column::Archived => s.archived,
            Column::Snoozed => s.snoozed,
        }
    }

    fn apply(step: &Step, s: State) -> State {
        let set = step.value != Value::Unset;
        let mut after = s;
        match step.column {
            Column::Read => after.read = set,
            Column::Seen => after.seen = set,
            Column::Archived => after.archived = set,
            Column::Snoozed => after.snoozed = set,
        }
        after
    }

    /// Runs the steps on every reachable state the way the database does (a step changes a
    /// row only when every pin holds) and checks the end state, that `before` recovers the
    /// state each step started from, and that the deltas add up to the change in the counts.
    #[test]
    fn steps_do_what_each_change_says_and_their_deltas_add_up() {
        for change in [
            Change::Read,
            Change::Seen,
            Change::Unread,
            Change::Archive,
            Change::Unarchive,
            Change::Snooze { until: 7 },
            Change::Unsnooze,
        ] {
            for start in every_state() {
                let mut s = start;
                let (mut unread, mut unseen) = (0, 0);
                for step in steps(change) {
                    if step.pins.iter().all(|&(c, pin)| holds(pin, value(s, c))) {
                        let after = apply(&step, s);
                        assert_eq!(step.before(after), s, "{change:?} from {start:?}");
                        let (du, ds) = step.deltas(after);
                        unread += du;
                        unseen += ds;
                        s = after;
                    }
                }
                assert_eq!(s, expected(change, start), "{change:?} from {start:?}");
                let end = expected(change, start);
                assert_eq!(
                    unread,
                    i64::from(end.counts_unread()) - i64::from(start.counts_unread())
                );
                assert_eq!(
                    unseen,
                    i64::from(end.counts_unseen()) - i64::from(start.counts_unseen())
                );
            }
        }
    }

    #[test]
    fn mark_read_reports_only_what_it_read() {
        let reported: Vec<bool> = steps(Change::Read).iter().map(|s| s.reported).collect();
        assert_eq!(reported, [false, true]);
    }
}
