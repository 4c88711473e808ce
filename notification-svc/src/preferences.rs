//! A person's preferences: category mutes, how an UpdatePreferences is validated, and the
//! prefix rule that decides what a mute covers.
//!
//! A mute of `build` covers `build` and every `build.<anything>`, on dot boundaries only
//! (`buildx` is another category). Send skips muted recipients with it; List and counts hide
//! muted broadcasts with the same rule ([`is_muted`] over the user's muted prefixes, which
//! the store reads with `mutes_in`).

use std::collections::BTreeMap;

use switchboard::{Error, Violations};

use crate::domain;

/// Most entries of one UpdatePreferences.
pub const MAX_PREFERENCES: usize = 200;

/// One muted category (and everything below it), until `until` or until turned off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    pub category: String,
    /// Microseconds; `None` = until the person unmutes it.
    pub until: Option<i64>,
}

/// A mute is its category where only what it covers matters ([`is_muted`]).
impl AsRef<str> for Mute {
    fn as_ref(&self) -> &str {
        &self.category
    }
}

/// One entry of an UpdatePreferences as it arrived.
#[derive(Debug, Clone)]
pub struct Entry {
    pub category: String,
    pub muted: bool,
    /// When the mute ends (microseconds), or why the timestamp given is not one.
    pub muted_until: Option<Result<i64, String>>,
}

/// Validates a whole new set (every violation reported at once, named
/// `preferences.categories[i].<field>`) and returns the mutes to store, by category. Entries
/// with `muted = false` are valid but store nothing: not being muted is the default.
pub fn parse(entries: Vec<Entry>, now: i64) -> Result<Vec<Mute>, Error> {
    let mut v = Violations::default();
    if entries.len() > MAX_PREFERENCES {
        v.add(
            "preferences.categories",
            format!("at most {MAX_PREFERENCES} entries"),
        );
    }
    let mut first_of = BTreeMap::<String, usize>::new();
    let mut mutes = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let field = |name: &str| format!("preferences.categories[{i}].{name}");
        if v.check(&field("category"), domain::category(&entry.category))
            .is_some()
        {
            if let Some(first) = first_of.get(&entry.category) {
                v.add(
                    field("category"),
                    format!("one entry per category; also in preferences.categories[{first}]"),
                );
            } else {
                first_of.insert(entry.category.clone(), i);
            }
        }
        let until = match entry.muted_until {
            None => None,
            Some(Ok(until)) if until <= now => {
                v.add(field("muted_until"), "must be in the future");
                None
            }
            Some(Ok(until)) => Some(until),
            Some(Err(why)) => {
                v.add(field("muted_until"), why);
                None
            }
        };
        if entry.muted {
            mutes.push(Mute {
                category: entry.category,
                until,
            });
        }
    }
    v.into_result()?;
    mutes.sort_by(|a, b| a.category.cmp(&b.category));
    Ok(mutes)
}

/// Whether a mute of `prefix` covers `category`: the same category, or one below it.
pub fn covers(prefix: &str, category: &str) -> bool {
    category
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether any of the muted `prefixes` covers `category`.
pub fn is_muted<S: AsRef<str>>(category: &str, prefixes: &[S]) -> bool {
    prefixes
        .iter()
        .any(|prefix| covers(prefix.as_ref(), category))
}

/// Every category whose mute covers `category`: each part before a dot and the category
/// itself (`a.b.c`: `a`, `a.b`, `a.b.c`). Looking mutes up by these names finds exactly the
/// ones [`covers`] matches, with an index instead of a scan of the person's mutes.
pub fn covering_categories(category: &str) -> impl Iterator<Item = &str> {
    category
        .match_indices('.')
        .map(|(dot, _)| &category[..dot])
        .chain(std::iter::once(category))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutes_cover_a_category_and_everything_below_it_on_dot_boundaries() {
        let muted = vec!["build".to_owned()];
        assert!(is_muted("build", &muted));
        assert!(is_muted("build.failed", &muted));
        assert!(!is_muted("builder", &muted));
        assert!(!is_muted("chat", &muted));
        assert!(!is_muted::<String>("build", &[]));
    }

    #[test]
    fn a_mute_covers_its_category_and_those_below_it_on_dot_boundaries() {
        let muted = ["build"];
        for yes in ["build", "build.x", "build.x.y", "build..z", "build."] {
            assert!(is_muted(yes, &muted), "{yes}");
        }
        for no in ["buildx", "buil", "build-x", "build_x", "x.build", "other"] {
            assert!(!is_muted(no, &muted), "{no}");
        }
        assert!(is_muted("deploy.prod", &["build", "deploy.prod"]));
        assert!(
            !is_muted("deploy", &["build", "deploy.prod"]),
            "a child does not mute its parent"
        );
        assert!(!is_muted::<&str>("build", &[]));
    }

    #[test]
    fn covering_categories_are_the_parts_before_each_dot() {
        let names = |c| covering_categories(c).collect::<Vec<_>>();
        assert_eq!(names("build"), ["build"]);
        assert_eq!(names("a.b.c"), ["a", "a.b", "a.b.c"]);
        assert_eq!(names("a..b"), ["a", "a.", "a..b"]);
        assert_eq!(names("a."), ["a", "a."]);
    }

    fn entry(category: &str, muted: bool, until: Option<i64>) -> Entry {
        Entry {
            category: category.into(),
            muted,
            muted_until: until.map(Ok),
        }
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn a_set_becomes_its_mutes_by_category_and_unmuted_entries_store_nothing() {
        let parsed = parse(
            vec![
                entry("task", true, Some(101)),
                entry("chat", false, None),
                entry("build", true, None),
            ],
            100,
        );
        assert_eq!(
            parsed.expect("valid"),
            [
                Mute {
                    category: "build".into(),
                    until: None
                },
                Mute {
                    category: "task".into(),
                    until: Some(101)
                },
            ]
        );
        assert_eq!(parse(Vec::new(), 100).expect("empty clears"), []);
    }

    #[test]
    fn every_violation_is_named_by_its_entry() {
        let err = parse(
            vec![
                entry("Build", true, None),
                entry("chat", true, Some(100)),
                entry("task", true, None),
                entry("task", false, None),
                Entry {
                    muted_until: Some(Err("not a valid timestamp".into())),
                    ..entry("deploy", true, None)
                },
            ],
            100,
        )
        .expect_err("invalid");
        assert_eq!(
            fields(err),
            [
                "preferences.categories[0].category",
                "preferences.categories[1].muted_until",
                "preferences.categories[3].category",
                "preferences.categories[4].muted_until",
            ]
        );
        let many = (0..=MAX_PREFERENCES)
            .map(|i| entry(&format!("c{i}"), true, None))
            .collect();
        assert_eq!(
            fields(parse(many, 0).expect_err("too many")),
            ["preferences.categories"]
        );
        let most = (0..MAX_PREFERENCES)
            .map(|i| entry(&format!("c{i}"), true, None))
            .collect();
        assert_eq!(parse(most, 0).expect("the most").len(), MAX_PREFERENCES);
    }

    proptest::proptest! {
        /// The index lookup and the rule agree: a mute is found by name exactly when it covers.
        #[test]
        fn covering_categories_find_exactly_the_covering_mutes(
            category in "[a-c][a-c.]{0,6}",
            prefix in "[a-c][a-c.]{0,6}",
        ) {
            let found = covering_categories(&category).any(|name| name == prefix);
            proptest::prop_assert_eq!(found, covers(&prefix, &category));
        }
    }
}
