//! When a session starts afresh by itself: idle and daily resets, as plain
//! logic over explicit times.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Timelike};

/// The automatic reset rules of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResetPolicy {
    /// Reset after this many minutes without activity.
    pub idle_minutes: Option<u64>,
    /// Reset once a day at this local hour.
    pub daily_hour: Option<u8>,
}

/// A command a chat can send to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatCommand {
    /// `/new` or `/reset`: start a fresh session.
    Reset,
    /// `/status`: describe the session.
    Status,
    /// `/compact`: summarize older messages now.
    Compact,
}

/// Read a chat command from message text (`/new`, `/reset`, `/status`, also
/// in Telegram's `/new@botname` form).
pub fn parse_command(text: &str) -> Option<ChatCommand> {
    let word = text.trim().split_whitespace().next()?;
    let word = word.strip_prefix('/')?;
    let name = word.split('@').next().unwrap_or(word).to_ascii_lowercase();
    match name.as_str() {
        "new" | "reset" => Some(ChatCommand::Reset),
        "status" => Some(ChatCommand::Status),
        "compact" => Some(ChatCommand::Compact),
        _ => None,
    }
}

impl ResetPolicy {
    /// Whether a session last active at `last_active_ms` must start afresh
    /// at `now_ms`, with local time at `offset`.
    pub fn is_stale(&self, last_active_ms: i64, now_ms: i64, offset: FixedOffset) -> bool {
        if let Some(minutes) = self.idle_minutes {
            let idle_ms = i64::try_from(minutes)
                .unwrap_or(i64::MAX / 60_000)
                .saturating_mul(60_000);
            if now_ms.saturating_sub(last_active_ms) >= idle_ms {
                return true;
            }
        }
        if let Some(hour) = self.daily_hour {
            if let Some(boundary) = last_boundary(now_ms, hour, offset) {
                return last_active_ms < boundary;
            }
        }
        false
    }
}

/// The most recent moment at or before `now_ms` when the local clock read
/// `hour`:00, in ms since the epoch.
fn last_boundary(now_ms: i64, hour: u8, offset: FixedOffset) -> Option<i64> {
    let now: DateTime<FixedOffset> = offset.timestamp_millis_opt(now_ms).single()?;
    let today = now
        .with_hour(u32::from(hour))?
        .with_minute(0)?
        .with_second(0)?
        .with_nanosecond(0)?;
    let boundary = if today > now {
        today - Duration::days(1)
    } else {
        today
    };
    Some(boundary.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    #[test]
    fn commands_are_recognized() {
        assert_eq!(parse_command("/new"), Some(ChatCommand::Reset));
        assert_eq!(parse_command("  /RESET please"), Some(ChatCommand::Reset));
        assert_eq!(parse_command("/new@my_bot"), Some(ChatCommand::Reset));
        assert_eq!(parse_command("/status"), Some(ChatCommand::Status));
        assert_eq!(parse_command("new"), None);
        assert_eq!(parse_command("/newer"), None);
        assert_eq!(parse_command("tell me about /new"), None);
    }

    #[test]
    fn idle_reset() {
        let p = ResetPolicy {
            idle_minutes: Some(30),
            daily_hour: None,
        };
        let utc = FixedOffset::east_opt(0).unwrap();
        assert!(!p.is_stale(0, 29 * MIN, utc));
        assert!(p.is_stale(0, 30 * MIN, utc));
        assert!(!ResetPolicy::default().is_stale(0, 1000 * HOUR, utc));
    }

    #[test]
    fn daily_reset_at_local_hour() {
        let p = ResetPolicy {
            idle_minutes: None,
            daily_hour: Some(4),
        };
        let utc = FixedOffset::east_opt(0).unwrap();
        let day = 24 * HOUR * 1000; // some midnight UTC
        // Active at 03:00, now 05:00: crossed 04:00.
        assert!(p.is_stale(day + 3 * HOUR, day + 5 * HOUR, utc));
        // Active at 04:30, now 23:00: no boundary crossed.
        assert!(!p.is_stale(day + 4 * HOUR + 30 * MIN, day + 23 * HOUR, utc));
        // Active at 05:00, now 02:00 next day: yesterday's 04:00 is the last boundary.
        assert!(!p.is_stale(day + 5 * HOUR, day + 26 * HOUR, utc));
        // Same instants in UTC+2: 04:00 local is 02:00 UTC.
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        assert!(p.is_stale(day + HOUR, day + 3 * HOUR, plus2));
        assert!(!p.is_stale(day + HOUR, day + 3 * HOUR, utc));
    }
}
