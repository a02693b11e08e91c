//! The bench's tables: the goals, met or not, and the scaling tables.

use serde_json::Value;

/// The figures against the goals, as a Markdown table.
pub(crate) fn table(r: &Value) -> String {
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let mb = |k: &str| f(k) / 1024.0;
    let at = |group: &str, level: &str, k: &str| r[group][level][k].as_f64().unwrap_or(f64::NAN);
    let flat = at("history_scaling", "5000", "cpu_us_per_turn")
        / at("history_scaling", "10", "cpu_us_per_turn");
    let rows = [
        (
            "cold start to /readyz (p50)".to_string(),
            format!("{:.1} ms", f("start_to_ready_ms_p50")),
            "< 10 ms",
            f("start_to_ready_ms_p50") < 10.0,
        ),
        (
            "idle RSS".into(),
            format!("{:.1} MB", mb("rss_idle_kib")),
            "< 20 MB",
            mb("rss_idle_kib") < 20.0,
        ),
        (
            "RSS after 10,000 sessions".into(),
            format!(
                "{:.1} MB",
                at("sessions_scaling", "10000", "rss_kib") / 1024.0
            ),
            "< 50 MB",
            at("sessions_scaling", "10000", "rss_kib") / 1024.0 < 50.0,
        ),
        (
            "RSS after 100,000 sessions".into(),
            format!(
                "{:.1} MB",
                at("sessions_scaling", "100000", "rss_kib") / 1024.0
            ),
            "< 200 MB",
            at("sessions_scaling", "100000", "rss_kib") / 1024.0 < 200.0,
        ),
        (
            "web chat overhead p50".into(),
            format!("{:.2} ms", f("webchat_overhead_ms_p50")),
            "< 0.5 ms",
            f("webchat_overhead_ms_p50") < 0.5,
        ),
        (
            "web chat overhead p99".into(),
            format!("{:.2} ms", f("webchat_overhead_ms_p99")),
            "< 3 ms",
            f("webchat_overhead_ms_p99") < 3.0,
        ),
        (
            "Telegram overhead p50".into(),
            format!("{:.2} ms", f("telegram_overhead_ms_p50")),
            "< 0.5 ms",
            f("telegram_overhead_ms_p50") < 0.5,
        ),
        (
            "Telegram overhead p99".into(),
            format!("{:.2} ms", f("telegram_overhead_ms_p99")),
            "< 3 ms",
            f("telegram_overhead_ms_p99") < 3.0,
        ),
        (
            format!("web chat throughput ({} clients)", r["webchat_concurrency"]),
            format!("{:.0} turns/s", f("webchat_turns_per_sec")),
            "≥ 2,000 turns/s with 64",
            f("webchat_turns_per_sec") >= 2000.0 && f("webchat_concurrency") >= 64.0,
        ),
        (
            "gateway CPU per turn under load".into(),
            format!("{:.0} µs", f("gateway_cpu_us_per_turn")),
            "≤ 300 µs",
            f("gateway_cpu_us_per_turn") <= 300.0,
        ),
        (
            "a turn at 5,000 stored messages against 10".into(),
            format!("{:+.0} %", (flat - 1.0) * 100.0),
            "≤ +20 %",
            flat <= 1.2,
        ),
        (
            "instructions per web chat turn".into(),
            format!("{:.2} M", f("instructions_per_turn") / 1e6),
            "—",
            true,
        ),
        (
            "sent to the model, one-line message".into(),
            format!(
                "{:.0} bytes (~{:.0} tokens)",
                f("model_request_bytes"),
                f("model_request_tokens_est")
            ),
            "< 12 KB",
            f("model_request_bytes") < 12.0 * 1024.0,
        ),
        (
            "sent to the model, `coding` profile".into(),
            format!("{:.0} bytes", f("model_request_bytes_coding")),
            "—",
            true,
        ),
        (
            "watching: overhead added at p50".into(),
            format!("{:.0} µs", f("watching_overhead_added_us_p50")),
            "< 100 µs",
            f("watching_overhead_added_us_p50") < 100.0,
        ),
        (
            "watching: throughput lost".into(),
            format!("{:.1} %", f("watching_throughput_loss_pct")),
            "< 10 %",
            f("watching_throughput_loss_pct") < 10.0,
        ),
        (
            "release binary (stripped)".into(),
            format!("{:.1} MB", f("binary_bytes") / 1e6),
            "< 30 MB",
            f("binary_bytes") < 30e6,
        ),
    ];
    let mut out = String::from("| measure | figure | goal | met |\n|---|---:|---|---|\n");
    for (name, figure, goal, met) in rows {
        if figure.contains("NaN") {
            continue; // not measured in this run (`--only`)
        }
        out.push_str(&format!(
            "| {name} | {figure} | {goal} | {} |\n",
            if goal == "—" {
                "—"
            } else if met {
                "yes"
            } else {
                "no"
            }
        ));
    }
    out
}

/// The scaling figures (sessions held, clients, stored messages), as
/// Markdown tables; empty for what was not measured.
pub(crate) fn scaling_tables(r: &Value) -> String {
    let mut out = String::new();
    let rows = |group: &str| -> Vec<(u64, Value)> {
        let mut v: Vec<(u64, Value)> = r[group]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|(k, _)| *k);
        v
    };
    let sessions = rows("sessions_scaling");
    if !sessions.is_empty() {
        out.push_str(
            "| sessions held | RSS | overhead p50 | overhead p99 |\n|---:|---:|---:|---:|\n",
        );
        for (n, v) in sessions {
            out.push_str(&format!(
                "| {n} | {:.1} MB | {:.2} ms | {:.2} ms |\n",
                v["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                num(&v["overhead_ms_p50"]),
                num(&v["overhead_ms_p99"])
            ));
        }
        out.push('\n');
    }
    let clients = rows("throughput_by_clients");
    if !clients.is_empty() {
        out.push_str(
            "| clients | turns/s | gateway CPU a turn | cores used |\n|---:|---:|---:|---:|\n",
        );
        for (n, v) in clients {
            out.push_str(&format!(
                "| {n} | {:.0} | {:.0} µs | {:.2} |\n",
                num(&v["turns_per_sec"]),
                num(&v["cpu_us_per_turn"]),
                num(&v["cores"])
            ));
        }
        out.push('\n');
    }
    let history = rows("history_scaling");
    if !history.is_empty() {
        out.push_str(
            "| stored messages a session | gateway CPU a turn | overhead p50 |\n|---:|---:|---:|\n",
        );
        for (n, v) in history {
            out.push_str(&format!(
                "| {n} | {:.0} µs | {:.2} ms |\n",
                num(&v["cpu_us_per_turn"]),
                num(&v["overhead_ms_p50"])
            ));
        }
    }
    out
}

/// A figure of the results, 0 where there is none.
fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}
