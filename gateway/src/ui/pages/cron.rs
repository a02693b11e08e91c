//! **Cron**: the scheduler's jobs (when each runs, its next slot, how its
//! last run went, whether it is paused and why) with **Run now**,
//! **Pause** and **Resume**, and one job's next 5 run times and run
//! history. Acts through the scheduler that `/api/cron` and
//! `switchboard cron` use.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::TimeZone as _;
use chrono_tz::Tz;
use serde::Deserialize;

use switchboard_memory::CronRunRecord;

use super::ago;
use crate::cron::parse::parse_tz;
use crate::cron::runner::JobView;
use crate::http::AppState;
use crate::ui::{Flash, Layout, Signed, check_csrf, done, failed, render, urlencode};

/// Past runs shown of one job (the latest).
const HISTORY: u32 = 50;

/// Why there is nothing to act on without the scheduler.
const NO_SCHEDULER: &str =
    "the scheduler is not running in this gateway, so there is no job to show or act on";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/cron", get(list))
        .route("/cron/{name}", get(show))
        .route("/cron/{name}/run", post(run))
        .route("/cron/{name}/pause", post(pause))
        .route("/cron/{name}/resume", post(resume))
}

/// One job, as the list and its own page show it.
struct JobRow {
    name: String,
    /// `/cron/<name>`: its page, and the forms' address without the verb.
    path: String,
    /// `active`, `paused`, `disabled` or `running`.
    state: &'static str,
    badge: &'static str,
    /// Whether it is paused (so the form is Resume, not Pause).
    paused: bool,
    paused_reason: Option<String>,
    /// When it runs, as configured.
    when: String,
    tz: String,
    agent: String,
    /// Whether it is defined in the config (else added at run time).
    from_config: bool,
    next: String,
    last: Option<LastRun>,
    deliver: String,
    failures: i64,
}

/// The latest run of a job.
struct LastRun {
    status: String,
    badge: &'static str,
    /// "5 min ago".
    ago: String,
    /// Its slot in the job's zone.
    at: String,
}

/// One past run.
struct RunRow {
    slot: String,
    status: String,
    badge: &'static str,
    reason: String,
    finished: String,
}

#[derive(Template)]
#[template(path = "cron.html")]
struct CronPage {
    layout: Layout,
    /// Whether the scheduler runs in this gateway.
    scheduler: bool,
    jobs: Vec<JobRow>,
}

#[derive(Template)]
#[template(path = "cron_job.html")]
struct JobPage {
    layout: Layout,
    job: JobRow,
    /// The next run times, in the job's zone.
    upcoming: Vec<String>,
    /// Why the upcoming times do not run yet (paused, disabled).
    upcoming_note: Option<&'static str>,
    runs: Vec<RunRow>,
    /// Only the latest runs are shown.
    cut: bool,
}

/// The page of job `name`.
fn job_path(name: &str) -> String {
    format!("/cron/{}", urlencode(name))
}

fn no_job(name: &str) -> String {
    format!("there is no job {name} (was it removed?); the list below shows the jobs there are")
}

/// The job's zone (UTC when it does not read).
fn zone(j: &JobView) -> Tz {
    parse_tz(&j.tz).unwrap_or(chrono_tz::UTC)
}

/// A moment (ms since the epoch) on the clocks of `tz`, with its offset.
fn at(ms: i64, tz: Tz) -> String {
    chrono::Utc.timestamp_millis_opt(ms).single().map_or_else(
        || "—".into(),
        |t| {
            t.with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        },
    )
}

/// The state a job is shown in, and its badge.
fn state_of(j: &JobView) -> (&'static str, &'static str) {
    if j.running {
        ("running", "ok")
    } else if !j.enabled {
        ("disabled", "idle")
    } else if j.paused {
        ("paused", "warn")
    } else {
        ("active", "ok")
    }
}

/// The badge of a run's status.
fn status_badge(status: &str) -> &'static str {
    match status {
        "ok" => "ok",
        "failed" => "bad",
        "running" | "missed" => "warn",
        _ => "idle",
    }
}

/// The next slot, or why there is none.
fn next_of(j: &JobView) -> String {
    if !j.enabled {
        "none: disabled in the config".into()
    } else if j.paused {
        "none while paused".into()
    } else {
        j.next
            .clone()
            .unwrap_or_else(|| "none: no more slots".into())
    }
}

fn job_row(j: &JobView) -> JobRow {
    let tz = zone(j);
    let (state, badge) = state_of(j);
    JobRow {
        name: j.name.clone(),
        path: job_path(&j.name),
        state,
        badge,
        paused: j.paused,
        paused_reason: j.paused_reason.clone().filter(|_| j.paused),
        when: j.when.clone(),
        tz: j.tz.clone(),
        agent: j.agent.clone(),
        from_config: j.source == "config",
        next: next_of(j),
        last: j.last.as_ref().map(|r| LastRun {
            status: r.status.clone(),
            badge: status_badge(&r.status),
            ago: ago(Some(r.slot)),
            at: at(r.slot, tz),
        }),
        deliver: j.deliver.clone(),
        failures: j.failures,
    }
}

fn run_row(r: &CronRunRecord, tz: Tz) -> RunRow {
    RunRow {
        slot: at(r.slot, tz),
        status: r.status.clone(),
        badge: status_badge(&r.status),
        reason: r.reason.clone().unwrap_or_else(|| "—".into()),
        finished: r.finished_at.map_or_else(|| "—".into(), |t| ago(Some(t))),
    }
}

/// `GET /cron`.
async fn list(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
) -> Response {
    let mut layout = Layout::new("Cron", &signed, &flash);
    let mut jobs = Vec::new();
    if let Some(cron) = state.cron.clone() {
        match cron.list().await {
            Ok(views) => jobs = views.iter().map(job_row).collect(),
            Err(e) => {
                layout.error = Some(format!(
                    "The jobs could not be read: {e}. Reload to try again; the gateway's log has the details."
                ));
            }
        }
    }
    render(&CronPage {
        layout,
        scheduler: state.cron.is_some(),
        jobs,
    })
}

/// `GET /cron/{name}`.
async fn show(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Query(flash): Query<Flash>,
    Path(name): Path<String>,
) -> Response {
    let Some(cron) = state.cron.clone() else {
        return failed("/cron", NO_SCHEDULER);
    };
    let (view, upcoming, runs) = match cron.show(&name, HISTORY).await {
        Ok(Some(shown)) => shown,
        Ok(None) => return failed("/cron", &no_job(&name)),
        Err(e) => {
            return failed("/cron", &format!("the job {name} could not be read: {e}"));
        }
    };
    let tz = zone(&view);
    let upcoming_note = if !view.enabled {
        Some("The job is disabled in the config: these times run only once it is enabled there.")
    } else if view.paused {
        Some("The job is paused: these times run only once it is resumed.")
    } else {
        None
    };
    render(&JobPage {
        layout: Layout::new("Cron", &signed, &flash),
        job: job_row(&view),
        upcoming,
        upcoming_note,
        cut: runs.len() >= HISTORY as usize,
        runs: runs.iter().map(|r| run_row(r, tz)).collect(),
    })
}

/// The form of **Run now**, **Pause** and **Resume**.
#[derive(Debug, Deserialize)]
struct ActionForm {
    /// The session's CSRF token.
    #[serde(default)]
    csrf: String,
    /// `job`: back to the job's page; else back to the list.
    #[serde(default)]
    back: String,
}

impl ActionForm {
    /// Where the action redirects to.
    fn back(&self, name: &str) -> String {
        if self.back == "job" {
            job_path(name)
        } else {
            "/cron".into()
        }
    }
}

/// `POST /cron/{name}/run`: a run of its own, now.
async fn run(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(refused) = check_csrf(&signed, &form.csrf) {
        return refused;
    }
    let Some(cron) = state.cron.clone() else {
        return failed("/cron", NO_SCHEDULER);
    };
    let back = form.back(&name);
    match cron.run_now(&name).await {
        Ok(Some(_)) => {
            tracing::info!(job = %name, "a job was started from the control UI");
            done(
                &back,
                &format!("Started {name} now; how it went shows in its run history when it ends."),
            )
        }
        Ok(None) => failed("/cron", &no_job(&name)),
        Err(why) => failed(&back, &format!("{name} was not started: {why}")),
    }
}

async fn set_paused(
    state: &AppState,
    signed: &Signed,
    name: &str,
    form: &ActionForm,
    paused: bool,
) -> Response {
    if let Err(refused) = check_csrf(signed, &form.csrf) {
        return refused;
    }
    let Some(cron) = state.cron.clone() else {
        return failed("/cron", NO_SCHEDULER);
    };
    let back = form.back(name);
    match cron.set_paused(name, paused).await {
        Ok(true) => {
            tracing::info!(job = %name, paused, "a job was paused or resumed from the control UI");
            if paused {
                done(
                    &back,
                    &format!("Paused {name}: its slots pass without running until you resume it."),
                )
            } else {
                done(
                    &back,
                    &format!(
                        "Resumed {name}: it runs from its next slot on (the slots passed while it was paused do not run)."
                    ),
                )
            }
        }
        Ok(false) => failed("/cron", &no_job(name)),
        Err(e) => failed(
            &back,
            &format!(
                "{name} could not be {}: {e}",
                if paused { "paused" } else { "resumed" }
            ),
        ),
    }
}

/// `POST /cron/{name}/pause`.
async fn pause(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    set_paused(&state, &signed, &name, &form, true).await
}

/// `POST /cron/{name}/resume`.
async fn resume(
    State(state): State<Arc<AppState>>,
    signed: Signed,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    set_paused(&state, &signed, &name, &form, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> JobView {
        JobView {
            name: "tick".into(),
            source: "config".into(),
            when: "every 1h".into(),
            tz: "Europe/Berlin".into(),
            agent: "main".into(),
            deliver: "none".into(),
            enabled: true,
            paused: false,
            paused_reason: None,
            failures: 0,
            running: false,
            next_ms: Some(0),
            next: Some("1970-01-01 01:00:00 +01:00 (Europe/Berlin)".into()),
            last: None,
        }
    }

    #[test]
    fn a_job_shows_its_state_and_next_run() {
        let j = view();
        assert_eq!(state_of(&j).0, "active");
        assert_eq!(next_of(&j), "1970-01-01 01:00:00 +01:00 (Europe/Berlin)");
        let paused = JobView {
            paused: true,
            paused_reason: Some("paused by the operator".into()),
            next: None,
            ..view()
        };
        assert_eq!(state_of(&paused).0, "paused");
        assert_eq!(next_of(&paused), "none while paused");
        let row = job_row(&paused);
        assert_eq!(row.paused_reason.as_deref(), Some("paused by the operator"));
        assert_eq!(
            state_of(&JobView {
                enabled: false,
                ..view()
            })
            .0,
            "disabled"
        );
        assert_eq!(
            state_of(&JobView {
                running: true,
                ..paused
            })
            .0,
            "running"
        );
    }

    #[test]
    fn slots_are_shown_in_the_jobs_zone() {
        assert_eq!(at(0, zone(&view())), "1970-01-01 01:00:00 +01:00");
        assert_eq!(job_path("a b"), "/cron/a%20b");
    }

    #[test]
    fn the_page_escapes_what_a_job_says() {
        let j = JobView {
            paused: true,
            paused_reason: Some("<script>alert(1)</script>".into()),
            ..view()
        };
        let page = CronPage {
            layout: Layout::new(
                "Cron",
                &Signed {
                    id: String::new(),
                    csrf: "t".into(),
                },
                &Flash::default(),
            ),
            scheduler: true,
            jobs: vec![job_row(&j)],
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)"),
            "shown, escaped: {html}"
        );
    }
}
