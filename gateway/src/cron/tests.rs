//! The scheduling core on a simulated clock: slots across daylight saving
//! changes, downtimes under each misfire policy, active hours, one-shots
//! and restarts. No test sleeps: `now` is an argument.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone as _, Timelike as _, Utc};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::{Tz, UTC};

use super::parse::{parse_active_hours, parse_cron};
use super::schedule::{
    MAX_SCAN, MissReason, Plan, Policy, Timing, format_in_zone, plan, should_pause, upcoming,
};
use crate::config::{CronJobConfig, Misfire};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn mins(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

fn millis(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

fn cron(pattern: &str, tz: Tz) -> Timing {
    Timing::Cron {
        pattern: parse_cron(pattern).unwrap(),
        tz,
    }
}

/// A creation long before every test's dates, so that it cuts off nothing.
fn long_ago() -> DateTime<Utc> {
    utc(2020, 1, 1, 0, 0, 0)
}

/// The slots in (`from`, `to`].
fn slots(timing: &Timing, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    std::iter::successors(timing.next_after(from, long_ago()), |t| {
        timing.next_after(*t, long_ago())
    })
    .take_while(|t| *t <= to)
    .collect()
}

fn policy(misfire: Misfire) -> Policy {
    Policy {
        misfire,
        max_lateness: None,
        max_catch_up: 10,
        grace: Duration::from_secs(1),
        active_hours: None,
        tz: UTC,
    }
}

fn times(p: &Plan) -> Vec<DateTime<Utc>> {
    p.missed.iter().map(|(t, _)| *t).collect()
}

/// A gateway that stays up, ticking every `step` (its grace) from `from`
/// to `to`: the runs it starts. Nothing may be missed.
fn ticking(
    timing: &Timing,
    anchor: DateTime<Utc>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    step: TimeDelta,
) -> Vec<DateTime<Utc>> {
    let mut p = policy(Misfire::Once);
    p.grace = step.to_std().unwrap();
    let mut last = None;
    let mut runs = Vec::new();
    let mut now = from;
    while now <= to {
        let planned = plan(timing, anchor, last, now, &p);
        assert!(planned.missed.is_empty(), "at {now}: {:?}", planned.missed);
        runs.extend(planned.run.iter().copied());
        last = planned.last_slot().or(last);
        now += step;
    }
    assert!(
        runs.windows(2).all(|w| w[0] < w[1]),
        "a slot ran twice: {runs:?}"
    );
    runs
}

#[test]
fn fall_back_in_berlin_runs_a_daily_0230_once() {
    let job = cron("0 30 2 * * *", Berlin);
    let got = slots(
        &job,
        utc(2026, 10, 23, 12, 0, 0),
        utc(2026, 10, 26, 12, 0, 0),
    );
    assert_eq!(
        got,
        [
            utc(2026, 10, 24, 0, 30, 0),
            utc(2026, 10, 25, 0, 30, 0),
            utc(2026, 10, 26, 1, 30, 0),
        ]
    );
    let shown: Vec<String> = got.iter().map(|t| format_in_zone(*t, Berlin)).collect();
    assert_eq!(
        shown,
        [
            "2026-10-24 02:30:00 +02:00 (Europe/Berlin)",
            "2026-10-25 02:30:00 +02:00 (Europe/Berlin)",
            "2026-10-26 02:30:00 +01:00 (Europe/Berlin)",
        ]
    );
    // In the second pass of the repeated hour (02:00-02:59 CET, 01:00-01:59
    // UTC) the next slot is tomorrow's, not the 02:30 that already ran.
    for t in [
        utc(2026, 10, 25, 0, 30, 0),
        utc(2026, 10, 25, 1, 0, 0),
        utc(2026, 10, 25, 1, 29, 59),
        utc(2026, 10, 25, 1, 30, 0),
    ] {
        assert_eq!(
            job.next_after(t, long_ago()),
            Some(utc(2026, 10, 26, 1, 30, 0)),
            "after {t}"
        );
    }
    // A gateway ticking through the night runs it once...
    let night = (utc(2026, 10, 24, 22, 0, 0), utc(2026, 10, 25, 3, 0, 0));
    assert_eq!(
        ticking(&job, night.0, night, mins(1)),
        [utc(2026, 10, 25, 0, 30, 0)]
    );
    // ...and one restarted during the second 02:30 owes nothing.
    let restarted = plan(
        &job,
        long_ago(),
        Some(utc(2026, 10, 25, 0, 30, 0)),
        utc(2026, 10, 25, 1, 30, 0) + millis(500),
        &policy(Misfire::Once),
    );
    assert!(
        restarted.run.is_empty() && restarted.missed.is_empty(),
        "{restarted:?}"
    );
    assert_eq!(restarted.next, Some(utc(2026, 10, 26, 1, 30, 0)));
}

#[test]
fn fall_back_in_berlin_gives_each_quarter_hour_one_slot() {
    let job = cron("*/15 * * * *", Berlin);
    let got = slots(
        &job,
        utc(2026, 10, 24, 23, 30, 0),
        utc(2026, 10, 25, 2, 30, 0),
    );
    assert_eq!(
        got,
        [
            utc(2026, 10, 24, 23, 45, 0),
            utc(2026, 10, 25, 0, 0, 0),
            utc(2026, 10, 25, 0, 15, 0),
            utc(2026, 10, 25, 0, 30, 0),
            utc(2026, 10, 25, 0, 45, 0),
            // 01:00-01:59 UTC is the second pass of 02:00-02:59: no slots.
            utc(2026, 10, 25, 2, 0, 0),
            utc(2026, 10, 25, 2, 15, 0),
            utc(2026, 10, 25, 2, 30, 0),
        ]
    );
    assert_eq!(
        job.next_after(utc(2026, 10, 25, 1, 20, 0), long_ago()),
        Some(utc(2026, 10, 25, 2, 0, 0))
    );
    let night = (utc(2026, 10, 24, 23, 30, 0), utc(2026, 10, 25, 2, 30, 0));
    assert_eq!(ticking(&job, night.0, night, mins(1)), got);
}

#[test]
fn spring_forward_in_berlin_invents_no_slot() {
    // A fixed time in the skipped hour runs once, at the end of the gap
    // (croner's rule); other days it runs at 02:30.
    let daily = cron("30 2 * * *", Berlin);
    let got = slots(
        &daily,
        utc(2026, 3, 27, 12, 0, 0),
        utc(2026, 3, 30, 12, 0, 0),
    );
    assert_eq!(
        got,
        [
            utc(2026, 3, 28, 1, 30, 0),
            utc(2026, 3, 29, 1, 0, 0),
            utc(2026, 3, 30, 0, 30, 0),
        ]
    );
    assert_eq!(
        format_in_zone(got[1], Berlin),
        "2026-03-29 03:00:00 +02:00 (Europe/Berlin)"
    );
    let night = (utc(2026, 3, 28, 22, 0, 0), utc(2026, 3, 29, 3, 0, 0));
    assert_eq!(
        ticking(&daily, night.0, night, mins(1)),
        [utc(2026, 3, 29, 1, 0, 0)]
    );

    // Quarter hours that do not exist have no slots.
    let quarters = cron("*/15 * * * *", Berlin);
    let got = slots(
        &quarters,
        utc(2026, 3, 29, 0, 30, 0),
        utc(2026, 3, 29, 1, 30, 0),
    );
    assert_eq!(
        got,
        [
            utc(2026, 3, 29, 0, 45, 0),
            utc(2026, 3, 29, 1, 0, 0),
            utc(2026, 3, 29, 1, 15, 0),
            utc(2026, 3, 29, 1, 30, 0),
        ]
    );
    assert!(got.iter().all(|t| t.with_timezone(&Berlin).hour() != 2));
}

#[test]
fn new_york_changes_its_clocks_in_march_and_november() {
    let spring = cron("30 2 * * *", New_York);
    assert_eq!(
        slots(&spring, utc(2026, 3, 7, 0, 0, 0), utc(2026, 3, 9, 12, 0, 0)),
        [
            utc(2026, 3, 7, 7, 30, 0), // 02:30 EST
            utc(2026, 3, 8, 7, 0, 0),  // 03:00 EDT: 02:30 did not happen
            utc(2026, 3, 9, 6, 30, 0), // 02:30 EDT
        ]
    );
    let fall = cron("30 1 * * *", New_York);
    let got = slots(
        &fall,
        utc(2026, 10, 31, 0, 0, 0),
        utc(2026, 11, 2, 12, 0, 0),
    );
    assert_eq!(
        got,
        [
            utc(2026, 10, 31, 5, 30, 0), // 01:30 EDT
            utc(2026, 11, 1, 5, 30, 0),  // the first 01:30, EDT; not the second
            utc(2026, 11, 2, 6, 30, 0),  // 01:30 EST
        ]
    );
    assert_eq!(
        format_in_zone(got[1], New_York),
        "2026-11-01 01:30:00 -04:00 (America/New_York)"
    );
    assert_eq!(
        fall.next_after(utc(2026, 11, 1, 6, 0, 0), long_ago()),
        Some(utc(2026, 11, 2, 6, 30, 0))
    );
}

#[test]
fn every_slots_stay_put_across_restarts() {
    // Created at 12:00:00.250: slots fall at 12:15:00, 12:30:00, ...
    let second = utc(2026, 5, 1, 12, 0, 0);
    let created = second + millis(250);
    let every = Timing::Every(Duration::from_secs(15 * 60));
    assert_eq!(
        every.next_after(created, created),
        Some(second + mins(15)),
        "not at creation"
    );
    assert_eq!(
        every.next_after(created - mins(60), created),
        Some(second + mins(15))
    );
    // Whatever a restarted gateway asks from, and whether the store kept the
    // anchor to the millisecond or the second, the grid is the same.
    for from in [
        second + mins(15),
        second + mins(20) + millis(999),
        second + mins(30) - millis(1),
    ] {
        for anchor in [created, second] {
            assert_eq!(
                every.next_after(from, anchor),
                Some(second + mins(30)),
                "{from} {anchor}"
            );
        }
    }
    assert_eq!(
        upcoming(&every, created, second + mins(31), 2),
        [second + mins(45), second + mins(60)]
    );

    let p = policy(Misfire::Once);
    let first = plan(&every, created, None, second + mins(15) + millis(300), &p);
    assert_eq!(first.run, [second + mins(15)]);
    assert_eq!(first.next, Some(second + mins(30)));
    // Stopped until 13:20: at start, one catch-up, the latest slot.
    let after_stop = plan(&every, created, first.last_slot(), second + mins(80), &p);
    assert_eq!(after_stop.run, [second + mins(75)]);
    assert_eq!(
        times(&after_stop),
        [second + mins(30), second + mins(45), second + mins(60)]
    );
    assert!(
        after_stop
            .missed
            .iter()
            .all(|(_, why)| *why == MissReason::CaughtUpOnce)
    );
    // Restarted once more: nothing owed.
    let again = plan(
        &every,
        created,
        after_stop.last_slot(),
        second + mins(81),
        &p,
    );
    assert_eq!(
        again,
        Plan {
            run: vec![],
            missed: vec![],
            next: Some(second + mins(90)),
        }
    );
}

#[test]
fn cron_slots_are_whole_seconds_whatever_the_clock_reads() {
    let minutely = cron("* * * * *", Berlin);
    let minute = utc(2026, 6, 1, 10, 0, 0);
    for from in [
        minute - millis(1),
        minute - millis(700),
        minute - TimeDelta::seconds(59),
    ] {
        assert_eq!(
            minutely.next_after(from, long_ago()),
            Some(minute),
            "{from}"
        );
    }
    assert_eq!(
        minutely.next_after(minute + millis(300), minute + millis(300)),
        Some(minute + mins(1))
    );
}

#[test]
fn the_three_misfire_policies_after_a_downtime() {
    let hourly = cron("0 * * * *", UTC);
    let h = |hour| utc(2026, 6, 1, hour, 0, 0);
    let last = Some(h(8));
    let now = h(12) + mins(30);
    let run = |p: &Policy| plan(&hourly, long_ago(), last, now, p);

    let skip = run(&policy(Misfire::Skip));
    assert!(skip.run.is_empty());
    assert_eq!(times(&skip), [h(9), h(10), h(11), h(12)]);
    assert_eq!(
        skip.missed[0].1.to_string(),
        "missed: the gateway was not running (misfire = skip)"
    );
    assert_eq!(skip.next, Some(h(13)));
    let on_time = plan(
        &hourly,
        long_ago(),
        last,
        h(12) + millis(500),
        &policy(Misfire::Skip),
    );
    assert_eq!(on_time.run, [h(12)]);
    assert_eq!(times(&on_time), [h(9), h(10), h(11)]);

    let once = run(&policy(Misfire::Once));
    assert_eq!(once.run, [h(12)]);
    assert_eq!(times(&once), [h(9), h(10), h(11)]);
    assert_eq!(
        once.missed[0].1.to_string(),
        "missed: caught up once (misfire = once)"
    );
    assert_eq!(once.last_slot(), Some(h(12)));

    let mut all = policy(Misfire::All);
    assert_eq!(run(&all).run, [h(9), h(10), h(11), h(12)]);
    all.max_catch_up = 2;
    let capped = run(&all);
    assert_eq!(capped.run, [h(11), h(12)]);
    assert_eq!(times(&capped), [h(9), h(10)]);
    assert_eq!(capped.missed[0].1, MissReason::BeyondCatchUp { max: 2 });
    assert_eq!(
        capped.missed[0].1.to_string(),
        "missed: more slots were due than max_catch_up = 2; the latest ran (misfire = all)"
    );
}

#[test]
fn max_lateness_bounds_every_catch_up() {
    let hourly = cron("0 * * * *", UTC);
    let h = |hour| utc(2026, 6, 1, hour, 0, 0);
    let run = |p: &Policy| plan(&hourly, long_ago(), Some(h(8)), h(12) + mins(30), p);

    let mut once = policy(Misfire::Once);
    once.max_lateness = Some(Duration::from_secs(10 * 60));
    let late = run(&once);
    assert!(late.run.is_empty(), "{late:?}");
    assert_eq!(times(&late), [h(9), h(10), h(11), h(12)]);
    assert_eq!(
        late.missed[3].1.to_string(),
        "missed: too late: 30m > max_lateness 10m"
    );
    assert_eq!(
        late.missed[0].1.to_string(),
        "missed: too late: 3h30m > max_lateness 10m"
    );
    once.max_lateness = Some(Duration::from_secs(3600));
    assert_eq!(run(&once).run, [h(12)]);
    // A slot seen on time runs whatever max_lateness says.
    once.max_lateness = Some(Duration::ZERO);
    let tick = plan(&hourly, long_ago(), Some(h(11)), h(12) + millis(900), &once);
    assert_eq!(tick.run, [h(12)]);

    let mut all = policy(Misfire::All);
    all.max_lateness = Some(Duration::from_secs(2 * 3600));
    let p = run(&all);
    assert_eq!(p.run, [h(11), h(12)]);
    assert_eq!(times(&p), [h(9), h(10)]);
    assert!(
        p.missed
            .iter()
            .all(|(_, why)| matches!(why, MissReason::TooLate { .. }))
    );
}

#[test]
fn a_new_job_owes_nothing_from_before_it_was_created() {
    let hourly = cron("0 * * * *", UTC);
    let created = utc(2026, 6, 1, 10, 10, 0);
    let p = plan(
        &hourly,
        created,
        None,
        created + mins(30),
        &policy(Misfire::All),
    );
    assert!(p.run.is_empty() && p.missed.is_empty(), "{p:?}");
    assert_eq!(p.next, Some(utc(2026, 6, 1, 11, 0, 0)));
    let created = utc(2026, 6, 1, 9, 59, 59);
    let p = plan(
        &hourly,
        created,
        None,
        utc(2026, 6, 1, 10, 0, 0) + millis(400),
        &policy(Misfire::Once),
    );
    assert_eq!(p.run, [utc(2026, 6, 1, 10, 0, 0)]);
}

#[test]
fn a_one_shot_runs_once() {
    let at = utc(2026, 12, 24, 8, 0, 0);
    let job = Timing::At(at);
    let created = utc(2026, 12, 1, 0, 0, 0);
    let once = policy(Misfire::Once);
    let before = plan(&job, created, None, at - mins(60), &once);
    assert!(before.run.is_empty());
    assert_eq!(before.next, Some(at));
    let ran = plan(&job, created, None, at + millis(200), &once);
    assert_eq!(ran.run, [at]);
    assert_eq!(ran.next, None, "no more slots: the job can be disabled");
    let again = plan(&job, created, ran.last_slot(), at + mins(60), &once);
    assert_eq!(again, Plan::default());
    // The gateway was down at the time: `once` catches it up, `skip` records
    // it missed.
    assert_eq!(plan(&job, created, None, at + mins(180), &once).run, [at]);
    let skipped = plan(&job, created, None, at + mins(180), &policy(Misfire::Skip));
    assert_eq!(skipped.missed, [(at, MissReason::NotRunning)]);
    assert_eq!(skipped.next, None);
    // A time that had passed when the job was created never runs.
    assert_eq!(
        plan(&job, at + mins(1), None, at + mins(2), &once),
        Plan::default()
    );
}

#[test]
fn slots_outside_active_hours_are_skipped() {
    let hourly = cron("0 * * * *", Berlin);
    let mut p = policy(Misfire::Once);
    p.active_hours = Some(parse_active_hours("08:00-22:00").unwrap());
    p.tz = Berlin;
    // Down from 21:00 to 09:00 Berlin time (CEST, UTC+2).
    let last = Some(utc(2026, 6, 1, 19, 0, 0));
    let now = utc(2026, 6, 2, 7, 0, 0) + millis(500);
    let planned = plan(&hourly, long_ago(), last, now, &p);
    assert_eq!(planned.run, [utc(2026, 6, 2, 7, 0, 0)], "09:00 on time");
    let (skipped, missed): (Vec<_>, Vec<_>) = planned
        .missed
        .iter()
        .partition(|(_, why)| why.status() == "skipped");
    assert_eq!(skipped.len(), 10, "22:00 to 07:00: {skipped:?}");
    assert_eq!(skipped[0].0, utc(2026, 6, 1, 20, 0, 0));
    assert_eq!(
        skipped[0].1.to_string(),
        "skipped: outside active hours 08:00-22:00"
    );
    assert_eq!(
        missed,
        [&(utc(2026, 6, 2, 6, 0, 0), MissReason::CaughtUpOnce)],
        "08:00"
    );
}

#[test]
fn active_hours_may_wrap_past_midnight() {
    let hourly = cron("0 * * * *", UTC);
    let mut p = policy(Misfire::All);
    p.active_hours = Some(parse_active_hours("22:00-06:00").unwrap());
    let h = |d, hour| utc(2026, 6, d, hour, 0, 0);
    let planned = plan(&hourly, long_ago(), Some(h(1, 20)), h(2, 5) + mins(30), &p);
    assert_eq!(
        planned.run,
        [
            h(1, 22),
            h(1, 23),
            h(2, 0),
            h(2, 1),
            h(2, 2),
            h(2, 3),
            h(2, 4),
            h(2, 5)
        ]
    );
    assert_eq!(
        planned.missed,
        [(
            h(1, 21),
            MissReason::OutsideActiveHours(p.active_hours.unwrap())
        )]
    );
}

#[test]
fn no_catch_up_runs_outside_active_hours() {
    let daily = cron("45 21 * * *", UTC);
    let mut p = policy(Misfire::Once);
    p.active_hours = Some(parse_active_hours("08:00-22:00").unwrap());
    let slot = utc(2026, 6, 2, 21, 45, 0);
    let last = Some(utc(2026, 6, 1, 21, 45, 0));
    let late = plan(&daily, long_ago(), last, utc(2026, 6, 2, 23, 30, 0), &p);
    assert!(late.run.is_empty());
    assert_eq!(
        late.missed[0].1.to_string(),
        "missed: catching it up now would run outside active hours 08:00-22:00"
    );
    assert_eq!(
        plan(&daily, long_ago(), last, slot + millis(500), &p).run,
        [slot]
    );
}

#[test]
fn a_clock_that_went_back_repeats_nothing() {
    let hourly = cron("0 * * * *", UTC);
    let p = plan(
        &hourly,
        long_ago(),
        Some(utc(2026, 6, 1, 12, 0, 0)),
        utc(2026, 6, 1, 11, 30, 0),
        &policy(Misfire::All),
    );
    assert!(p.run.is_empty() && p.missed.is_empty());
    assert_eq!(p.next, Some(utc(2026, 6, 1, 13, 0, 0)));
}

/// Plan until nothing is left to settle: (runs, missed count, calls).
fn settle(
    timing: &Timing,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
    p: &Policy,
) -> (Vec<DateTime<Utc>>, usize, usize) {
    let (mut runs, mut missed, mut last) = (Vec::new(), 0, None);
    for calls in 1..100 {
        let planned = plan(timing, anchor, last, now, p);
        assert!(planned.run.len() + planned.missed.len() <= MAX_SCAN);
        runs.extend(planned.run.iter().copied());
        missed += planned.missed.len();
        last = planned.last_slot().or(last);
        if planned.next.is_none_or(|n| n > now) {
            return (runs, missed, calls);
        }
    }
    panic!("the backlog was not settled in 100 calls");
}

#[test]
fn a_long_backlog_is_settled_in_bounded_steps() {
    let created = utc(2026, 6, 1, 0, 0, 0);
    let every = Timing::Every(Duration::from_secs(1));
    let day = 86_400;
    let now = created + TimeDelta::seconds(day) + millis(500);
    let last = created + TimeDelta::seconds(day);

    let (runs, missed, calls) = settle(&every, created, now, &policy(Misfire::Once));
    assert_eq!(runs, [last]);
    assert_eq!(missed, 86_399);
    assert!(calls > 1, "more than one call: {calls}");

    let mut all = policy(Misfire::All);
    all.max_catch_up = 3;
    let (runs, missed, _) = settle(&every, created, now, &all);
    assert_eq!(
        runs,
        [
            last - TimeDelta::seconds(2),
            last - TimeDelta::seconds(1),
            last
        ]
    );
    assert_eq!(missed, 86_397);

    let (runs, _, _) = settle(&every, created, now, &policy(Misfire::Skip));
    assert_eq!(runs, [last]);
}

#[test]
fn upcoming_lists_the_next_runs_in_the_jobs_zone() {
    let morning = cron("0 30 7 * * Mon-Fri", Berlin);
    // From Friday 23 October 2026, 14:00 in Berlin: Monday to Friday next
    // week, after the change to winter time.
    let next = upcoming(&morning, long_ago(), utc(2026, 10, 23, 12, 0, 0), 5);
    let shown: Vec<String> = next.iter().map(|t| format_in_zone(*t, Berlin)).collect();
    assert_eq!(
        shown,
        [
            "2026-10-26 07:30:00 +01:00 (Europe/Berlin)",
            "2026-10-27 07:30:00 +01:00 (Europe/Berlin)",
            "2026-10-28 07:30:00 +01:00 (Europe/Berlin)",
            "2026-10-29 07:30:00 +01:00 (Europe/Berlin)",
            "2026-10-30 07:30:00 +01:00 (Europe/Berlin)",
        ]
    );
    assert_eq!(
        upcoming(
            &Timing::At(utc(2026, 1, 1, 0, 0, 0)),
            long_ago(),
            long_ago(),
            5
        )
        .len(),
        1
    );
}

#[test]
fn timings_and_policies_come_from_the_config() {
    let mut job = CronJobConfig::new("Give me today's briefing.");
    assert!(
        Timing::from_config(&job, UTC)
            .unwrap_err()
            .contains("has no time")
    );
    job.schedule = Some("0 30 7 * * Mon-Fri".into());
    let t = Timing::from_config(&job, New_York).unwrap();
    assert!(
        matches!(&t, Timing::Cron { tz, .. } if *tz == New_York),
        "the default zone"
    );
    job.tz = Some("Europe/Berlin".into());
    let t = Timing::from_config(&job, New_York).unwrap();
    assert!(matches!(&t, Timing::Cron { tz, .. } if *tz == Berlin));
    job.every = Some("15m".into());
    assert!(
        Timing::from_config(&job, UTC)
            .unwrap_err()
            .contains("more than one")
    );
    job.schedule = None;
    assert_eq!(
        Timing::from_config(&job, UTC).unwrap(),
        Timing::Every(Duration::from_secs(900))
    );

    job.misfire = Misfire::All;
    job.max_lateness = Some("2h".into());
    job.active_hours = Some("08:00-22:00".into());
    job.max_catch_up = 5_000;
    let p = Policy::from_config(&job, UTC, Duration::from_secs(1)).unwrap();
    assert_eq!(p.misfire, Misfire::All);
    assert_eq!(p.max_lateness, Some(Duration::from_secs(7200)));
    assert_eq!(p.max_catch_up, 1_000, "clamped");
    assert_eq!(p.tz, Berlin);
    assert_eq!(
        p.active_hours.map(|h| h.to_string()).as_deref(),
        Some("08:00-22:00")
    );
    job.tz = Some("Mars/Olympus".into());
    assert!(
        Policy::from_config(&job, UTC, Duration::from_secs(1))
            .unwrap_err()
            .contains("is not a time zone")
    );
}

#[test]
fn failures_in_a_row_pause_a_job() {
    assert!(!should_pause(4, 5));
    assert!(should_pause(5, 5));
    assert!(should_pause(6, 5));
    assert!(!should_pause(0, 0), "0 counts as 1");
    assert!(should_pause(1, 0));
}

#[test]
fn a_run_still_going_skips_the_slot() {
    let why = MissReason::StillRunning;
    assert_eq!(why.status(), "skipped");
    assert_eq!(why.to_string(), "skipped: still running");
    assert_eq!(MissReason::CaughtUpOnce.status(), "missed");
}
