//! Finding the gateway and its control token as the `switchboard` CLI
//! does: `--url`, else `gateway.bind` of the config (`--config`) with the
//! `SWITCHBOARD_GATEWAY__BIND` override, default `127.0.0.1:7788`; the
//! token from `SWITCHBOARD_TOKEN`, the config's `gateway.auth.token`, or
//! `<data dir>/control-token`, the data directory from `--data-dir`, the
//! config's `gateway.data_dir`, or the platform's (`~/.local/share/switchboard`).

use std::path::{Path, PathBuf};

use crate::Error;

/// The gateway's address when nothing says otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:7788";

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "control-token";

/// What the user said about where the gateway is (command-line flags or
/// their environment variables).
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// `--config` / `SWITCHBOARD_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--data-dir` / `SWITCHBOARD_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--url` / `SWITCHBOARD_URL`.
    pub url: Option<String>,
}

/// Where the control token comes from. A file is read again at each
/// use, so a tray started before the gateway's first start finds the
/// token once the gateway wrote it.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given in the environment or the config.
    Given(String),
    /// `control-token` in this data directory.
    File(PathBuf),
}

/// Never shows the token.
impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given(_) => f.write_str("Given(<redacted>)"),
            Self::File(dir) => f.debug_tuple("File").field(dir).finish(),
        }
    }
}

impl TokenSource {
    /// The token now.
    pub fn read(&self) -> Result<String, Error> {
        match self {
            Self::Given(t) => Ok(t.clone()),
            Self::File(dir) => {
                let path = dir.join(TOKEN_FILE);
                match std::fs::read_to_string(&path) {
                    Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    Ok(_) => Err(Error::NoToken { dir: dir.clone() }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(Error::NoToken { dir: dir.clone() })
                    }
                    Err(source) => Err(Error::TokenFile { path, source }),
                }
            }
        }
    }
}

/// The gateway the tray follows.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its base URL, without a trailing `/`.
    pub url: String,
    /// Its control token.
    pub token: TokenSource,
    /// Its data directory, when known.
    pub data_dir: Option<PathBuf>,
    /// What the user gave, passed on to a `switchboard serve` the tray
    /// starts.
    pub hints: Hints,
    /// Whether the URL is on this machine (only then may the tray start a
    /// gateway).
    pub local: bool,
}

/// What the config file says, of what the tray needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FileSettings {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    token: Option<String>,
}

fn read_config(path: &Path) -> Result<FileSettings, Error> {
    let fail = |why: String| Error::Config {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    parse_config(&text).map_err(fail)
}

fn parse_config(text: &str) -> Result<FileSettings, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("it is not valid TOML: {}", e.to_string().trim()))?;
    let gateway = table.get("gateway").and_then(toml::Value::as_table);
    let text_of = |t: Option<&toml::Table>, key: &str| {
        t.and_then(|t| t.get(key))
            .and_then(toml::Value::as_str)
            .map(str::to_string)
    };
    let auth = gateway
        .and_then(|g| g.get("auth"))
        .and_then(toml::Value::as_table);
    Ok(FileSettings {
        bind: text_of(gateway, "bind"),
        data_dir: text_of(gateway, "data_dir").map(PathBuf::from),
        token: text_of(auth, "token"),
    })
}

/// The base URL of a gateway listening on `bind`, as the CLI makes it.
pub fn url_from_bind(bind: &str) -> Result<String, Error> {
    let addr: std::net::SocketAddr = bind.trim().parse().map_err(|_| {
        Error::Address(format!(
            "gateway.bind `{bind}` is not an address like 127.0.0.1:7788: correct it, or pass --url"
        ))
    })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    Ok(format!("http://{host}:{}", addr.port()))
}

/// Check a `--url` and drop its trailing `/`.
pub fn check_url(url: &str) -> Result<String, Error> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| {
        Error::Address(format!(
            "--url `{url}` is not a URL ({e}): write it like http://127.0.0.1:7788"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(Error::Address(format!(
            "--url `{url}` is not an http or https address: write it like http://127.0.0.1:7788"
        )));
    }
    Ok(url.trim().trim_end_matches('/').to_string())
}

/// Whether `url` is on this machine (a loopback address or `localhost`).
pub fn is_local(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Find the gateway from `hints`, the config file they name and the
/// environment `env` (`SWITCHBOARD_…` variables).
pub fn locate(hints: &Hints, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, Error> {
    let file = match &hints.config {
        Some(path) => read_config(path)?,
        None => FileSettings::default(),
    };
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let data_dir = hints
        .data_dir
        .clone()
        .or_else(|| set("SWITCHBOARD_GATEWAY__DATA_DIR").map(PathBuf::from))
        .or(file.data_dir)
        .or_else(|| dirs::data_dir().map(|d| d.join("switchboard")));
    let url = match &hints.url {
        Some(u) => check_url(u)?,
        None => {
            let bind = set("SWITCHBOARD_GATEWAY__BIND")
                .or(file.bind)
                .unwrap_or_else(|| DEFAULT_BIND.to_string());
            url_from_bind(&bind)?
        }
    };
    let token = set("SWITCHBOARD_TOKEN")
        .or_else(|| set("SWITCHBOARD_GATEWAY__AUTH__TOKEN"))
        .or(file.token)
        .filter(|t| !t.trim().is_empty());
    let token = match (token, &data_dir) {
        (Some(t), _) => TokenSource::Given(t.trim().to_string()),
        (None, Some(dir)) => TokenSource::File(dir.clone()),
        (None, None) => return Err(Error::NoDataDir),
    };
    Ok(Target {
        local: is_local(&url),
        url,
        token,
        data_dir,
        hints: hints.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_config_gives_bind_data_dir_and_token() {
        let s = parse_config(
            "[gateway]\nbind = \"0.0.0.0:9000\"\ndata_dir = \"/srv/sb\"\n\n[gateway.auth]\ntoken = \"t0k3n\"\n\n[agents.main]\nprovider = \"x\"\n",
        )
        .unwrap();
        assert_eq!(
            s,
            FileSettings {
                bind: Some("0.0.0.0:9000".into()),
                data_dir: Some("/srv/sb".into()),
                token: Some("t0k3n".into()),
            }
        );
        assert_eq!(parse_config("").unwrap(), FileSettings::default());
        assert!(
            parse_config("[gateway\n")
                .unwrap_err()
                .contains("not valid TOML")
        );
    }

    #[test]
    fn addresses_are_made_as_the_cli_makes_them() {
        assert_eq!(
            url_from_bind("127.0.0.1:7788").unwrap(),
            "http://127.0.0.1:7788"
        );
        assert_eq!(
            url_from_bind("0.0.0.0:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(url_from_bind("[::1]:7788").unwrap(), "http://[::1]:7788");
        assert!(
            url_from_bind("localhost")
                .unwrap_err()
                .to_string()
                .contains("pass --url")
        );
        assert_eq!(check_url("http://host:1/").unwrap(), "http://host:1");
        assert!(check_url("127.0.0.1:7788").is_err());
        assert!(is_local("http://127.0.0.1:7788"));
        assert!(is_local("http://localhost:7788"));
        assert!(is_local("http://[::1]:7788"));
        assert!(!is_local("https://gateway.example.com"));
    }

    #[test]
    fn the_environment_and_flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("sb-tray-locate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("switchboard.toml");
        std::fs::write(
            &config,
            "[gateway]\nbind = \"127.0.0.1:9001\"\n[gateway.auth]\ntoken = \"from-file\"\n",
        )
        .unwrap();
        let hints = Hints {
            config: Some(config.clone()),
            ..Hints::default()
        };
        let t = locate(&hints, &env(&[])).unwrap();
        assert_eq!(t.url, "http://127.0.0.1:9001");
        assert_eq!(t.token, TokenSource::Given("from-file".into()));
        assert!(t.local);

        let t = locate(
            &hints,
            &env(&[
                ("SWITCHBOARD_GATEWAY__BIND", "127.0.0.1:9002"),
                ("SWITCHBOARD_TOKEN", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(t.url, "http://127.0.0.1:9002");
        assert_eq!(t.token, TokenSource::Given("from-env".into()));
        assert!(
            !format!("{t:?}").contains("from-env"),
            "the token never shows"
        );

        let hints = Hints {
            url: Some("http://10.0.0.5:7788/".into()),
            data_dir: Some(dir.clone()),
            config: None,
        };
        let t = locate(&hints, &env(&[])).unwrap();
        assert_eq!(t.url, "http://10.0.0.5:7788");
        assert!(!t.local, "never start a gateway for another machine");
        assert_eq!(t.token, TokenSource::File(dir.clone()));
        assert!(matches!(t.token.read(), Err(Error::NoToken { .. })));
        std::fs::write(dir.join(TOKEN_FILE), "written-later\n").unwrap();
        assert_eq!(t.token.read().unwrap(), "written-later");

        let missing = Hints {
            config: Some(dir.join("nope.toml")),
            ..Hints::default()
        };
        let e = locate(&missing, &env(&[])).unwrap_err().to_string();
        assert!(e.contains("nope.toml") && e.contains("--config"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
