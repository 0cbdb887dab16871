//! UTC timestamps (through chrono): formatting for display, the strftime conversions
//! `automatic-version-prefix` date tags use, and parsing the forms `--timestamp`
//! accepts.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The timestamp a build embeds by default: `SOURCE_DATE_EPOCH` when it is set (to a
/// number of seconds), else now.
pub fn default_timestamp() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(now_secs)
}

fn utc(secs: u64) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `YYYY-MM-DD HH:MM:SS +0000`, the way `ostree log` prints dates.
pub fn format_utc(secs: u64) -> String {
    utc(secs).format("%Y-%m-%d %H:%M:%S +0000").to_string()
}

/// RFC 3339 UTC (`2020-01-01T00:00:00Z`) for JSON output.
pub fn rfc3339(secs: u64) -> String {
    utc(secs).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `strftime` for a UTC time (chrono's conversions, as glib's `g_date_time_format`
/// rpm-ostree uses); a conversion chrono does not know is refused, naming it.
pub fn strftime(format: &str, secs: u64) -> Result<String, String> {
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        let bad = format
            .match_indices('%')
            .map(|(i, _)| &format[i..(i + 2).min(format.len())])
            .find(|c| StrftimeItems::new(c).any(|i| matches!(i, Item::Error)) || c.len() < 2)
            .unwrap_or("%");
        return Err(format!("unsupported conversion {bad}"));
    }
    Ok(utc(secs).format_with_items(items.into_iter()).to_string())
}

/// Accepts seconds since the epoch (`1577836800` or `@1577836800`), RFC 3339
/// (`2020-01-01T00:00:00Z`, `…+02:00`) or a UTC date `YYYY-MM-DD[ HH:MM:SS]`.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = s.trim().trim_start_matches('@');
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let secs = if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        d.timestamp()
    } else if let Some(d) = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), f).ok())
    {
        d.and_utc().timestamp()
    } else {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
    };
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(format_utc(1_577_836_800), "2020-01-01 00:00:00 +0000");
        assert_eq!(parse_timestamp("2020-01-01T00:00:00Z"), Some(1_577_836_800));
        assert_eq!(
            parse_timestamp("2020-01-01T02:00:00+02:00"),
            Some(1_577_836_800)
        );
        assert_eq!(parse_timestamp("2020-01-01"), Some(1_577_836_800));
        assert_eq!(parse_timestamp("1577836800"), Some(1_577_836_800));
        assert_eq!(parse_timestamp("2024-02-29 12:34:56"), Some(1_709_210_096));
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(parse_timestamp("2020-13-01"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(
            strftime("%Y%m%d.%j %H:%M:%S %y%%", 1_709_210_096).unwrap(),
            "20240229.060 12:34:56 24%"
        );
        assert!(strftime("%Q", 0).unwrap_err().contains("%Q"));
        assert!(strftime("x%", 0).is_err());
    }
}
