//! `web_fetch`: read a web page for the model, bounded in size and time,
//! refusing loopback, private and link-local addresses unless allowed (so a
//! prompt cannot make the gateway probe the operator's own network).
//!
//! Every hop (the first URL and each redirect) is resolved here, every
//! address checked, and the connection pinned to a checked address; proxy
//! environment variables are ignored, since a proxy would resolve the name
//! itself and reach whatever it likes. Names are looked up by a
//! [`reqwest::dns::Resolve`], the system's unless one is handed in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput};
use crate::ToolSpec;

/// Limits of `web_fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebFetchSettings {
    /// Fetch loopback, private and link-local addresses too.
    pub allow_private: bool,
    /// The most body bytes read; the rest is cut off (and said so).
    pub max_bytes: usize,
    /// The longest a fetch may take, redirects included.
    pub timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: u8,
}

impl Default for WebFetchSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: 256 * 1024,
            timeout: Duration::from_secs(20),
            max_redirects: 5,
        }
    }
}

/// The `web_fetch` tool.
#[derive(Clone)]
pub struct WebFetch {
    settings: WebFetchSettings,
    /// Looks host names up.
    resolver: Arc<dyn Resolve>,
    /// The addresses refused unless `allow_private`.
    forbidden: fn(IpAddr) -> bool,
}

impl std::fmt::Debug for WebFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebFetch")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Default for WebFetch {
    fn default() -> Self {
        Self::new(WebFetchSettings::default())
    }
}

impl WebFetch {
    /// A fetcher with these limits, looking names up with the system's
    /// resolver and refusing what [`is_forbidden`] refuses.
    pub fn new(settings: WebFetchSettings) -> Self {
        Self {
            settings,
            resolver: Arc::new(SystemResolver),
            forbidden: is_forbidden,
        }
    }

    /// The same fetcher, looking names up with `resolver` (a test makes a
    /// public-looking name resolve where it says).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The same fetcher, refusing the addresses `forbidden` names instead
    /// of [`is_forbidden`]'s (a test lets a local server stand in for a
    /// public one). `allow_private` still lifts the check.
    pub fn with_forbidden(mut self, forbidden: fn(IpAddr) -> bool) -> Self {
        self.forbidden = forbidden;
        self
    }
}

/// The system's resolver (getaddrinfo, through tokio).
#[derive(Debug, Clone, Copy)]
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(addrs)
        })
    }
}

/// Whether an address is one a fetch must not reach by default: loopback,
/// private, link-local, unique-local, site-local, CGNAT, benchmarking
/// (198.18.0.0/15), unspecified, broadcast, multicast or documentation
/// ranges.
///
/// IPv6 addresses that carry an IPv4 address are judged by it where the
/// IPv4 address is what gets reached: IPv4-mapped (`::ffff:a.b.c.d`) and
/// NAT64 (`64:ff9b::a.b.c.d`), so a NAT64 network still reaches public
/// sites. The deprecated or local transition ranges are refused whole:
/// IPv4-compatible (`::a.b.c.d`), 6to4 (`2002::/16`), Teredo (`2001::/32`)
/// and local-use NAT64 (`64:ff9b:1::/48`), whose embedded address is not
/// always where a fixed reading would put it.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

fn v4_forbidden(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240
}

fn v6_forbidden(v6: Ipv6Addr) -> bool {
    let seg = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return v4_forbidden(v4);
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64, well-known prefix: the IPv4 address is the last 32 bits.
        return v4_forbidden(Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32));
    }
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || seg[..6] == [0; 6] // IPv4-compatible ::a.b.c.d (with :: and ::1)
        || seg[0] == 0x2002 // 6to4 2002::/16
        || (seg[0] == 0x2001 && seg[1] == 0) // Teredo 2001::/32
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) // local-use NAT64
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
}

impl WebFetch {
    /// Resolve `url`'s host and check every address; returns the address to
    /// connect to (pinned, so a second lookup cannot swap it).
    async fn check(&self, url: &reqwest::Url) -> Result<SocketAddr, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "only http and https URLs can be fetched, not `{}`",
                url.scheme()
            ));
        }
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ips: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let name: Name = bare
                    .parse()
                    .map_err(|e| format!("`{host}` is not a host name: {e}"))?;
                self.resolver
                    .resolve(name)
                    .await
                    .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
                    .map(|a| a.ip())
                    .collect()
            }
        };
        let first = *ips
            .first()
            .ok_or_else(|| format!("`{host}` has no address"))?;
        if !self.settings.allow_private
            && let Some(bad) = ips.iter().find(|ip| (self.forbidden)(**ip))
        {
            return Err(format!(
                "`{host}` resolves to {bad}, a loopback, private or link-local address (or another range that does not lead to the public internet), which web_fetch does not reach (the operator can allow it with tools.web_fetch.allow_private)"
            ));
        }
        Ok(SocketAddr::new(first, port))
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        let mut url = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        for _ in 0..=self.settings.max_redirects {
            let addr = self.check(&url).await?;
            let host = url.host_str().unwrap_or_default().to_string();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A proxy from HTTP_PROXY and the like would resolve the
                // name itself and could reach any address.
                .no_proxy()
                .resolve(&host, addr)
                .user_agent(concat!(
                    "switchboard/",
                    env!("CARGO_PKG_VERSION"),
                    " (web_fetch)"
                ))
                .build()
                .map_err(|e| e.to_string())?;
            let resp = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| format!("the fetch failed: {e}"))?;
            if resp.status().is_redirection() {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or("a redirect without a Location")?;
                url = url
                    .join(next)
                    .map_err(|e| format!("a bad redirect `{next}`: {e}"))?;
                continue;
            }
            return self.read(resp).await;
        }
        Err(format!(
            "more than {} redirects",
            self.settings.max_redirects
        ))
    }

    async fn read(&self, resp: reqwest::Response) -> Result<String, String> {
        let status = resp.status();
        let kind = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut body = Vec::new();
        let mut cut = false;
        let mut stream = resp.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| format!("reading the page failed: {e}"))?;
            let room = self.settings.max_bytes - body.len();
            if piece.len() > room {
                body.extend_from_slice(&piece[..room]);
                cut = true;
                break;
            }
            body.extend_from_slice(&piece);
        }
        let textual = kind.is_empty()
            || kind.starts_with("text/")
            || kind.contains("json")
            || kind.contains("xml")
            || kind.contains("javascript");
        let mut out = format!(
            "HTTP {} ({})\n\n",
            status.as_u16(),
            if kind.is_empty() {
                "no content type"
            } else {
                &kind
            }
        );
        if !textual {
            out.push_str(&format!("[{} bytes of {kind} not shown]", body.len()));
            return Ok(out);
        }
        let text = String::from_utf8_lossy(&body);
        if kind.contains("html") {
            out.push_str(&html_to_text(&text));
        } else {
            out.push_str(&text);
        }
        if cut {
            out.push_str(&format!(
                "\n\n[cut off after {} bytes]",
                self.settings.max_bytes
            ));
        }
        Ok(out)
    }
}

/// Readable text of an HTML page: scripts, styles and tags removed, space
/// collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while i < html.len() {
        if lower[i..].starts_with("<script") || lower[i..].starts_with("<style") {
            let close = if lower[i..].starts_with("<script") {
                "</script>"
            } else {
                "</style>"
            };
            i = lower[i..]
                .find(close)
                .map_or(html.len(), |at| i + at + close.len());
            continue;
        }
        if html.as_bytes()[i] == b'<' {
            let end = html[i..].find('>').map_or(html.len(), |at| i + at + 1);
            let tag = &lower[i..end];
            if [
                "<br", "<p", "</p", "<div", "</div", "<li", "<h", "</h", "<tr",
            ]
            .iter()
            .any(|t| tag.starts_with(t))
            {
                out.push('\n');
            }
            i = end;
            continue;
        }
        let next = html[i..].find('<').map_or(html.len(), |at| i + at);
        out.push_str(
            &html[i..next]
                .replace("&nbsp;", " ")
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\""),
        );
        i = next;
    }
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        let squeezed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !squeezed.is_empty() {
            lines.push(squeezed);
        }
    }
    lines.join("\n")
}

impl Tool for WebFetch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "web_fetch".into(),
            description:
                "Fetch a web page (http or https) and return its text, shortened to a size limit."
                    .into(),
            parameters: json!({
                "type": "object",
                "properties": { "url": { "type": "string", "description": "The page's full URL" } },
                "required": ["url"],
                "additionalProperties": false
            }),
        }
    }

    fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    fn call(&self, args: Value, _ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let this = self.clone();
        Box::pin(async move {
            let Some(url) = args.get("url").and_then(Value::as_str) else {
                return ToolOutput::error("`url` is required: pass {\"url\": \"https://...\"}");
            };
            match this.fetch(url).await {
                // What a page says is data, never the operator's word.
                Ok(text) => ToolOutput::ok(crate::untrusted::wrap_data(
                    &format!("web_fetch {url}"),
                    &text,
                )),
                Err(e) => ToolOutput::error(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "198.18.0.1",
            "198.19.255.255",
            // NAT64 of 127.0.0.1, 10.0.0.1 and 169.254.169.254
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::5db8:d822", // local-use NAT64: refused whole
            // IPv4-compatible: ::127.0.0.1, ::10.0.0.1 and a public one
            "::7f00:1",
            "::a00:1",
            "::5db8:d822",
            // 6to4 of 127.0.0.1 and of a public address: refused whole
            "2002:7f00:1::",
            "2002:5db8:d822::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "fec0::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822", // NAT64 of 93.184.216.34
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn html_becomes_text() {
        let html = "<html><head><style>p{}</style><script>alert(1)</script></head><body><h1>Title</h1><p>One &amp; two</p><div>three   four</div></body></html>";
        assert_eq!(html_to_text(html), "Title\nOne & two\nthree four");
    }
}
