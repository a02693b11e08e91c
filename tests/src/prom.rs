//! A strict reader of the Prometheus text exposition format 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>), for
//! tests that scrape `/metrics`.
//!
//! Strict where a scraper would be misled: every sample line must parse
//! (name, labels, value, optional timestamp, nothing after: an OpenMetrics
//! exemplar is an error here), every sample must follow the `# TYPE` of its
//! family and carry a name that family allows (a counter's samples are
//! named as its `# TYPE` is, `_total` included; a histogram's are
//! `_bucket`, `_sum` and `_count`), a family is declared once and its
//! samples are not scattered, no series appears twice, counters are not
//! negative, and each histogram series has non-decreasing buckets ending at
//! `+Inf` whose count is its `_count`. OpenMetrics-only lines (`# EOF`,
//! `# UNIT`) are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
    /// `untyped`
    Untyped,
}

/// A family, as its `# TYPE` line declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Its name (the name of the `# TYPE` line).
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// Its `# HELP` text, when given.
    pub help: Option<String>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`x_bucket`, `x_total`, ...).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
    /// The family it belongs to.
    pub family: String,
}

impl Sample {
    /// The series: name and labels, as `name{a="1",b="2"}`.
    pub fn series(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    families: Vec<Family>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// The samples `name` whose labels include `labels` (others may be
    /// there too).
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum of [`Scrape::matching`]'s values (0 when none match).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|s| s.value).sum()
    }

    /// How many series (sample lines) there are.
    pub fn series_count(&self) -> usize {
        self.samples.len()
    }

    /// Every series, as [`Sample::series`] writes it.
    pub fn series(&self) -> BTreeSet<String> {
        self.samples.iter().map(Sample::series).collect()
    }

    /// The families, in the order they came.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The family `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Every sample, in the order they came.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

/// Parse `text`; the error names the line that is wrong and why.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut out = Scrape::default();
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, Kind)> = None;
    let mut seen_series = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = |why: String| format!("line {}: {why}: {line:?}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if let Some(rest) = comment.strip_prefix("HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                if !valid_name(name) {
                    return Err(at(format!("bad metric name {name:?} in # HELP")));
                }
                if helps.insert(name.to_string(), help.to_string()).is_some() {
                    return Err(at(format!("second # HELP for {name}")));
                }
            } else if let Some(rest) = comment.strip_prefix("TYPE ") {
                let mut words = rest.split_whitespace();
                let (Some(name), Some(kind), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(at("a # TYPE line is `# TYPE name type`".into()));
                };
                if !valid_name(name) {
                    return Err(at(format!("bad metric name {name:?} in # TYPE")));
                }
                let kind = match kind {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    "histogram" => Kind::Histogram,
                    "summary" => Kind::Summary,
                    "untyped" => Kind::Untyped,
                    other => return Err(at(format!("unknown type {other:?}"))),
                };
                if out.family(name).is_some() {
                    return Err(at(format!("second # TYPE for {name}")));
                }
                out.families.push(Family {
                    name: name.to_string(),
                    kind,
                    help: None,
                });
                current = Some((name.to_string(), kind));
            } else if comment == "EOF" || comment.starts_with("UNIT ") {
                return Err(at("an OpenMetrics line in the 0.0.4 text format".into()));
            }
            continue;
        }
        let sample = sample_line(line).map_err(at)?;
        let Some((family, kind)) = &current else {
            return Err(at("a sample before any # TYPE".into()));
        };
        if !belongs(&sample.name, family, *kind) {
            return Err(at(format!(
                "sample {} does not belong to the {kind:?} family {family} declared before it",
                sample.name
            )));
        }
        if *kind == Kind::Counter && sample.value < 0.0 {
            return Err(at("a negative counter".into()));
        }
        let sample = Sample {
            family: family.clone(),
            ..sample
        };
        if !seen_series.insert(sample.series()) {
            return Err(at("a series given twice".into()));
        }
        out.samples.push(sample);
    }
    for f in &mut out.families {
        f.help = helps.get(&f.name).cloned();
    }
    for f in out.families.clone() {
        if f.kind == Kind::Histogram {
            check_histogram(&out, &f.name)?;
        }
    }
    Ok(out)
}

/// Whether a sample named `name` is one of family `family`'s.
fn belongs(name: &str, family: &str, kind: Kind) -> bool {
    let suffix = name.strip_prefix(family);
    match kind {
        Kind::Counter | Kind::Gauge | Kind::Untyped => name == family,
        Kind::Histogram => matches!(suffix, Some("_bucket" | "_sum" | "_count")),
        Kind::Summary => matches!(suffix, Some("" | "_sum" | "_count")),
    }
}

/// Each series of histogram `family`: buckets non-decreasing, `+Inf` last
/// and equal to `_count`, and a `_sum`.
fn check_histogram(scrape: &Scrape, family: &str) -> Result<(), String> {
    let bucket = format!("{family}_bucket");
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for s in scrape.samples.iter().filter(|s| s.name == bucket) {
        let Some(le) = s.labels.get("le") else {
            return Err(format!("{} has no `le` label", s.series()));
        };
        let le = number(le).map_err(|e| format!("{}: le {e}", s.series()))?;
        let mut key = s.labels.clone();
        key.remove("le");
        series.entry(key).or_default().push((le, s.value));
    }
    for (labels, mut buckets) in series {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!(
                "{family}{labels:?}: bucket counts decrease: {buckets:?}"
            ));
        }
        let last = buckets.last().copied().unwrap_or((0.0, 0.0));
        if last.0 != f64::INFINITY {
            return Err(format!("{family}{labels:?}: no le=\"+Inf\" bucket"));
        }
        let count = scrape.value(&format!("{family}_count"), &pairs);
        if count != Some(last.1) {
            return Err(format!(
                "{family}{labels:?}: _count {count:?} is not the +Inf bucket {}",
                last.1
            ));
        }
        if scrape.value(&format!("{family}_sum"), &pairs).is_none() {
            return Err(format!("{family}{labels:?}: no _sum"));
        }
    }
    Ok(())
}

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (labels take no `:`,
/// checked by the caller).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn number(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(format!("{text:?} is not a number"));
    }
    text.parse::<f64>()
        .map_err(|e| format!("{text:?} is not a number: {e}"))
}

/// `name{labels} value [timestamp]`.
fn sample_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c == ' ')
        .ok_or("a sample has a name and a value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = label_set(after)?;
        labels = parsed;
        rest = tail;
    }
    let rest = rest.strip_prefix(' ').ok_or("a space before the value")?;
    let mut words = rest.split(' ');
    let value = number(words.next().unwrap_or(""))?;
    if let Some(ts) = words.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("{ts:?} is not a timestamp in milliseconds"))?;
    }
    if let Some(extra) = words.next() {
        return Err(format!(
            "unexpected {extra:?} after the value and timestamp"
        ));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        family: String::new(),
    })
}

/// Labels up to the closing `}`: the labels and what follows them.
fn label_set(mut rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(tail) = rest.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let (key, after) = rest.split_once("=\"").ok_or("a label is name=\"value\"")?;
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in a label value")),
                },
                Some((_, '\n')) => return Err("a raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} given twice"));
        }
        rest = &after[end + 1..];
        if let Some(tail) = rest.strip_prefix(',') {
            rest = tail;
        } else if !rest.starts_with('}') {
            return Err("labels are separated by commas".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total{channel=\"telegram\",account=\"main\"} 5\nreq_total{channel=\"web\\\"chat\",account=\"default\"} 2 1700000000000\n# TYPE up gauge\nup 1\n# TYPE dur_seconds histogram\ndur_seconds_bucket{agent=\"main\",le=\"0.1\"} 1\ndur_seconds_bucket{agent=\"main\",le=\"1.0\"} 3\ndur_seconds_bucket{agent=\"main\",le=\"+Inf\"} 3\ndur_seconds_sum{agent=\"main\"} 1.25\ndur_seconds_count{agent=\"main\"} 3\n";

    #[test]
    fn a_good_scrape_is_read() {
        let s = parse(GOOD).unwrap();
        assert_eq!(
            s.value("req_total", &[("channel", "telegram"), ("account", "main")]),
            Some(5.0)
        );
        assert_eq!(s.sum("req_total", &[]), 7.0);
        assert_eq!(
            s.matching("req_total", &[("channel", "web\"chat")]).len(),
            1
        );
        assert_eq!(
            s.value("dur_seconds_count", &[("agent", "main")]),
            Some(3.0)
        );
        assert_eq!(s.series_count(), 8);
        assert_eq!(s.families().len(), 3);
        assert_eq!(
            s.family("req_total").unwrap().help.as_deref(),
            Some("Requests.")
        );
    }

    #[test]
    fn malformed_scrapes_are_refused() {
        let bad = [
            // a counter's samples named otherwise than its # TYPE
            "# TYPE req counter\nreq_total 1\n",
            // no # TYPE
            "up 1\n",
            // an exemplar
            "# TYPE req_total counter\nreq_total 1 # {trace_id=\"ab\"} 1\n",
            // an OpenMetrics end
            "# TYPE up gauge\nup 1\n# EOF\n",
            // twice the same series
            "# TYPE up gauge\nup{a=\"1\"} 1\nup{a=\"1\"} 2\n",
            // an unterminated label
            "# TYPE up gauge\nup{a=\"1} 1\n",
            // not a number
            "# TYPE up gauge\nup one\n",
            // no +Inf bucket
            "# TYPE d histogram\nd_bucket{le=\"1\"} 1\nd_sum 1\nd_count 1\n",
            // decreasing buckets
            "# TYPE d histogram\nd_bucket{le=\"1\"} 2\nd_bucket{le=\"+Inf\"} 1\nd_sum 1\nd_count 1\n",
            // _count not the +Inf bucket
            "# TYPE d histogram\nd_bucket{le=\"+Inf\"} 2\nd_sum 1\nd_count 1\n",
            // a family declared twice
            "# TYPE up gauge\nup 1\n# TYPE up gauge\n",
            // a family's samples after another family
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 1\n",
        ];
        for text in bad {
            assert!(parse(text).is_err(), "accepted: {text}");
        }
    }
}
