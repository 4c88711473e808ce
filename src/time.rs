//! Times are stored as microseconds since the Unix epoch in both backends: one encoding,
//! exact round trips, and plain integer comparisons in SQL.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Converts stored microseconds to the wire type.
pub fn to_timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// Seconds of 0001-01-01T00:00:00Z and of 9999-12-31T23:59:59Z, the range
/// `google.protobuf.Timestamp` allows.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A wire timestamp in stored microseconds (sub-microsecond parts are dropped), or why it is
/// not a valid `google.protobuf.Timestamp` (the text of a field violation).
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Result<i64, String> {
    if !TIMESTAMP_SECONDS.contains(&ts.seconds) || !(0..1_000_000_000).contains(&ts.nanos) {
        return Err("not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)".into());
    }
    Ok(ts.seconds * 1_000_000 + i64::from(ts.nanos / 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_timestamps_round_trip_and_invalid_ones_say_why() {
        for micros in [0, -1, 1_700_000_000_123_456, -62_135_596_800_000_000] {
            assert_eq!(from_timestamp(&to_timestamp(micros)), Ok(micros));
        }
        let ts = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        assert_eq!(
            from_timestamp(&ts(1, 999)),
            Ok(1_000_000),
            "finer parts are dropped"
        );
        for bad in [
            ts(0, -1),
            ts(0, 1_000_000_000),
            ts(253_402_300_800, 0),
            ts(i64::MIN, 0),
        ] {
            assert!(from_timestamp(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_round_down_for_negative_micros() {
        let ts = to_timestamp(-1);
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_000));
        let ts = to_timestamp(1_700_000_000_123_456);
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_000));
    }
}
