//! UTC timestamps without a date library: formatting for display, the strftime subset
//! `automatic-version-prefix` date tags use, and parsing the forms `--timestamp` accepts.

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch, now (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS +0000`, the way `ostree log` prints dates.
pub fn format_utc(secs: u64) -> String {
    let secs = secs as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// RFC 3339 UTC (`2020-01-01T00:00:00Z`) for JSON output.
pub fn rfc3339(secs: u64) -> String {
    let s = format_utc(secs);
    format!("{}T{}Z", &s[..10], &s[11..19])
}

/// `strftime` for a UTC time, with the conversions a version or a date needs: `%Y %y %m
/// %d %j %H %M %S %%`. Anything else is refused (naming it) rather than copied.
pub fn strftime(format: &str, secs: u64) -> Result<String, String> {
    let secs = secs as i64;
    let days = secs.div_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let rem = secs.rem_euclid(86_400);
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{mo:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(other) => return Err(format!("unsupported conversion %{other}")),
            None => return Err("a lone % at the end".into()),
        }
    }
    Ok(out)
}

/// Accepts seconds since the epoch (`1577836800` or `@1577836800`) or a UTC date
/// `YYYY-MM-DD[THH:MM:SS[Z]]`.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = s.trim().trim_start_matches('@');
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let t = t.trim_end_matches('Z').trim_end_matches("+00:00");
    let (date, clock) = match t.split_once(['T', ' ']) {
        Some((d, c)) => (d, c),
        None => (t, "00:00:00"),
    };
    let mut dp = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, d) = (dp.next()??, dp.next()??, dp.next()??);
    let mut cp = clock.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (
        cp.next()??,
        cp.next().unwrap_or(Some(0))?,
        cp.next().unwrap_or(Some(0))?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(format_utc(1_577_836_800), "2020-01-01 00:00:00 +0000");
        assert_eq!(parse_timestamp("2020-01-01T00:00:00Z"), Some(1_577_836_800));
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
    }
}
