//! Opaque, validated page tokens.
//!
//! A token carries the position after which the next page starts and a fingerprint of the
//! query it belongs to (caller and filters), so a token reused with other filters or by
//! another caller is refused with INVALID_ARGUMENT instead of returning a wrong page.
//! [`Paging`] is how both services validate a List's paging and cut its page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::Violations;

const VERSION: &str = "v1";

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page a List may ask for.
pub const MAX_PAGE_SIZE: usize = 500;

/// Validates a requested page size: 0 means the default; above the maximum is coerced to it
/// (AIP-158: a client asking for "as many as you give" gets a full page, not an error);
/// negative is refused.
pub fn page_size(value: i32) -> Result<usize, String> {
    match usize::try_from(value) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
        Err(_) => Err("must not be negative".into()),
    }
}

/// A List request's paging, validated: the page size, where the page starts, and the query
/// (scope) its tokens belong to. It also holds the "fetch one extra row" rule, so both
/// services page the same way and their stores only take a plain `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging<P> {
    /// Items on a full page.
    pub size: usize,
    /// The position the page starts after (`None`: the first page).
    pub after: Option<P>,
    scope: String,
}

impl<P> Paging<P> {
    /// Validates a request's `page_size` and `page_token` for the query described by `scope`,
    /// recording what is wrong in `v` under those field names. `position` turns a decoded
    /// position into `P`; `None` means the token was forged (it decoded, but holds no valid
    /// position).
    pub fn parse(
        v: &mut Violations,
        page_size: i32,
        page_token: &str,
        scope: String,
        position: impl FnOnce(&str) -> Option<P>,
    ) -> Option<Self> {
        let size = v.check("page_size", self::page_size(page_size));
        let after = match v.check("page_token", decode(page_token, &scope))? {
            None => None,
            Some(text) => match position(&text) {
                Some(position) => Some(position),
                None => {
                    v.add("page_token", "invalid page token");
                    return None;
                }
            },
        };
        Some(Self {
            size: size?,
            after,
            scope,
        })
    }

    /// Rows to fetch: one more than a page holds, so the extra row tells whether another
    /// page follows without counting.
    pub fn fetch_limit(&self) -> usize {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`Paging::fetch_limit`], in page order) to the page, and
    /// makes the next page's token from the position of the page's last row (`position`);
    /// the token is empty when nothing follows.
    pub fn cut<T>(
        &self,
        mut rows: Vec<T>,
        position: impl FnOnce(&T) -> String,
    ) -> (Vec<T>, String) {
        let more = rows.len() > self.size;
        rows.truncate(self.size);
        let next_page_token = match rows.last() {
            Some(last) if more => encode(&self.scope, &position(last)),
            _ => String::new(),
        };
        (rows, next_page_token)
    }
}

/// Encodes `position` for the query described by `scope`.
pub fn encode(scope: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}.{:016x}.{position}", fingerprint(scope)))
}

/// Decodes a token made by [`encode`] for the same `scope` into its position, or says why it
/// is refused. An empty token means "first page" (`None`).
pub fn decode(token: &str, scope: &str) -> Result<Option<String>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || "invalid page token".to_owned();
    if token.len() > 512 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '.');
    let (Some(VERSION), Some(print), Some(position)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if print != format!("{:016x}", fingerprint(scope)) {
        return Err("page token belongs to a different query (filters changed)".into());
    }
    Ok(Some(position.to_owned()))
}

/// FNV-1a: stable across builds and processes (unlike `DefaultHasher`), which matters when
/// replicas hand out each other's tokens. Not a security boundary: positions are not secret.
fn fingerprint(scope: &str) -> u64 {
    scope.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(500), Ok(500));
        assert_eq!(page_size(501), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(i32::MAX), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn round_trips() {
        let token = encode("alice|unread|", "0190-abc");
        assert_eq!(
            decode(&token, "alice|unread|").unwrap(),
            Some("0190-abc".to_owned())
        );
    }

    #[test]
    fn empty_is_first_page() {
        assert_eq!(decode("", "x").unwrap(), None);
    }

    #[test]
    fn refuses_garbage_and_other_queries() {
        let token = encode("alice|unread|", "pos");
        assert!(decode(&token, "bob|unread|").is_err());
        for bad in ["???", "djE", "not base64 at all", &"A".repeat(600)] {
            assert!(decode(bad, "alice|unread|").is_err(), "{bad}");
        }
    }

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(crate::Error::InvalidArgument(violations)) => {
                violations.into_iter().map(|f| f.field).collect()
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn parse(size: i32, token: &str, scope: &str) -> (Option<Paging<u32>>, Vec<String>) {
        let mut v = Violations::default();
        let paging = Paging::parse(&mut v, size, token, scope.into(), |p| p.parse().ok());
        (paging, fields(v))
    }

    #[test]
    fn a_first_page_has_the_default_size() {
        let (paging, violations) = parse(0, "", "s");
        let paging = paging.unwrap();
        assert!(violations.is_empty());
        assert_eq!((paging.size, paging.after), (DEFAULT_PAGE_SIZE, None));
        assert_eq!(paging.fetch_limit(), DEFAULT_PAGE_SIZE + 1);
    }

    #[test]
    fn a_next_page_starts_after_the_last_row_of_the_previous() {
        let (first, _) = parse(2, "", "s");
        let first = first.unwrap();
        let (rows, token) = first.cut(vec![9, 8, 7], u32::to_string);
        assert_eq!(rows, [9, 8]);
        let (second, violations) = parse(2, &token, "s");
        assert!(violations.is_empty());
        assert_eq!(second.unwrap().after, Some(8));
    }

    #[test]
    fn a_page_without_its_extra_row_is_the_last() {
        let paging = parse(2, "", "s").0.unwrap();
        assert_eq!(
            paging.cut(vec![9, 8], u32::to_string),
            (vec![9, 8], String::new())
        );
        assert_eq!(
            paging.cut(Vec::<u32>::new(), u32::to_string),
            (vec![], String::new())
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let forged = encode("s", "not a number");
        for (size, token, expected) in [
            (-1, "", vec!["page_size"]),
            (0, "garbage", vec!["page_token"]),
            (0, &forged, vec!["page_token"]),
            (0, &encode("other", "1"), vec!["page_token"]),
            (-1, &forged, vec!["page_size", "page_token"]),
        ] {
            let (paging, violations) = parse(size, token, "s");
            assert!(paging.is_none(), "{size} {token}");
            assert_eq!(violations, expected, "{size} {token}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_position_round_trips(scope in ".*", position in ".*") {
            let token = encode(&scope, &position);
            proptest::prop_assert_eq!(decode(&token, &scope).unwrap(), Some(position));
        }

        #[test]
        fn arbitrary_tokens_never_panic(token in ".{0,600}", scope in ".*") {
            let _ = decode(&token, &scope);
        }

        #[test]
        fn a_token_is_refused_for_another_scope(a in "[a-z]{1,20}", b in "[a-z]{1,20}") {
            proptest::prop_assume!(a != b);
            let token = encode(&a, "p");
            proptest::prop_assert!(decode(&token, &b).is_err());
        }
    }
}
