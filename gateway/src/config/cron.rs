//! `[cron.jobs.<name>]` and `[hooks.<name>]`: the turns the assistant
//! starts itself, at a time or when another system posts to it.
//!
//! The values stay strings as written; [`crate::cron`] parses them, and
//! `problems` reports what it cannot parse with the key it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cron::parse;
use crate::cron::schedule::MAX_CATCH_UP;
use crate::cron::template;

/// The largest `max_body_bytes` of a hook: 16 MiB.
pub const MAX_HOOK_BODY_BYTES: usize = 16 * 1024 * 1024;

/// `[cron]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CronConfig {
    /// `[cron.jobs.<name>]`: the jobs of the file (jobs added at run time
    /// are kept in the store). Default: none.
    pub jobs: BTreeMap<String, CronJobConfig>,
    /// Offer agents the `schedule` tool, so they can set reminders and
    /// checks that answer in the conversation they were asked in (a
    /// dangerous tool: approvals gate it by default, and an agent needs it
    /// in its profile or `tools.allow`). Default false.
    pub agent_jobs: bool,
    /// At most this many jobs the agents may schedule an hour. Default 3.
    pub agent_jobs_per_hour: u32,
}

impl Default for CronConfig {
    fn default() -> Self {
        Self {
            jobs: BTreeMap::new(),
            agent_jobs: false,
            agent_jobs_per_hour: 3,
        }
    }
}

/// What becomes of slots that passed while the gateway was not running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Misfire {
    /// They are all missed; only a slot seen on time runs.
    Skip,
    /// The latest runs once, if not later than `max_lateness` (the
    /// default).
    #[default]
    Once,
    /// The latest `max_catch_up` run, each no later than `max_lateness`.
    All,
}

/// `[cron.jobs.<name>]`: one job. Exactly one of `schedule`, `every` and
/// `at` says when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronJobConfig {
    /// A cron pattern read on the clocks of `tz`, seconds optional:
    /// `"0 30 7 * * Mon-Fri"` (07:30:00 on weekdays), `"*/15 * * * *"`.
    /// In the repeated hour of a fall-back a time runs once, at its first
    /// occurrence. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A period of at least a second: `"15m"`, `"2s"`, `"1h30m"`. Slots
    /// fall at the job's creation plus whole periods, whatever the clocks
    /// on the wall do. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// One time, RFC 3339 with its offset: `"2026-12-24T09:00:00+01:00"`.
    /// Once it has run (or was missed) the job has no more slots.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The IANA zone `schedule` and `active_hours` are read in, e.g.
    /// `"Europe/Berlin"`. Default: the machine's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The agent that runs the job (a `[agents.<name>]`). Default: the
    /// default agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// What the agent is asked at each run, e.g. `"Give me today's
    /// briefing."`. Required.
    pub message: String,
    /// Where the answer goes: `"channel:account:chat"` or
    /// `"channel:account:chat:thread"` (e.g. `"telegram:main:123456789"`),
    /// an http(s) URL the answer is POSTed to as JSON, or `"none"` (kept in
    /// the session and the run history). Default `"none"`.
    #[serde(default = "default_deliver")]
    pub deliver: String,
    /// The session the run is in: `"isolated"`, the job's own session
    /// `agent:<agent>:cron:<job>`, or a session key (such as a person's DM
    /// session, so the answer has their context). Default `"isolated"`.
    #[serde(default = "default_session")]
    pub session: String,
    /// Slots that passed while the gateway was not running: `skip` (all
    /// missed), `once` (the latest runs) or `all` (the latest
    /// `max_catch_up` run). Each missed slot is recorded with why.
    /// Default `once`.
    #[serde(default)]
    pub misfire: Misfire,
    /// How late a slot may be and still run, e.g. `"2h"`; later ones are
    /// recorded missed. Default: none, any lateness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lateness: Option<String>,
    /// With `misfire = "all"`: the most slots caught up at once, the latest
    /// ones (1 to 1000). Default 10.
    #[serde(default = "default_max_catch_up")]
    pub max_catch_up: u32,
    /// The local hours in `tz` slots may run in, `"08:00-22:00"`, or across
    /// midnight, `"22:00-06:00"` (start included, end excluded); slots
    /// outside are recorded skipped. Default: all hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_hours: Option<String>,
    /// Failed runs in a row after which the job is paused until
    /// `switchboard cron resume`. Default 5.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Whether the job runs at all. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_deliver() -> String {
    "none".into()
}

fn default_session() -> String {
    "isolated".into()
}

fn default_max_catch_up() -> u32 {
    10
}

fn default_max_failures() -> u32 {
    5
}

fn default_true() -> bool {
    true
}

impl CronJobConfig {
    /// A job asking `message`, with every default and no time yet (set
    /// `schedule`, `every` or `at`).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            schedule: None,
            every: None,
            at: None,
            tz: None,
            agent: None,
            message: message.into(),
            deliver: default_deliver(),
            session: default_session(),
            misfire: Misfire::default(),
            max_lateness: None,
            max_catch_up: default_max_catch_up(),
            active_hours: None,
            max_failures: default_max_failures(),
            enabled: true,
        }
    }

    /// What is wrong with the job, as (key within the job, what to do).
    /// Whether `agent` and the channel of `deliver` exist is for the caller,
    /// who has the whole config.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let set: Vec<&'static str> = [
            ("schedule", self.schedule.is_some()),
            ("every", self.every.is_some()),
            ("at", self.at.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, is_set)| is_set.then_some(key))
        .collect();
        if set.is_empty() {
            out.push((
                "schedule",
                "the job has no time: set one of schedule (a cron pattern, e.g. \"0 30 7 * * Mon-Fri\"), every (e.g. \"15m\") or at (e.g. \"2026-12-24T09:00:00+01:00\")".to_string(),
            ));
        }
        for extra in set.iter().skip(1) {
            out.push((
                *extra,
                format!(
                    "{} and {extra} are both set: a job has one of schedule, every and at; keep one",
                    set[0]
                ),
            ));
        }
        check(
            &mut out,
            "schedule",
            self.schedule.as_deref(),
            parse::parse_cron,
        );
        check(&mut out, "every", self.every.as_deref(), parse::parse_every);
        check(&mut out, "at", self.at.as_deref(), parse::parse_at);
        check(&mut out, "tz", self.tz.as_deref(), parse::parse_tz);
        check(
            &mut out,
            "deliver",
            Some(self.deliver.as_str()),
            parse::parse_deliver,
        );
        check(
            &mut out,
            "max_lateness",
            self.max_lateness.as_deref(),
            parse::parse_duration,
        );
        check(
            &mut out,
            "active_hours",
            self.active_hours.as_deref(),
            parse::parse_active_hours,
        );
        if let Some(why) = session_problem(&self.session) {
            out.push(("session", why));
        }
        if let Some(why) = agent_problem(self.agent.as_deref()) {
            out.push(("agent", why));
        }
        if self.message.trim().is_empty() {
            out.push((
                "message",
                "is empty: write what the agent is asked at each run, e.g. \"Give me today's briefing.\"".to_string(),
            ));
        }
        if !(1..=MAX_CATCH_UP).contains(&self.max_catch_up) {
            out.push((
                "max_catch_up",
                format!(
                    "must be between 1 and {MAX_CATCH_UP}: it is how many missed slots misfire = \"all\" runs at once"
                ),
            ));
        }
        if self.max_failures == 0 {
            out.push((
                "max_failures",
                "must be at least 1: it is how many failed runs in a row pause the job".to_string(),
            ));
        }
        out
    }
}

impl CronConfig {
    /// What is wrong, as (full key, what to do): `cron.jobs.<name>.<key>`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, job) in &self.jobs {
            if let Some(why) = name_problem(name, "job", "session keys and `switchboard cron`") {
                out.push((format!("cron.jobs.{name}"), why));
            }
            for (key, why) in job.problems() {
                out.push((format!("cron.jobs.{name}.{key}"), why));
            }
        }
        out
    }
}

/// `[hooks]`: inbound webhooks by name (`[hooks.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HooksConfig {
    /// `[hooks.<name>]`, each answering `POST /hooks/custom/<name>`.
    /// Default: none.
    pub hooks: BTreeMap<String, HookConfig>,
}

/// `[hooks.<name>]`: `POST /hooks/custom/<name>` starts a turn and answers
/// `202` with a run id.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// The shared secret: the poster sends it as `Authorization: Bearer
    /// <secret>`, or signs the body with it (see `signature_header`). 16
    /// characters or more; `"secret:NAME"` reads it from the store's
    /// secrets. Required.
    pub secret: String,
    /// The agent that answers (a `[agents.<name>]`). Default: the default
    /// agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The message of the turn, quoting the posted JSON: `{{field}}`,
    /// `{{a.b}}`, `{{items.0}}` (a string as it is, another value as JSON,
    /// a missing one as nothing), e.g. `"New issue: {{issue.title}}"`.
    /// Required.
    pub message: String,
    /// Where the answer goes, as a job's `deliver`:
    /// `"channel:account:chat[:thread]"`, an http(s) URL, or `"none"`.
    /// Default `"none"`.
    #[serde(default = "default_deliver")]
    pub deliver: String,
    /// The largest body accepted, in bytes; a larger one is refused and
    /// starts nothing. Default 65536.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The header carrying `sha256=<hex>`, the HMAC-SHA256 of the body
    /// keyed with the secret (the alternative to the bearer token).
    /// Default `"X-Signature-256"`.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// The header naming a delivery: a repeated id is run once. Default
    /// `"X-Delivery-Id"`.
    #[serde(default = "default_delivery_id_header")]
    pub delivery_id_header: String,
}

fn default_max_body_bytes() -> usize {
    65_536
}

fn default_signature_header() -> String {
    "X-Signature-256".into()
}

fn default_delivery_id_header() -> String {
    "X-Delivery-Id".into()
}

impl std::fmt::Debug for HookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookConfig")
            .field("secret", &"<redacted>")
            .field("agent", &self.agent)
            .field("message", &self.message)
            .field("deliver", &self.deliver)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("signature_header", &self.signature_header)
            .field("delivery_id_header", &self.delivery_id_header)
            .finish()
    }
}

impl HookConfig {
    /// What is wrong with the hook, as (key within the hook, what to do).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.secret.trim().chars().count() < 16 {
            out.push((
                "secret",
                "is shorter than 16 characters: use a long random value (e.g. `openssl rand -hex 24`) so strangers cannot start turns".to_string(),
            ));
        }
        if let Some(why) = agent_problem(self.agent.as_deref()) {
            out.push(("agent", why));
        }
        if self.message.trim().is_empty() {
            out.push((
                "message",
                "is empty: write the message of the turn, quoting the posted JSON as {{field}}, e.g. \"New issue: {{issue.title}}\"".to_string(),
            ));
        } else if let Some(why) = template::template_problem(&self.message) {
            out.push(("message", why));
        }
        check(
            &mut out,
            "deliver",
            Some(self.deliver.as_str()),
            parse::parse_deliver,
        );
        if !(1..=MAX_HOOK_BODY_BYTES).contains(&self.max_body_bytes) {
            out.push((
                "max_body_bytes",
                format!("must be between 1 and {MAX_HOOK_BODY_BYTES}"),
            ));
        }
        for (key, header) in [
            ("signature_header", &self.signature_header),
            ("delivery_id_header", &self.delivery_id_header),
        ] {
            if let Some(why) = header_problem(header) {
                out.push((key, why));
            }
        }
        if self
            .signature_header
            .eq_ignore_ascii_case(&self.delivery_id_header)
        {
            out.push((
                "delivery_id_header",
                "is the same header as signature_header: name another, e.g. \"X-Delivery-Id\""
                    .to_string(),
            ));
        }
        out
    }
}

impl HooksConfig {
    /// What is wrong, as (full key, what to do): `hooks.<name>.<key>`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, hook) in &self.hooks {
            if let Some(why) = name_problem(name, "hook", "its URL, /hooks/custom/<name>") {
                out.push((format!("hooks.{name}"), why));
            }
            for (key, why) in hook.problems() {
                out.push((format!("hooks.{name}.{key}"), why));
            }
        }
        out
    }
}

/// Push the error of `parse(value)` under `key`, when there is a value.
fn check<T>(
    out: &mut Vec<(&'static str, String)>,
    key: &'static str,
    value: Option<&str>,
    parse: fn(&str) -> Result<T, String>,
) {
    if let Some(v) = value
        && let Err(why) = parse(v)
    {
        out.push((key, why));
    }
}

/// A job or hook name: letters, digits, `-` and `_`, since it appears in
/// `used_in`.
fn name_problem(name: &str, what: &str, used_in: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (!ok).then(|| {
        format!("`{name}` is not a {what} name: use letters, digits, - and _ (the name appears in {used_in})")
    })
}

fn session_problem(session: &str) -> Option<String> {
    let s = session.trim();
    let key = s
        .strip_prefix("agent:")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    (s != "isolated" && !key).then(|| {
        format!(
            "`{session}` is not a session: write \"isolated\" (the job's own session) or a session key such as \"agent:main:telegram:dm:123456789\" (`switchboard sessions list` shows them)"
        )
    })
}

fn agent_problem(agent: Option<&str>) -> Option<String> {
    agent.filter(|a| a.trim().is_empty()).map(|_| {
        "is empty: name an agent of [agents.*], or leave it out for the default agent".to_string()
    })
}

/// An HTTP header name: letters, digits and the punctuation RFC 9110
/// allows in a token.
fn header_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    (!ok).then(|| {
        format!("`{name}` is not an HTTP header name: use letters, digits and -, e.g. \"X-Signature-256\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(text: &str) -> CronConfig {
        toml::from_str(text).unwrap()
    }

    fn job_problems(body: &str) -> String {
        let config = jobs(&format!("[jobs.j]\nmessage = \"m\"\n{body}\n"));
        config
            .problems()
            .into_iter()
            .map(|(k, why)| format!("{k}: {why}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_job_has_its_defaults() {
        let c = jobs(
            "[jobs.morning]\nschedule = \"0 30 7 * * Mon-Fri\"\ntz = \"Europe/Berlin\"\nagent = \"main\"\nmessage = \"Give me today's briefing.\"\ndeliver = \"telegram:main:123456789\"\n",
        );
        let j = &c.jobs["morning"];
        assert_eq!(j.session, "isolated");
        assert_eq!(j.misfire, Misfire::Once);
        assert_eq!((j.max_catch_up, j.max_failures, j.enabled), (10, 5, true));
        assert_eq!((&j.max_lateness, &j.active_hours), (&None, &None));
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let mut bare = CronJobConfig::new("Give me today's briefing.");
        bare.every = Some("15m".into());
        assert_eq!(bare.deliver, "none");
        assert!(bare.problems().is_empty(), "{:?}", bare.problems());
        let misfire: CronConfig =
            jobs("[jobs.a]\nevery = \"1h\"\nmessage = \"m\"\nmisfire = \"all\"\n");
        assert_eq!(misfire.jobs["a"].misfire, Misfire::All);
    }

    #[test]
    fn unknown_keys_and_misfire_values_are_refused() {
        let e = toml::from_str::<CronConfig>(
            "[jobs.a]\nevery = \"1h\"\nmessage = \"m\"\nevry = \"2h\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("evry"), "{e}");
        assert!(
            toml::from_str::<CronConfig>(
                "[jobs.a]\nevery = \"1h\"\nmessage = \"m\"\nmisfire = \"twice\"\n"
            )
            .is_err()
        );
        assert!(
            toml::from_str::<CronConfig>("[jobs.a]\nevery = \"1h\"\n").is_err(),
            "message is required"
        );
    }

    #[test]
    fn a_job_has_exactly_one_time() {
        let p = job_problems("");
        assert!(
            p.contains("cron.jobs.j.schedule: the job has no time"),
            "{p}"
        );
        let p = job_problems("every = \"15m\"\nat = \"2026-12-24T09:00:00+01:00\"");
        assert!(
            p.contains("cron.jobs.j.at: every and at are both set"),
            "{p}"
        );
    }

    #[test]
    fn each_value_is_checked_with_its_key() {
        for (body, says) in [
            (
                "schedule = \"0 61 * * *\"",
                "cron.jobs.j.schedule: `0 61 * * *` is not a cron pattern",
            ),
            (
                "every = \"500ms\"",
                "cron.jobs.j.every: `500ms` is shorter than a second",
            ),
            ("every = \"15\"", "cron.jobs.j.every: `15` has no unit"),
            (
                "at = \"tomorrow\"",
                "cron.jobs.j.at: `tomorrow` is not an RFC 3339 time",
            ),
            (
                "every = \"1h\"\ntz = \"Berlin\"",
                "cron.jobs.j.tz: `Berlin` is not a time zone",
            ),
            (
                "every = \"1h\"\ndeliver = \"telegram:main\"",
                "cron.jobs.j.deliver: `telegram:main` is not a delivery target",
            ),
            (
                "every = \"1h\"\nsession = \"mine\"",
                "cron.jobs.j.session: `mine` is not a session",
            ),
            (
                "every = \"1h\"\nmax_lateness = \"soon\"",
                "cron.jobs.j.max_lateness: `soon` is not a duration",
            ),
            (
                "every = \"1h\"\nactive_hours = \"8-22\"",
                "cron.jobs.j.active_hours: `8-22` is not a window of hours",
            ),
            (
                "every = \"1h\"\nmax_failures = 0",
                "cron.jobs.j.max_failures: must be at least 1",
            ),
            (
                "every = \"1h\"\nmax_catch_up = 0",
                "cron.jobs.j.max_catch_up: must be between 1 and 1000",
            ),
            (
                "every = \"1h\"\nagent = \"\"",
                "cron.jobs.j.agent: is empty",
            ),
        ] {
            let p = job_problems(body);
            assert!(p.contains(says), "{body}:\n{p}");
        }
        let p = jobs("[jobs.j]\nevery = \"1h\"\nmessage = \" \"\n").problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "cron.jobs.j.message");
        let p = jobs("[jobs.\"my job\"]\nevery = \"1h\"\nmessage = \"m\"\n").problems();
        assert_eq!(p[0].0, "cron.jobs.my job", "{p:?}");
        assert!(p[0].1.contains("is not a job name"), "{p:?}");
        let ok = job_problems(
            "every = \"2s\"\nsession = \"agent:main:telegram:dm:42\"\nmax_lateness = \"1h\"\nactive_hours = \"22:00-06:00\"\ndeliver = \"https://example.com/hook\"",
        );
        assert!(ok.is_empty(), "{ok}");
    }

    #[test]
    fn hooks_have_their_defaults_and_a_long_secret() {
        let h: HooksConfig = toml::from_str(
            "[github]\nsecret = \"0123456789abcdef0123\"\nmessage = \"New issue: {{issue.title}}\"\n",
        )
        .unwrap();
        let g = &h.hooks["github"];
        assert_eq!(g.deliver, "none");
        assert_eq!(g.max_body_bytes, 65_536);
        assert_eq!(g.signature_header, "X-Signature-256");
        assert_eq!(g.delivery_id_header, "X-Delivery-Id");
        assert!(h.problems().is_empty(), "{:?}", h.problems());
        assert!(
            !format!("{g:?}").contains("0123456789abcdef"),
            "the secret is not in Debug"
        );

        let h: HooksConfig = toml::from_str(
            "[\"a/b\"]\nsecret = \"short\"\nmessage = \"{{oops\"\ndeliver = \"nowhere\"\nmax_body_bytes = 0\nsignature_header = \"X Sig\"\ndelivery_id_header = \"x sig\"\n",
        )
        .unwrap();
        let p: Vec<String> = h
            .problems()
            .into_iter()
            .map(|(k, why)| format!("{k}: {why}"))
            .collect();
        let all = p.join("\n");
        for says in [
            "hooks.a/b: `a/b` is not a hook name",
            "hooks.a/b.secret: is shorter than 16 characters",
            "hooks.a/b.message: ",
            "hooks.a/b.deliver: `nowhere` is not a delivery target",
            "hooks.a/b.max_body_bytes: must be between 1 and",
            "hooks.a/b.signature_header: `X Sig` is not an HTTP header name",
        ] {
            assert!(all.contains(says), "{says}:\n{all}");
        }
        assert!(
            toml::from_str::<HooksConfig>(
                "[x]\nsecret = \"0123456789abcdef0123\"\nmessage = \"m\"\nsecrett = 1\n"
            )
            .is_err(),
            "unknown keys are refused"
        );
        assert!(
            toml::from_str::<HooksConfig>("[x]\nmessage = \"m\"\n").is_err(),
            "the secret is required"
        );
    }
}
