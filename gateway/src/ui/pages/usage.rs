//! **Usage**: tokens and their cost per agent per local day and per session,
//! and the per-day table as a CSV download (`/usage.csv`).
//!
//! The store keeps totals "since a moment" ([`control::usage_by_agent`]);
//! a day's tokens are the totals since its start less the totals since the
//! next day's start, which is exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{Days, Local, NaiveDate, TimeZone};
use serde::Deserialize;

use switchboard_memory::{SessionRecord, TokenCounts};

use crate::http::{ApiError, AppState, control};
use crate::telemetry::cost::format_usd;
use crate::ui::{Flash, Layout, Signed, failed, render, urlencode};

/// Days shown when the address names none.
const DEFAULT_DAYS: u32 = 7;
/// The most days one page or download covers.
const MAX_DAYS: u32 = 90;
/// Sessions looked at for the per-session table: the most recently active.
const MAX_SESSIONS: u32 = 100;
/// The choices of the days selector.
const CHOICES: [u32; 5] = [1, 7, 14, 30, 90];

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/usage", get(page))
        .route("/usage.csv", get(csv))
}

/// `?days=N`, read leniently: anything but a number gives the default.
#[derive(Debug, Default, Deserialize)]
struct DaysQuery {
    days: Option<String>,
}

fn days_of(q: &DaysQuery) -> u32 {
    q.days
        .as_deref()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_DAYS)
        .clamp(1, MAX_DAYS)
}

/// `n` with thousands separators: `12,345`.
pub(super) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cost for a table cell: `$0.0123`, or `—` when nothing was counted (no
/// `[providers.x.pricing]`, or nothing used).
pub(super) fn cost_cell(micros: i64) -> String {
    if micros > 0 {
        format_usd(micros)
    } else {
        "—".to_string()
    }
}

/// Millionths of a US dollar as dollars for a spreadsheet, exactly:
/// `0.023400`.
fn csv_usd(micros: i64) -> String {
    let m = micros.max(0);
    format!("{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// One CSV field: quoted when it holds a separator, a quote or a line
/// break, and prefixed with `'` when a spreadsheet would read it as a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return first).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The start of local day `date`, ms since the epoch (1 am when midnight
/// does not exist that day).
fn day_start_ms(date: NaiveDate) -> i64 {
    let at = |hour| {
        date.and_hms_opt(hour, 0, 0)
            .and_then(|t| Local.from_local_datetime(&t).earliest())
    };
    at(0).or_else(|| at(1)).map_or(0, |t| t.timestamp_millis())
}

/// `a - b`, field by field, never below zero (a turn finishing between two
/// reads must not make a day negative).
fn minus(a: TokenCounts, b: TokenCounts) -> TokenCounts {
    TokenCounts {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens).max(0),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens).max(0),
        cached_tokens: a.cached_tokens.saturating_sub(b.cached_tokens).max(0),
        turns: a.turns.saturating_sub(b.turns).max(0),
        cost_micros: a.cost_micros.saturating_sub(b.cost_micros).max(0),
    }
}

fn is_empty(t: &TokenCounts) -> bool {
    t.turns == 0
        && t.input_tokens == 0
        && t.output_tokens == 0
        && t.cached_tokens == 0
        && t.cost_micros == 0
}

/// Tokens per agent since `since`.
async fn totals_since(
    state: &AppState,
    since: i64,
) -> Result<BTreeMap<String, TokenCounts>, ApiError> {
    let v = control::usage_by_agent(state, Some(since)).await?;
    Ok(v.get("agents")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok())
        .unwrap_or_default())
}

/// One agent's tokens on one day.
struct DayUsage {
    day: NaiveDate,
    agent: String,
    counts: TokenCounts,
}

/// The tokens of each agent on each of the last `days` local days (today
/// included), newest first, days without use left out; and the totals of
/// the whole period.
async fn per_day(
    state: &AppState,
    days: u32,
) -> Result<(Vec<DayUsage>, BTreeMap<String, TokenCounts>), ApiError> {
    let today = Local::now().date_naive();
    let mut rows = Vec::new();
    // Totals since the start of the day after the one being worked out.
    let mut later: BTreeMap<String, TokenCounts> = BTreeMap::new();
    for back in 0..days {
        let Some(day) = today.checked_sub_days(Days::new(u64::from(back))) else {
            break;
        };
        let since = totals_since(state, day_start_ms(day)).await?;
        for (agent, total) in &since {
            let counts = minus(*total, later.get(agent).copied().unwrap_or_default());
            if !is_empty(&counts) {
                rows.push(DayUsage {
                    day,
                    agent: agent.clone(),
                    counts,
                });
            }
        }
        later = since;
    }
    Ok((rows, later))
}

/// A row of counts as the page shows it.
struct CountRow {
    day: String,
    agent: String,
    input: String,
    cached: String,
    output: String,
    turns: String,
    cost: String,
}

fn count_row(day: String, agent: &str, t: &TokenCounts) -> CountRow {
    CountRow {
        day,
        agent: agent.to_string(),
        input: thousands(t.input_tokens),
        cached: thousands(t.cached_tokens),
        output: thousands(t.output_tokens),
        turns: thousands(t.turns),
        cost: cost_cell(t.cost_micros),
    }
}

/// One session's tokens, all generations, all time.
struct SessionRow {
    key: String,
    link: String,
    agent: String,
    input: String,
    output: String,
    turns: String,
    cost: String,
    total: i64,
}

/// The tokens of the most recently active sessions, most used first.
async fn per_session(state: &AppState) -> Result<Vec<SessionRow>, ApiError> {
    let v = control::sessions_list(state, Some(MAX_SESSIONS)).await?;
    let sessions: Vec<SessionRecord> = v
        .get("sessions")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let mut rows = Vec::with_capacity(sessions.len());
    for s in sessions {
        let t = state
            .store
            .usage_for_session(&s.key, 0)
            .await
            .map_err(ApiError::internal)?;
        if is_empty(&t) {
            continue;
        }
        rows.push(SessionRow {
            link: format!("/sessions/{}", urlencode(&s.key)),
            input: thousands(t.input_tokens),
            output: thousands(t.output_tokens),
            turns: thousands(t.turns),
            cost: cost_cell(t.cost_micros),
            total: t.total(),
            key: s.key,
            agent: s.agent,
        });
    }
    rows.sort_by(|a, b| b.total.cmp(&a.total));
    Ok(rows)
}

/// One option of the days selector.
struct Choice {
    value: u32,
    selected: bool,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    layout: Layout,
    days: u32,
    choices: Vec<Choice>,
    day_rows: Vec<CountRow>,
    totals: Vec<CountRow>,
    sessions: Vec<SessionRow>,
    /// Set when retention prunes usage inside the period shown.
    pruned: Option<String>,
}

async fn page(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
    Query(q): Query<DaysQuery>,
) -> Response {
    let days = days_of(&q);
    let mut layout = Layout::new("Usage", &signed, &flash);
    let mut errors = Vec::new();
    let today = Local::now().date_naive();
    let (day_rows, totals): (Vec<CountRow>, Vec<CountRow>) = match per_day(&state, days).await {
        Ok((rows, totals)) => (
            rows.iter()
                .map(|r| {
                    let day = if r.day == today {
                        format!("{} (today)", r.day.format("%Y-%m-%d"))
                    } else {
                        r.day.format("%Y-%m-%d").to_string()
                    };
                    count_row(day, &r.agent, &r.counts)
                })
                .collect(),
            totals
                .iter()
                .filter(|(_, t)| !is_empty(t))
                .map(|(agent, t)| count_row(String::new(), agent, t))
                .collect(),
        ),
        Err(e) => {
            errors.push(e.message().to_string());
            (Vec::new(), Vec::new())
        }
    };
    let sessions = match per_session(&state).await {
        Ok(rows) => rows,
        Err(e) => {
            errors.push(e.message().to_string());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        layout.error = Some(errors.join(" "));
    }
    let mut values: Vec<u32> = CHOICES.to_vec();
    if !values.contains(&days) {
        values.push(days);
        values.sort_unstable();
    }
    let pruned = state
        .config
        .load()
        .retention
        .usage_days
        .filter(|keep| *keep < days)
        .map(|keep| {
            format!(
                "Usage older than {keep} days is pruned (retention.usage_days), so earlier days show nothing."
            )
        });
    render(&UsagePage {
        layout,
        days,
        choices: values
            .into_iter()
            .map(|value| Choice {
                value,
                selected: value == days,
            })
            .collect(),
        day_rows,
        totals,
        sessions,
        pruned,
    })
}

/// `GET /usage.csv?days=N`: the per-day table as a spreadsheet file.
async fn csv(
    State(state): State<Arc<AppState>>,
    _signed: Signed,
    Query(q): Query<DaysQuery>,
) -> Response {
    let days = days_of(&q);
    let rows = match per_day(&state, days).await {
        Ok((rows, _)) => rows,
        Err(e) => return failed(&format!("/usage?days={days}"), e.message()),
    };
    let mut out =
        String::from("day,agent,input_tokens,cached_tokens,output_tokens,turns,cost_usd\r\n");
    for r in &rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            csv_field(&r.day.format("%Y-%m-%d").to_string()),
            csv_field(&r.agent),
            r.counts.input_tokens,
            r.counts.cached_tokens,
            r.counts.output_tokens,
            r.counts.turns,
            csv_usd(r.counts.cost_micros)
        ));
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"switchboard-usage.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("main"), "main");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("-2,3"), "\"'-2,3\"");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-12_345), "-12,345");
    }

    #[test]
    fn days_are_bounded() {
        let q = |d: &str| DaysQuery {
            days: Some(d.into()),
        };
        assert_eq!(days_of(&DaysQuery::default()), 7);
        assert_eq!(days_of(&q("30")), 30);
        assert_eq!(days_of(&q("1000")), 90);
        assert_eq!(days_of(&q("0")), 1);
        assert_eq!(days_of(&q("soon")), 7);
    }

    #[test]
    fn a_day_is_never_negative() {
        let a = TokenCounts {
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 0,
            turns: 1,
            cost_micros: 300,
        };
        let b = TokenCounts {
            input_tokens: 12,
            cost_micros: 450,
            ..a
        };
        assert_eq!(minus(a, b).input_tokens, 0);
        assert_eq!(minus(b, a).input_tokens, 2);
        assert_eq!(minus(b, a).turns, 0);
        assert_eq!(minus(a, b).cost_micros, 0);
        assert_eq!(minus(b, a).cost_micros, 150);
    }

    #[test]
    fn costs_are_shown_and_exported_in_dollars() {
        assert_eq!(cost_cell(0), "—");
        assert_eq!(cost_cell(12_345), "$0.0123");
        assert_eq!(csv_usd(0), "0.000000");
        assert_eq!(csv_usd(23_400), "0.023400");
        assert_eq!(csv_usd(1_234_567), "1.234567");
    }
}
