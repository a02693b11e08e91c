//! Wall-clock time as the store keeps it.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The last local midnight, ms since the epoch (when daily budgets renew).
pub fn local_midnight_ms() -> i64 {
    use chrono::TimeZone;
    let today = chrono::Local::now().date_naive();
    today
        .and_hms_opt(0, 0, 0)
        .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
        .map_or(0, |t| t.timestamp_millis())
}
