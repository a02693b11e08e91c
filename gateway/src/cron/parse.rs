//! The words of a job's config, parsed: cron patterns, durations, instants,
//! zones, active hours and delivery targets.
//!
//! Each error is a sentence that says what was wrong and how to write it
//! instead; [`crate::config`] puts the key in front of it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Timelike as _, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// The longest duration accepted: 3650 days.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// The shortest `every`.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

const CRON_HELP: &str = "write minute hour day-of-month month day-of-week, with an optional \
     seconds field first, e.g. \"0 30 7 * * Mon-Fri\" (07:30:00 on weekdays) or \"*/15 * * * *\"";

const DURATION_HELP: &str =
    "write a number and a unit (ms, s, m, h or d), or several, e.g. \"15m\", \"2s\" or \"1h30m\"";

/// A cron pattern as croner reads it, seconds optional (5, 6 or 7 fields:
/// `[second] minute hour day-of-month month day-of-week [year]`). A
/// pattern that matches no date at all (the 31st of February) is refused.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let pattern = text.trim();
    let cron = Cron::from_str(pattern)
        .map_err(|e| format!("`{pattern}` is not a cron pattern ({e}): {CRON_HELP}"))?;
    if let Some(epoch) = DateTime::<Utc>::from_timestamp(0, 0)
        && cron.find_next_occurrence(&epoch, true).is_err()
    {
        return Err(format!(
            "`{pattern}` matches no date (e.g. the 31st of February): {CRON_HELP}"
        ));
    }
    Ok(cron)
}

/// A duration such as `"15m"`, `"2s"`, `"1h30m"`, `"1d"` or `"1500ms"`:
/// numbers each followed by a unit, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("is empty: {DURATION_HELP}"));
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("`{s}` is not a duration: {DURATION_HELP}"));
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(letters);
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if tail.is_empty() => {
                return Err(format!(
                    "`{s}` has no unit: write {number}s, {number}m, {number}h or {number}d"
                ));
            }
            "" => return Err(format!("`{s}` is not a duration: {DURATION_HELP}")),
            other => {
                return Err(format!(
                    "`{other}` in `{s}` is not a unit: use ms, s, m, h or d, e.g. \"1h30m\""
                ));
            }
        };
        let too_long = || {
            format!(
                "`{s}` is longer than {} days",
                MAX_DURATION.as_secs() / 86_400
            )
        };
        let n: u64 = number.parse().map_err(|_| too_long())?;
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .filter(|ms| u128::from(*ms) <= MAX_DURATION.as_millis())
            .ok_or_else(too_long)?;
        rest = tail.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// The period of an `every` job: a duration of at least one second.
pub fn parse_every(text: &str) -> Result<Duration, String> {
    let period = parse_duration(text)?;
    if period < MIN_EVERY {
        return Err(format!(
            "`{}` is shorter than a second: run a job at most once a second, e.g. \"1s\"",
            text.trim()
        ));
    }
    Ok(period)
}

/// A duration written the way [`parse_duration`] reads it: `"1h30m"`,
/// `"2s"`, `"1d"`; below a second, `"500ms"`; sub-second parts of longer
/// durations are dropped.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A one-shot time in RFC 3339, with its offset:
/// `"2026-12-24T09:00:00+01:00"` or `"2026-12-24T08:00:00Z"`.
pub fn parse_at(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "`{t}` is not an RFC 3339 time ({e}): write the date, T, the time and its offset from UTC, e.g. \"2026-12-24T09:00:00+01:00\" or \"2026-12-24T08:00:00Z\""
            )
        })
}

/// An IANA time zone name such as `"Europe/Berlin"` (case matters).
pub fn parse_tz(text: &str) -> Result<Tz, String> {
    let name = text.trim();
    Tz::from_str(name).map_err(|_| {
        format!(
            "`{name}` is not a time zone: write an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\" (case matters)"
        )
    })
}

/// A daily window of local time, `start` included and `end` excluded, in
/// minutes after midnight. It wraps past midnight when `end` is not after
/// `start` (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveHours {
    /// Minutes after midnight the window opens, 0–1439.
    start: u16,
    /// Minutes after midnight the window closes, 0–1440 (`24:00`).
    end: u16,
}

impl ActiveHours {
    /// Whether a local time of day, in seconds after midnight, is inside.
    pub fn contains_local(&self, seconds_from_midnight: u32) -> bool {
        let start = u32::from(self.start) * 60;
        let end = u32::from(self.end) * 60;
        if start < end {
            (start..end).contains(&seconds_from_midnight)
        } else {
            seconds_from_midnight >= start || seconds_from_midnight < end
        }
    }

    /// Whether an instant falls inside the window on the clocks of `tz`.
    pub fn contains(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        self.contains_local(t.with_timezone(&tz).num_seconds_from_midnight())
    }
}

/// Whether `slot` falls inside `active` on the clocks of `tz`; windows may
/// wrap past midnight.
pub fn in_active_hours(active: &ActiveHours, slot: DateTime<Utc>, tz: Tz) -> bool {
    active.contains(slot, tz)
}

impl fmt::Display for ActiveHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

impl FromStr for ActiveHours {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_active_hours(text)
    }
}

/// `"HH:MM-HH:MM"` in the job's zone, e.g. `"08:00-22:00"`, or one that
/// wraps past midnight, `"22:00-06:00"`; `24:00` may end a window.
pub fn parse_active_hours(text: &str) -> Result<ActiveHours, String> {
    let s = text.trim();
    let help = "write two times of day, HH:MM-HH:MM, e.g. \"08:00-22:00\" (or \"22:00-06:00\" across midnight)";
    let Some((from, to)) = s.split_once('-') else {
        return Err(format!("`{s}` is not a window of hours: {help}"));
    };
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then(|| h * 60 + m)
    };
    let (Some(start), Some(end)) = (minutes(from), minutes(to)) else {
        return Err(format!("`{s}` is not a window of hours: {help}"));
    };
    if start == 24 * 60 {
        return Err(format!("`{s}` starts at 24:00: start it at 00:00, {help}"));
    }
    if start == end % (24 * 60) {
        return Err(format!(
            "`{s}` starts where it ends: leave active_hours out to allow every hour, or {help}"
        ));
    }
    Ok(ActiveHours { start, end })
}

/// Where the answer of a run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deliver {
    /// Nowhere: the run is kept in its session and the run history.
    None,
    /// A new message in a chat of a channel account.
    Chat {
        /// The channel, e.g. `telegram`.
        channel: String,
        /// The channel account, e.g. `main`.
        account: String,
        /// The chat id as the platform writes it.
        chat: String,
        /// A thread or topic in the chat, when given.
        thread: Option<String>,
    },
    /// A POST of the answer as JSON to this http(s) URL.
    Webhook(String),
}

impl fmt::Display for Deliver {
    /// The target for operator output. A webhook shows its scheme and host
    /// only: the rest of such URLs often carries a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deliver::None => f.write_str("none"),
            Deliver::Chat {
                channel,
                account,
                chat,
                thread,
            } => {
                write!(f, "{channel}:{account}:{chat}")?;
                match thread {
                    Some(t) => write!(f, ":{t}"),
                    None => Ok(()),
                }
            }
            Deliver::Webhook(url) => match reqwest::Url::parse(url) {
                Ok(u) => write!(f, "POST {}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
                Err(_) => f.write_str("POST <webhook>"),
            },
        }
    }
}

/// `"none"`, `"channel:account:chat"`, `"channel:account:chat:thread"`, or
/// an `http://` / `https://` URL. Whether the channel and account exist is
/// for the caller, who knows the config.
pub fn parse_deliver(text: &str) -> Result<Deliver, String> {
    let s = text.trim();
    let help = "write \"channel:account:chat\" (e.g. \"telegram:main:123456789\"), \"channel:account:chat:thread\", an http(s) URL to POST the answer to, or \"none\"";
    if s == "none" {
        return Ok(Deliver::None);
    }
    if s.eq_ignore_ascii_case("none") {
        return Err(format!("`{s}`: write \"none\" in lower case"));
    }
    if s.contains("://") {
        return match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(Deliver::Webhook(s.to_string()))
            }
            _ => Err(format!(
                "`{s}` is not an http(s) URL with a host: write it like https://example.com/hook, or {help}"
            )),
        };
    }
    let parts: Vec<&str> = s.splitn(4, ':').collect();
    if parts.len() < 3 {
        return Err(format!("`{s}` is not a delivery target: {help}"));
    }
    if let Some(bad) = parts
        .iter()
        .find(|p| p.is_empty() || p.contains(char::is_whitespace))
    {
        let what = if bad.is_empty() {
            "an empty part"
        } else {
            "a part with spaces"
        };
        return Err(format!("`{s}` has {what}: {help}"));
    }
    Ok(Deliver::Chat {
        channel: parts[0].to_string(),
        account: parts[1].to_string(),
        chat: parts[2].to_string(),
        thread: parts.get(3).map(|t| (*t).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn durations_read_units_and_refuse_what_is_not_one() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("15m"), Duration::from_secs(900));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok(" 1h 30m "), Duration::from_secs(5400));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok("1500ms"), Duration::from_millis(1500));
        let err = |s: &str| parse_duration(s).unwrap_err();
        assert!(err("").contains("is empty"), "{}", err(""));
        assert!(
            err("15").contains("`15` has no unit: write 15s, 15m"),
            "{}",
            err("15")
        );
        assert!(
            err("15x").contains("`x` in `15x` is not a unit"),
            "{}",
            err("15x")
        );
        assert!(
            err("m15").contains("`m15` is not a duration"),
            "{}",
            err("m15")
        );
        assert!(err("1.5h").contains("is not a duration"), "{}", err("1.5h"));
        assert!(
            err("4000d").contains("longer than 3650 days"),
            "{}",
            err("4000d")
        );
        assert!(err("99999999999999999999s").contains("longer than"));
    }

    #[test]
    fn every_is_at_least_a_second() {
        assert_eq!(parse_every("1s").unwrap(), Duration::from_secs(1));
        let e = parse_every("500ms").unwrap_err();
        assert!(e.contains("`500ms` is shorter than a second"), "{e}");
        assert!(
            parse_every("soon")
                .unwrap_err()
                .contains("`soon` is not a duration")
        );
    }

    #[test]
    fn durations_format_the_way_they_are_written() {
        for s in ["15m", "2s", "1h30m", "1d", "2d3h4m5s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(61_500)), "1m1s");
    }

    #[test]
    fn cron_patterns_take_optional_seconds_and_refuse_impossible_dates() {
        assert!(parse_cron("0 30 7 * * Mon-Fri").is_ok());
        assert!(parse_cron("*/15 * * * *").is_ok());
        assert!(parse_cron("@daily").is_ok());
        let e = parse_cron("0 61 * * *").unwrap_err();
        assert!(e.starts_with("`0 61 * * *` is not a cron pattern ("), "{e}");
        assert!(e.contains("e.g. \"0 30 7 * * Mon-Fri\""), "{e}");
        let e = parse_cron("every day").unwrap_err();
        assert!(e.contains("is not a cron pattern"), "{e}");
        let e = parse_cron("0 0 31 2 *").unwrap_err();
        assert!(e.contains("matches no date"), "{e}");
    }

    #[test]
    fn at_is_rfc3339_with_an_offset() {
        let t = parse_at("2026-12-24T09:00:00+01:00").unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 12, 24, 8, 0, 0).unwrap());
        let e = parse_at("2026-12-24 09:00").unwrap_err();
        assert!(
            e.contains("`2026-12-24 09:00` is not an RFC 3339 time"),
            "{e}"
        );
        assert!(e.contains("\"2026-12-24T09:00:00+01:00\""), "{e}");
    }

    #[test]
    fn zones_are_iana_names() {
        assert_eq!(
            parse_tz("Europe/Berlin").unwrap(),
            chrono_tz::Europe::Berlin
        );
        assert_eq!(parse_tz("UTC").unwrap(), chrono_tz::UTC);
        let e = parse_tz("Europe/Berln").unwrap_err();
        assert!(e.contains("`Europe/Berln` is not a time zone"), "{e}");
        assert!(parse_tz("CEST").is_err());
    }

    #[test]
    fn active_hours_include_the_start_exclude_the_end_and_may_wrap() {
        let at = |h: u32, m: u32| h * 3600 + m * 60;
        let day = parse_active_hours("08:00-22:00").unwrap();
        assert_eq!(day.to_string(), "08:00-22:00");
        assert!(day.contains_local(at(8, 0)));
        assert!(day.contains_local(at(21, 59) + 59));
        assert!(!day.contains_local(at(22, 0)));
        assert!(!day.contains_local(at(7, 59)));
        let night = parse_active_hours("22:00-06:00").unwrap();
        assert!(night.contains_local(at(23, 0)));
        assert!(night.contains_local(at(0, 0)));
        assert!(night.contains_local(at(5, 59)));
        assert!(!night.contains_local(at(6, 0)));
        assert!(!night.contains_local(at(12, 0)));
        let evening = parse_active_hours("18:30-24:00").unwrap();
        assert!(evening.contains_local(at(23, 59)));
        assert!(!evening.contains_local(at(0, 0)));

        // In the job's zone: 06:30 UTC is 08:30 in Berlin in summer.
        let berlin = chrono_tz::Europe::Berlin;
        let utc = |h| Utc.with_ymd_and_hms(2026, 7, 1, h, 30, 0).unwrap();
        assert!(in_active_hours(&day, utc(6), berlin));
        assert!(!in_active_hours(&day, utc(5), berlin));

        for bad in ["8-22", "08:00", "08:00-25:00", "08:60-09:00", "24:00-06:00"] {
            let e = parse_active_hours(bad).unwrap_err();
            assert!(e.contains("HH:MM-HH:MM"), "{bad}: {e}");
        }
        let e = parse_active_hours("08:00-08:00").unwrap_err();
        assert!(e.contains("starts where it ends"), "{e}");
        assert!(parse_active_hours("00:00-24:00").is_err());
    }

    #[test]
    fn delivery_targets_are_a_chat_a_url_or_none() {
        assert_eq!(parse_deliver("none").unwrap(), Deliver::None);
        assert_eq!(
            parse_deliver("telegram:main:123456789").unwrap(),
            Deliver::Chat {
                channel: "telegram".into(),
                account: "main".into(),
                chat: "123456789".into(),
                thread: None,
            }
        );
        let d = parse_deliver("slack:work:C0123:1712345678.123456").unwrap();
        assert_eq!(d.to_string(), "slack:work:C0123:1712345678.123456");
        let d = parse_deliver("https://example.com/hooks/abc?token=s3cret").unwrap();
        assert_eq!(
            d,
            Deliver::Webhook("https://example.com/hooks/abc?token=s3cret".into())
        );
        assert_eq!(
            d.to_string(),
            "POST https://example.com/…",
            "no token shown"
        );
        for (bad, says) in [
            ("telegram:main", "is not a delivery target"),
            ("telegram::123", "has an empty part"),
            ("telegram:main:12 34", "has a part with spaces"),
            ("ftp://example.com/x", "is not an http(s) URL"),
            ("https://", "is not an http(s) URL"),
            ("None", "lower case"),
            ("", "is not a delivery target"),
        ] {
            let e = parse_deliver(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
