//! Opaque, validated page tokens.
//!
//! A token carries the position after which the next page starts and a fingerprint of the
//! query it belongs to (caller and filters), so a token reused with other filters or by
//! another caller is refused with INVALID_ARGUMENT instead of returning a wrong page.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::Error;

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

/// Encodes `position` for the query described by `scope`.
pub fn encode(scope: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}.{:016x}.{position}", fingerprint(scope)))
}

/// Decodes a token made by [`encode`] for the same `scope`; `field` names the request field
/// for the violation. An empty token means "first page" (`None`).
pub fn decode(field: &str, token: &str, scope: &str) -> Result<Option<String>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid(field, "invalid page token");
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
        return Err(Error::invalid(
            field,
            "page token belongs to a different query (filters changed)",
        ));
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
            decode("page_token", &token, "alice|unread|").unwrap(),
            Some("0190-abc".to_owned())
        );
    }

    #[test]
    fn empty_is_first_page() {
        assert_eq!(decode("page_token", "", "x").unwrap(), None);
    }

    #[test]
    fn refuses_garbage_and_other_queries() {
        let token = encode("alice|unread|", "pos");
        assert!(decode("page_token", &token, "bob|unread|").is_err());
        for bad in ["???", "djE", "not base64 at all", &"A".repeat(600)] {
            assert!(decode("page_token", bad, "alice|unread|").is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_position_round_trips(scope in ".*", position in ".*") {
            let token = encode(&scope, &position);
            proptest::prop_assert_eq!(decode("page_token", &token, &scope).unwrap(), Some(position));
        }

        #[test]
        fn arbitrary_tokens_never_panic(token in ".{0,600}", scope in ".*") {
            let _ = decode("page_token", &token, &scope);
        }

        #[test]
        fn a_token_is_refused_for_another_scope(a in "[a-z]{1,20}", b in "[a-z]{1,20}") {
            proptest::prop_assume!(a != b);
            let token = encode(&a, "p");
            proptest::prop_assert!(decode("page_token", &token, &b).is_err());
        }
    }
}
