//! `docs/config.md`, the reference of every config key, generated from the
//! config structs' doc comments (read from the sources with `syn`) and
//! their real defaults (serialized from a parsed config). The test fails
//! when the file is out of date; `SWITCHBOARD_WRITE_DOCS=1 cargo test -p
//! switchboard --lib config::reference` writes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use syn::{Attribute, Fields, GenericArgument, Item, PathArguments, Type};

/// The sources the config's types are defined in, first match wins.
const SOURCES: &[&str] = &[
    "gateway/src/config",
    "sandbox/src/settings.rs",
    "agents/src/tools/policy.rs",
    "gateway/src/telemetry/cost.rs",
];

/// One instance of every table that is keyed by a name, so that their
/// defaults can be read (deserialized without validation: serde's
/// defaults are what a user gets).
const SAMPLE: &str = r#"
[providers.NAME]
model = "m"
kind = "openai"
[providers.NAME.pricing.models.NAME]
input_per_mtok = 0.0
output_per_mtok = 0.0
[agents.NAME]
provider = "NAME"
[agents.NAME.tools.channels.NAME]
[channels.telegram.accounts.NAME]
[channels.discord.accounts.NAME]
[channels.slack.accounts.NAME]
[cron.jobs.NAME]
message = "m"
[hooks.NAME]
secret = "s"
message = "m"
[[bindings]]
agent = "NAME"
"#;

/// What a top comment of the file says.
const PREAMBLE: &str = "# Configuration reference

<!-- Generated from the config structs' doc comments by
     gateway/src/config/reference.rs; do not edit by hand. After changing
     a config struct, run
     SWITCHBOARD_WRITE_DOCS=1 cargo test -p switchboard --lib config::reference -->

Switchboard reads one TOML file, named by `--config PATH` or
`SWITCHBOARD_CONFIG`; without one it runs on the defaults below. Every key
is optional unless it says otherwise. Any key can also be set from the environment:
`SWITCHBOARD_<SECTION>__<KEY>` (two underscores between levels), e.g.
`SWITCHBOARD_GATEWAY__BIND=0.0.0.0:7788`. Keys that hold a secret
(`api_key`, `token`, `bot_token`, `app_token`, `signing_secret`,
`webhook_secret`, `secret`, `url`, `metrics_token`) accept
`\"secret:NAME\"`, a secret stored with `switchboard secrets set NAME`.
`switchboard config check` validates a file; `switchboard config reload`
(or SIGHUP) applies a changed one to the running gateway.

`<name>` in a table's name is yours to choose (a provider's, an agent's,
an account's name).
";

#[derive(Clone)]
struct Field {
    key: String,
    doc: String,
    ty: Type,
}

#[derive(Clone)]
enum Def {
    Struct { doc: String, fields: Vec<Field> },
    Enum { values: Vec<(String, String)> },
}

fn doc_of(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            let line = s.value();
            lines.push(
                line.strip_prefix(' ')
                    .unwrap_or(&line)
                    .trim_end()
                    .to_string(),
            );
        }
    }
    lines.join("\n").trim().to_string()
}

/// Doc text as Markdown paragraphs: lines joined, fenced code kept as it
/// is, the first letter capitalized.
fn paragraphs(doc: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    let mut para = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            out.push_str(&para.join(" "));
            out.push_str("\n\n");
            para.clear();
        }
    };
    for line in doc.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            flush(&mut para, &mut out);
            out.push_str(t);
            out.push('\n');
            if fenced {
                out.push('\n');
            }
            fenced = !fenced;
        } else if fenced {
            out.push_str(line);
            out.push('\n');
        } else if t.is_empty() {
            flush(&mut para, &mut out);
        } else {
            para.push(t);
        }
    }
    flush(&mut para, &mut out);
    let out = out.trim().to_string();
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => out,
    }
}

/// `#[serde(...)]` items as text: `rename = "x"`, `rename_all = "y"`,
/// `skip`, `flatten`, `transparent`.
fn serde_items(attrs: &[Attribute]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for a in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = a.parse_nested_meta(|m| {
            let name = m
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let value = match m.value() {
                Ok(v) => {
                    let lit: syn::Lit = v.parse()?;
                    match lit {
                        syn::Lit::Str(s) => Some(s.value()),
                        _ => None,
                    }
                }
                Err(_) => None,
            };
            out.push((name, value));
            Ok(())
        });
    }
    out
}

fn serde_value(attrs: &[Attribute], name: &str) -> Option<String> {
    serde_items(attrs)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v)
}

fn has_serde(attrs: &[Attribute], name: &str) -> bool {
    serde_items(attrs).iter().any(|(n, _)| n == name)
}

fn renamed(ident: &str, rule: Option<&str>) -> String {
    let snake = {
        let mut s = String::new();
        for (i, c) in ident.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                s.push('_');
            }
            s.extend(c.to_lowercase());
        }
        s
    };
    match rule {
        Some("lowercase") => ident.to_lowercase(),
        Some("kebab-case") => snake.replace('_', "-"),
        Some("snake_case") => snake,
        Some("UPPERCASE") => ident.to_uppercase(),
        _ => ident.to_string(),
    }
}

fn rs_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("source dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for e in entries {
            rs_files(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

fn definitions(root: &Path) -> BTreeMap<String, Def> {
    let mut defs = BTreeMap::new();
    for source in SOURCES {
        let mut files = Vec::new();
        rs_files(&root.join(source), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            let parsed = syn::parse_file(&text).expect("parse source");
            for item in parsed.items {
                match item {
                    Item::Struct(s) => {
                        let Fields::Named(named) = &s.fields else {
                            continue;
                        };
                        let rule = serde_value(&s.attrs, "rename_all");
                        let fields = named
                            .named
                            .iter()
                            .filter(|f| matches!(f.vis, syn::Visibility::Public(_)))
                            .filter(|f| !has_serde(&f.attrs, "skip"))
                            .map(|f| {
                                let ident = f.ident.as_ref().expect("named").to_string();
                                Field {
                                    key: serde_value(&f.attrs, "rename")
                                        .unwrap_or_else(|| renamed(&ident, rule.as_deref())),
                                    doc: doc_of(&f.attrs),
                                    ty: f.ty.clone(),
                                }
                            })
                            .collect();
                        defs.entry(s.ident.to_string()).or_insert(Def::Struct {
                            doc: doc_of(&s.attrs),
                            fields,
                        });
                    }
                    Item::Enum(e) => {
                        let rule = serde_value(&e.attrs, "rename_all");
                        let values = e
                            .variants
                            .iter()
                            .map(|v| {
                                let name = serde_value(&v.attrs, "rename").unwrap_or_else(|| {
                                    renamed(&v.ident.to_string(), rule.as_deref())
                                });
                                (name, doc_of(&v.attrs))
                            })
                            .collect();
                        defs.entry(e.ident.to_string())
                            .or_insert(Def::Enum { values });
                    }
                    _ => {}
                }
            }
        }
    }
    defs
}

/// The last segment of a type path and its generic arguments.
fn segments(ty: &Type) -> Option<(String, Vec<Type>)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let args = match &last.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((last.ident.to_string(), args))
}

/// How a field's type shows in the reference.
enum Shape {
    /// A table of its own: `[path]`.
    Table(String),
    /// Tables keyed by a name: `[path.<name>]`.
    Named(String),
    /// An array of tables: `[[path]]`.
    Array(String),
    /// A value.
    Value(String),
}

fn shape(ty: &Type, defs: &BTreeMap<String, Def>) -> Shape {
    let Some((name, args)) = segments(ty) else {
        return Shape::Value("value".into());
    };
    let is_struct = |t: &Type| {
        segments(t)
            .and_then(|(n, _)| defs.get(&n).map(|d| (n, d.clone())))
            .and_then(|(n, d)| matches!(d, Def::Struct { .. }).then_some(n))
    };
    match name.as_str() {
        "Option" => match args.first() {
            Some(inner) => shape(inner, defs),
            None => Shape::Value("value".into()),
        },
        "BTreeMap" | "HashMap" => match args.get(1) {
            Some(v) => match is_struct(v) {
                Some(n) => Shape::Named(n),
                None => Shape::Value(format!("table of {}", value_name(v, defs))),
            },
            None => Shape::Value("table".into()),
        },
        "Vec" => match args.first() {
            Some(v) => match is_struct(v) {
                Some(n) => Shape::Array(n),
                None => Shape::Value(format!("list of {}s", value_name(v, defs))),
            },
            None => Shape::Value("list".into()),
        },
        _ => match is_struct(ty) {
            Some(n) => Shape::Table(n),
            None => Shape::Value(value_name(ty, defs)),
        },
    }
}

fn value_name(ty: &Type, defs: &BTreeMap<String, Def>) -> String {
    let Some((name, args)) = segments(ty) else {
        return "value".into();
    };
    match name.as_str() {
        "String" => "string".into(),
        "bool" => "boolean".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "integer".into(),
        "f32" | "f64" => "number".into(),
        "PathBuf" => "path".into(),
        "Option" => args.first().map_or("value".into(), |a| value_name(a, defs)),
        "Vec" => args.first().map_or("list".into(), |a| {
            format!("list of {}s", value_name(a, defs))
        }),
        other => match defs.get(other) {
            Some(Def::Enum { values }) => values
                .iter()
                .map(|(v, _)| format!("`\"{v}\"`"))
                .collect::<Vec<_>>()
                .join(" \\| "),
            _ => other.to_lowercase(),
        },
    }
}

fn default_of(v: Option<&toml::Value>) -> String {
    match v {
        None => "—".into(),
        Some(toml::Value::Table(t)) if t.is_empty() => "—".into(),
        Some(v) => {
            let text = v.to_string();
            let text = if text.len() > 60 {
                format!(
                    "{}…",
                    &text[..text.char_indices().nth(57).map_or(text.len(), |(i, _)| i)]
                )
            } else {
                text
            };
            format!("`{}`", text.replace('|', "\\|"))
        }
    }
}

fn cell(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

struct Writer<'a> {
    defs: &'a BTreeMap<String, Def>,
    out: String,
}

impl Writer<'_> {
    /// The table `shown` (`gateway.auth`, `agents.<name>`) of struct
    /// `name`, whose defaults are at `defaults`.
    fn table(
        &mut self,
        shown: &str,
        heading: &str,
        name: &str,
        defaults: Option<&toml::Value>,
        sampled: Option<&toml::Value>,
        field_doc: &str,
    ) {
        let Some(Def::Struct { doc, fields }) = self.defs.get(name).cloned() else {
            return;
        };
        let mut values = Vec::new();
        let mut nested = Vec::new();
        for f in &fields {
            let path = if shown.is_empty() {
                f.key.clone()
            } else {
                format!("{shown}.{}", f.key)
            };
            let d = defaults.and_then(|d| d.get(&f.key));
            let given = sampled.and_then(|d| d.get(&f.key));
            let sample = |d: Option<&toml::Value>| -> Option<toml::Value> {
                match d {
                    Some(toml::Value::Table(t)) => t.get("NAME").cloned(),
                    Some(toml::Value::Array(a)) => a.first().cloned(),
                    _ => None,
                }
            };
            match shape(&f.ty, self.defs) {
                Shape::Table(n) => nested.push((
                    path.clone(),
                    format!("[{path}]"),
                    n,
                    d.cloned(),
                    given.cloned(),
                    f.doc.clone(),
                )),
                Shape::Named(n) => {
                    let p = format!("{path}.<name>");
                    nested.push((
                        p.clone(),
                        format!("[{p}]"),
                        n,
                        sample(d),
                        sample(given),
                        f.doc.clone(),
                    ));
                }
                Shape::Array(n) => nested.push((
                    path.clone(),
                    format!("[[{path}]]"),
                    n,
                    sample(d),
                    sample(given),
                    f.doc.clone(),
                )),
                Shape::Value(ty) => {
                    // What the sample had to give is required.
                    let default = if given.is_some() {
                        "required".to_string()
                    } else {
                        default_of(d)
                    };
                    values.push((f.key.clone(), ty, f.doc.clone(), default));
                }
            }
        }
        if !heading.is_empty() {
            let _ = writeln!(self.out, "\n## `{heading}`\n");
            let strip = |d: &str| {
                let d = d.trim();
                match d.strip_prefix('`').and_then(|r| r.split_once('`')) {
                    Some((tag, rest)) if tag.starts_with('[') => {
                        rest.trim_start_matches(':').trim().to_string()
                    }
                    _ => d.to_string(),
                }
            };
            let own = strip(&doc);
            let doc = paragraphs(&if own.is_empty() {
                strip(field_doc)
            } else {
                own
            });
            if !doc.is_empty() {
                let _ = writeln!(self.out, "{doc}\n");
            }
        }
        if !values.is_empty() {
            let _ = writeln!(self.out, "| Key | Type | Default | Meaning |");
            let _ = writeln!(self.out, "|---|---|---|---|");
            for (key, ty, doc, default) in values {
                let _ = writeln!(self.out, "| `{key}` | {ty} | {default} | {} |", cell(&doc));
            }
        }
        for (path, heading, n, d, given, field_doc) in nested {
            self.table(&path, &heading, &n, d.as_ref(), given.as_ref(), &field_doc);
        }
    }
}

/// The reference, as `docs/config.md` holds it.
pub(crate) fn render(root: &Path) -> String {
    let defs = definitions(root);
    let sample: super::Config = toml::from_str(SAMPLE).expect("the sample parses");
    let given: toml::Value = toml::from_str(SAMPLE).expect("the sample is TOML");
    let defaults = toml::Value::try_from(&sample).expect("the config serializes");
    let mut w = Writer {
        defs: &defs,
        out: PREAMBLE.to_string(),
    };
    w.table("", "", "Config", Some(&defaults), Some(&given), "");
    let mut out = w.out;
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_config_md_is_up_to_date() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let fresh = render(&root);
        let path = root.join("docs/config.md");
        if std::env::var_os("SWITCHBOARD_WRITE_DOCS").is_some() {
            std::fs::write(&path, &fresh).expect("write docs/config.md");
            return;
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            stored == fresh,
            "docs/config.md is out of date with the config structs: run \
             `SWITCHBOARD_WRITE_DOCS=1 cargo test -p switchboard --lib config::reference` \
             and commit the file"
        );
    }

    #[test]
    fn every_key_a_config_can_hold_is_in_the_reference() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = render(&root);
        for key in [
            "`bind`",
            "[gateway.auth]",
            "[agents.<name>.approvals]",
            "[channels.telegram.accounts.<name>]",
            "`bot_token`",
            "[[bindings]]",
            "[sandbox]",
            "[cron.jobs.<name>]",
            "[providers.<name>.pricing]",
            "`trusted_proxies`",
        ] {
            assert!(text.contains(key), "{key} is missing from the reference");
        }
    }
}
