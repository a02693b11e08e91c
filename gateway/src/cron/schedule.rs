//! When a job's slots fall, and which of the due ones run.
//!
//! A *slot* is one scheduled time of a job, identified by its UTC instant:
//! the store keys runs by (job, slot), so a slot runs at most once. This
//! module is pure: the clock comes in as `now`, and what the store
//! remembers as `anchor` (when the job was created) and `last_slot` (the
//! latest slot it recorded, whether it ran, was missed or was skipped).
//!
//! # Where slots fall
//! - `schedule`: the instants whose wall-clock time in the job's zone
//!   matches the cron pattern.
//! - `every`: `anchor + k·period` for k = 1, 2, …, where `anchor` is the
//!   job's creation instant as the store keeps it, cut to its second. The
//!   slots do not move when the gateway restarts, because the anchor does
//!   not.
//!
//! Slots of `schedule` and `every` are whole seconds, so a store keeping
//! milliseconds or seconds keys them alike.
//! - `at`: that instant, once.
//!
//! No timing has a slot at or before `anchor`: a job added today does not
//! owe yesterday's runs.
//!
//! # Daylight saving time
//! Each matching wall-clock time is at most one slot.
//! - **Fall-back** (a local hour happens twice): a matching time in the
//!   repeated hour is a slot at its *first* occurrence only; its second
//!   pass adds no slot, for every pattern (so `*/15 * * * *` has no slots
//!   in the second pass of the repeated hour; use `every` for an interval
//!   that does not follow the clock on the wall).
//! - **Spring-forward** (a local hour does not happen): what croner
//!   defines. A fixed-time pattern (one second, one minute and one hour,
//!   e.g. `30 2 * * *`) runs once at the first instant after the gap
//!   (03:00); a pattern with a list, range, step or wildcard in those
//!   fields has no slots in the gap.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Timelike as _, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::parse::{self, ActiveHours, format_duration};
use crate::config::{CronJobConfig, Misfire};

/// The most due slots one [`plan`] looks at. A longer backlog (the
/// gateway was down long for a frequent job) is settled over several
/// calls, each recording up to this many as missed; see [`Plan::next`].
pub const MAX_SCAN: usize = 10_000;

/// The largest `max_catch_up` honoured.
pub const MAX_CATCH_UP: u32 = 1_000;

/// The most times [`upcoming`] lists.
pub const MAX_UPCOMING: usize = 1_000;

/// Searches one [`Timing::next_after`] of a cron pattern may make while
/// stepping over first occurrences of a repeated hour that `t` has
/// already passed (a per-second pattern makes 3600 in an hour).
const MAX_OVERLAP_STEPS: usize = 100_000;

/// When a job's slots fall.
#[derive(Debug, Clone, PartialEq)]
pub enum Timing {
    /// Wall-clock times matching a cron pattern in a zone.
    Cron {
        /// The pattern.
        pattern: Cron,
        /// The zone whose clocks it reads.
        tz: Tz,
    },
    /// Whole periods after the anchor's second: `anchor + k·period`,
    /// k ≥ 1.
    Every(Duration),
    /// One instant.
    At(DateTime<Utc>),
}

impl Timing {
    /// The timing of a `[cron.jobs.<name>]`; `default_tz` is the zone when
    /// `tz` is not set (the machine's).
    pub fn from_config(job: &CronJobConfig, default_tz: Tz) -> Result<Self, String> {
        match (&job.schedule, &job.every, &job.at) {
            (Some(s), None, None) => Ok(Timing::Cron {
                pattern: parse::parse_cron(s)?,
                tz: zone(job, default_tz)?,
            }),
            (None, Some(e), None) => Ok(Timing::Every(parse::parse_every(e)?)),
            (None, None, Some(a)) => Ok(Timing::At(parse::parse_at(a)?)),
            (None, None, None) => {
                Err("the job has no time: set one of schedule, every or at".to_string())
            }
            _ => Err("the job has more than one of schedule, every and at: keep one".to_string()),
        }
    }

    /// The first slot strictly after `t` (and after `anchor`), or `None`
    /// when there is none (an `at` that has passed, a pattern that matches
    /// no later date).
    pub fn next_after(&self, t: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = t.max(anchor);
        match self {
            Timing::Cron { pattern, tz } => cron_next_after(pattern, *tz, t),
            Timing::Every(period) => every_next_after(*period, anchor, t),
            Timing::At(at) => (*at > t).then_some(*at),
        }
    }
}

/// The first instant after `t` whose wall-clock time in `tz` matches, at
/// its first occurrence. croner searches by wall-clock time and answers
/// the first occurrence of a repeated one, which is before `t` when `t`
/// is in the second pass: those are stepped over. The search starts from
/// the whole second of `t`, because croner keeps the fraction of its
/// start in what it finds: slots are whole seconds.
fn cron_next_after(pattern: &Cron, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut from = t.with_nanosecond(0)?.with_timezone(&tz);
    for _ in 0..MAX_OVERLAP_STEPS {
        let found = pattern.find_next_occurrence(&from, false).ok()?;
        let instant = found.with_timezone(&Utc);
        if instant > t {
            return Some(instant);
        }
        from = found;
    }
    None
}

/// The first `origin + k·period` after `t`, where `origin` is the whole
/// second of `anchor`: slots are whole seconds (with a period of whole
/// seconds), however precisely the store keeps the anchor.
fn every_next_after(
    period: Duration,
    anchor: DateTime<Utc>,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let period_ms = i64::try_from(period.as_millis()).ok().filter(|p| *p > 0)?;
    let origin = anchor.with_nanosecond(0)?;
    let elapsed_ms = (t - origin).num_milliseconds().max(0);
    let k = elapsed_ms / period_ms + 1;
    let offset = TimeDelta::try_milliseconds(k.checked_mul(period_ms)?)?;
    origin.checked_add_signed(offset)
}

/// The zone of a job: its `tz`, else `default_tz`.
pub fn zone(job: &CronJobConfig, default_tz: Tz) -> Result<Tz, String> {
    job.tz.as_deref().map_or(Ok(default_tz), parse::parse_tz)
}

/// What to do with due slots: the misfire policy and its limits, the
/// active hours and the zone they are read in.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Which of several due slots run.
    pub misfire: Misfire,
    /// A late slot runs only if it is at most this late; `None`: any.
    pub max_lateness: Option<Duration>,
    /// With `misfire = all`, at most this many slots run at once (1 to
    /// [`MAX_CATCH_UP`]).
    pub max_catch_up: u32,
    /// A slot at most this late is on time, not a catch-up: the
    /// scheduler's tick, so that a slot seen at the next tick still runs.
    pub grace: Duration,
    /// Slots outside these local hours are skipped; `None`: all hours.
    pub active_hours: Option<ActiveHours>,
    /// The zone the active hours are read in (the job's).
    pub tz: Tz,
}

impl Policy {
    /// The policy of a `[cron.jobs.<name>]`; `grace` is the scheduler's
    /// tick.
    pub fn from_config(
        job: &CronJobConfig,
        default_tz: Tz,
        grace: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            misfire: job.misfire,
            max_lateness: job
                .max_lateness
                .as_deref()
                .map(parse::parse_duration)
                .transpose()?,
            max_catch_up: job.max_catch_up.clamp(1, MAX_CATCH_UP),
            grace,
            active_hours: job
                .active_hours
                .as_deref()
                .map(parse::parse_active_hours)
                .transpose()?,
            tz: zone(job, default_tz)?,
        })
    }
}

/// Why a due slot did not run. [`fmt::Display`] is the sentence for the
/// run history, starting with its [`MissReason::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissReason {
    /// `misfire = skip`: it passed while the gateway was not running.
    NotRunning,
    /// `misfire = once`: a later slot was the one caught up.
    CaughtUpOnce,
    /// Later than `max_lateness`.
    TooLate {
        /// How late it was when seen.
        lateness: Duration,
        /// The job's `max_lateness`.
        max: Duration,
    },
    /// `misfire = all`: more were due than `max_catch_up`; later ones ran.
    BeyondCatchUp {
        /// The job's `max_catch_up`.
        max: u32,
    },
    /// The slot is outside the job's active hours.
    OutsideActiveHours(ActiveHours),
    /// The slot was late, and catching it up now would run outside the
    /// job's active hours.
    CatchUpOutsideActiveHours(ActiveHours),
    /// The job's previous run had not finished (decided by the caller,
    /// which knows what is running).
    StillRunning,
}

impl MissReason {
    /// The status recorded for the slot: `missed` or `skipped`.
    pub fn status(&self) -> &'static str {
        match self {
            MissReason::OutsideActiveHours(_) | MissReason::StillRunning => "skipped",
            _ => "missed",
        }
    }
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissReason::NotRunning => {
                f.write_str("missed: the gateway was not running (misfire = skip)")
            }
            MissReason::CaughtUpOnce => f.write_str("missed: caught up once (misfire = once)"),
            MissReason::TooLate { lateness, max } => write!(
                f,
                "missed: too late: {} > max_lateness {}",
                format_duration(*lateness),
                format_duration(*max)
            ),
            MissReason::BeyondCatchUp { max } => write!(
                f,
                "missed: more slots were due than max_catch_up = {max}; the latest ran (misfire = all)"
            ),
            MissReason::OutsideActiveHours(h) => write!(f, "skipped: outside active hours {h}"),
            MissReason::CatchUpOutsideActiveHours(h) => write!(
                f,
                "missed: catching it up now would run outside active hours {h}"
            ),
            MissReason::StillRunning => f.write_str("skipped: still running"),
        }
    }
}

/// What to do now with a job's due slots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Slots to run now, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Slots to record as missed or skipped, with why, oldest first.
    pub missed: Vec<(DateTime<Utc>, MissReason)>,
    /// The next slot not yet settled: normally the first after `now`.
    /// When a backlog was longer than [`MAX_SCAN`] it is at or before
    /// `now`, and the caller should plan again at once, after recording
    /// this plan. `None`: the job has no more slots (a one-shot that was
    /// settled).
    pub next: Option<DateTime<Utc>>,
}

impl Plan {
    /// The latest slot this plan settles: the `last_slot` to record.
    pub fn last_slot(&self) -> Option<DateTime<Utc>> {
        self.run
            .last()
            .copied()
            .max(self.missed.last().map(|(t, _)| *t))
    }
}

/// Settle a job's due slots: every slot in (`last_slot`, `now`], or in
/// (`anchor`, `now`] for a job not seen before.
///
/// Slots outside the active hours are skipped. Of the rest:
/// - `skip`: the latest runs if it is on time (at most `grace` late); the
///   others are missed.
/// - `once`: the latest runs if it is no later than `max_lateness`; the
///   others are missed.
/// - `all`: the latest `max_catch_up` of those no later than
///   `max_lateness` run; the others are missed.
///
/// A late slot chosen to run is missed instead when `now` is outside the
/// active hours, so that no catch-up runs at 3 a.m.
pub fn plan(
    timing: &Timing,
    anchor: DateTime<Utc>,
    last_slot: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Plan {
    let lower = last_slot.map_or(anchor, |l| l.max(anchor));
    let (due, backlog) = due_slots(timing, anchor, lower, now);
    // With more due than scanned, the latest few are held back for the
    // next call, which sees the slots that follow them.
    let keep = if backlog {
        match policy.misfire {
            Misfire::All => policy.max_catch_up.clamp(1, MAX_CATCH_UP) as usize,
            Misfire::Skip | Misfire::Once => 1,
        }
    } else {
        0
    };
    let (settle, held) = due.split_at(due.len().saturating_sub(keep));

    let judge = Judge::new(policy, now);
    let mut out = Plan::default();
    let mut in_hours = Vec::with_capacity(settle.len());
    for &slot in settle {
        match policy.active_hours {
            Some(h) if !h.contains(slot, policy.tz) => {
                out.missed.push((slot, MissReason::OutsideActiveHours(h)));
            }
            _ => in_hours.push(slot),
        }
    }
    let chosen = if backlog { 0 } else { judge.chosen(&in_hours) };
    let first_chosen = in_hours.len() - chosen;
    for (i, &slot) in in_hours.iter().enumerate() {
        if i < first_chosen {
            out.missed.push((slot, judge.reason(slot)));
            continue;
        }
        match policy.active_hours {
            Some(h) if !judge.on_time(slot) && !h.contains(now, policy.tz) => {
                out.missed
                    .push((slot, MissReason::CatchUpOutsideActiveHours(h)));
            }
            _ => out.run.push(slot),
        }
    }
    out.missed.sort_by_key(|(t, _)| *t);
    out.next = match held.first() {
        Some(&first) => Some(first),
        None => timing.next_after(now.max(lower), anchor),
    };
    out
}

/// The slots in (`lower`, `now`], oldest first, at most [`MAX_SCAN`];
/// true when more are due.
fn due_slots(
    timing: &Timing,
    anchor: DateTime<Utc>,
    lower: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, bool) {
    let mut due = Vec::new();
    let mut cursor = lower;
    while let Some(slot) = timing.next_after(cursor, anchor) {
        if slot > now {
            break;
        }
        if due.len() == MAX_SCAN {
            return (due, true);
        }
        due.push(slot);
        cursor = slot;
    }
    (due, false)
}

/// The policy applied at one `now`.
struct Judge {
    misfire: Misfire,
    now: DateTime<Utc>,
    grace: TimeDelta,
    max_lateness: Option<(TimeDelta, Duration)>,
    max_catch_up: u32,
}

impl Judge {
    fn new(policy: &Policy, now: DateTime<Utc>) -> Self {
        let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        Self {
            misfire: policy.misfire,
            now,
            grace: delta(policy.grace),
            max_lateness: policy.max_lateness.map(|d| (delta(d), d)),
            max_catch_up: policy.max_catch_up.clamp(1, MAX_CATCH_UP),
        }
    }

    fn on_time(&self, slot: DateTime<Utc>) -> bool {
        self.now - slot <= self.grace
    }

    fn late_ok(&self, slot: DateTime<Utc>) -> bool {
        self.on_time(slot)
            || self
                .max_lateness
                .is_none_or(|(max, _)| self.now - slot <= max)
    }

    /// How many of the latest in-hours slots run. Lateness grows with age,
    /// so those that may run are always the latest.
    fn chosen(&self, in_hours: &[DateTime<Utc>]) -> usize {
        let Some(&latest) = in_hours.last() else {
            return 0;
        };
        match self.misfire {
            Misfire::Skip => usize::from(self.on_time(latest)),
            Misfire::Once => usize::from(self.late_ok(latest)),
            Misfire::All => in_hours
                .iter()
                .rev()
                .take_while(|s| self.late_ok(**s))
                .take(self.max_catch_up as usize)
                .count(),
        }
    }

    /// Why an in-hours slot that was not chosen is missed.
    fn reason(&self, slot: DateTime<Utc>) -> MissReason {
        match (self.misfire, self.max_lateness) {
            (Misfire::Skip, _) => MissReason::NotRunning,
            (_, Some((_, max))) if !self.late_ok(slot) => MissReason::TooLate {
                lateness: (self.now - slot).to_std().unwrap_or_default(),
                max,
            },
            (Misfire::Once, _) => MissReason::CaughtUpOnce,
            (Misfire::All, _) => MissReason::BeyondCatchUp {
                max: self.max_catch_up,
            },
        }
    }
}

/// The next `n` slots after `from` (at most [`MAX_UPCOMING`]), for
/// `cron show`.
pub fn upcoming(
    timing: &Timing,
    anchor: DateTime<Utc>,
    from: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    std::iter::successors(timing.next_after(from, anchor), |t| {
        timing.next_after(*t, anchor)
    })
    .take(n.min(MAX_UPCOMING))
    .collect()
}

/// An instant on the clocks of `tz`, with its offset and the zone's name:
/// `2026-10-25 02:30:00 +02:00 (Europe/Berlin)`.
pub fn format_in_zone(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} ({})",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z"),
        tz.name()
    )
}

/// Whether a job that has failed `consecutive_failures` times in a row is
/// paused (`max_failures` below 1 counts as 1).
pub fn should_pause(consecutive_failures: u32, max_failures: u32) -> bool {
    consecutive_failures >= max_failures.max(1)
}
