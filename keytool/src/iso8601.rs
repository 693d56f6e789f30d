//! Unix seconds as ISO 8601 UTC date-times (`2024-05-01T00:00:00Z`).
//!
//! The civil-from-days conversion is Howard Hinnant's algorithm ("chrono-
//! Compatible Low-Level Date Algorithms"), exact for the proleptic Gregorian
//! calendar. Batch times in aggregate files are untrusted `u64`s, so the
//! arithmetic is done in `i128` and years past 9999 are written with as many
//! digits as they need rather than overflowing.

/// Formats `secs` seconds after the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_utc(secs: u128) -> String {
    // u128 seconds fit in i128 days with room to spare: the input is at
    // most u64::MAX + u64::MAX (a batch end).
    let secs = i128::try_from(secs).unwrap_or(i128::MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// (year, month, day) of the day `days` after 1970-01-01.
fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // Checked against `date -u -d @SECS`.
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_164_800, "2024-02-29T00:00:00Z"),
            (1_714_521_600, "2024-05-01T00:00:00Z"),
            (1_714_525_199, "2024-05-01T00:59:59Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (253_402_300_800, "10000-01-01T00:00:00Z"),
        ] {
            assert_eq!(format_utc(secs), want, "{secs}");
        }
    }

    #[test]
    fn huge_values_do_not_panic() {
        let end = u128::from(u64::MAX) * 2;
        assert!(format_utc(end).ends_with('Z'));
        assert!(format_utc(u128::from(u64::MAX)).ends_with('Z'));
    }
}
