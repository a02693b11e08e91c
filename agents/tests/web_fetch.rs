//! `web_fetch` against a local server: bounded, and refusing loopback by
//! default — also behind a public-looking name, inside IPv6 forms that carry
//! an IPv4 address, and after a redirect.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::Query;
use axum::response::Redirect;
use axum::routing::get;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::json;
use switchboard_agents::tools::{Tool, ToolContext, WebFetch, WebFetchSettings, is_forbidden};

/// A resolver that knows only the names a test gives it.
struct Names(HashMap<String, IpAddr>);

impl Names {
    fn new(pairs: &[(&str, &str)]) -> Arc<Self> {
        Arc::new(Self(
            pairs
                .iter()
                .map(|(name, ip)| (name.to_string(), ip.parse().unwrap()))
                .collect(),
        ))
    }
}

impl Resolve for Names {
    fn resolve(&self, name: Name) -> Resolving {
        let result: Result<Addrs, Box<dyn std::error::Error + Send + Sync>> =
            match self.0.get(name.as_str()) {
                Some(ip) => Ok(Box::new(std::iter::once(SocketAddr::new(*ip, 0)))),
                None => Err(format!("{} is not a name this test knows", name.as_str()).into()),
            };
        Box::pin(std::future::ready(result))
    }
}

async fn serve() -> String {
    let app = Router::new()
        .route(
            "/page",
            get(|| async {
                (
                    [("content-type", "text/html")],
                    "<html><body><h1>Hello</h1><p>world</p></body></html>",
                )
            }),
        )
        .route(
            "/big",
            get(|| async { ([("content-type", "text/plain")], "x".repeat(10_000)) }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/page") }))
        .route(
            "/to",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                Redirect::temporary(&q["url"])
            }),
        )
        .route("/loop", get(|| async { Redirect::temporary("/loop") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn allowed(max_bytes: usize) -> WebFetch {
    WebFetch::new(WebFetchSettings {
        allow_private: true,
        max_bytes,
        ..WebFetchSettings::default()
    })
}

#[tokio::test]
async fn pages_are_read_as_text_and_cut_at_the_limit() {
    let base = serve().await;
    let out = allowed(1000)
        .call(
            json!({ "url": format!("{base}/hop") }),
            ToolContext::default(),
        )
        .await;
    assert!(!out.is_error, "{}", out.content);
    assert!(
        out.content.contains("HTTP 200") && out.content.contains("Hello\nworld"),
        "{}",
        out.content
    );
    let out = allowed(1000)
        .call(
            json!({ "url": format!("{base}/big") }),
            ToolContext::default(),
        )
        .await;
    assert!(out.content.contains("[cut off after 1000 bytes]"));
    // The page is marked as untrusted data; inside the tag, the limit holds.
    let inner = out
        .content
        .split_once("]\n")
        .and_then(|(_, rest)| rest.strip_suffix("\n</untrusted_data>"))
        .unwrap_or_else(|| panic!("not marked: {}", out.content));
    assert!(inner.len() < 1200, "{}", inner.len());
    assert!(
        out.content
            .starts_with(&format!("<untrusted_data source=\"web_fetch {base}/big\">"))
    );
    let out = allowed(1000)
        .call(
            json!({ "url": format!("{base}/loop") }),
            ToolContext::default(),
        )
        .await;
    assert!(
        out.is_error && out.content.contains("redirects"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn loopback_and_odd_schemes_are_refused_by_default() {
    let base = serve().await;
    let tool = WebFetch::default();
    for url in [
        format!("{base}/page"),
        base.replace("127.0.0.1", "localhost") + "/page",
    ] {
        let out = tool
            .call(json!({ "url": url }), ToolContext::default())
            .await;
        assert!(out.is_error, "{url}: {}", out.content);
        assert!(
            out.content.contains("loopback, private or link-local"),
            "{}",
            out.content
        );
    }
    let out = tool
        .call(
            json!({ "url": "file:///etc/passwd" }),
            ToolContext::default(),
        )
        .await;
    assert!(
        out.is_error && out.content.contains("only http and https"),
        "{}",
        out.content
    );
    let out = tool.call(json!({}), ToolContext::default()).await;
    assert!(out.is_error && out.content.contains("`url` is required"));
}

#[tokio::test]
async fn a_public_name_for_an_internal_address_is_refused() {
    for ip in [
        "10.0.0.1",
        "169.254.169.254",
        "198.18.0.1",         // benchmarking 198.18.0.0/15
        "::ffff:127.0.0.1",   // IPv4-mapped
        "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
        "::7f00:1",           // IPv4-compatible ::127.0.0.1
        "2002:7f00:1::1",     // 6to4 of 127.0.0.1
        "2002:a00:1::1",      // 6to4 of 10.0.0.1
    ] {
        let tool = WebFetch::default().with_resolver(Names::new(&[("public.example", ip)]));
        let out = tool
            .call(
                json!({ "url": "http://public.example/page" }),
                ToolContext::default(),
            )
            .await;
        assert!(out.is_error, "{ip}: {}", out.content);
        let shown: IpAddr = ip.parse().unwrap();
        assert!(
            out.content.contains(&format!("resolves to {shown}"))
                && out.content.contains("loopback, private or link-local"),
            "{ip}: {}",
            out.content
        );
    }
}

#[tokio::test]
async fn a_redirect_from_a_public_address_to_an_internal_one_is_refused() {
    let base = serve().await;
    let port = base.rsplit(':').next().unwrap().to_string();
    // The local server stands in for a public one: only its own address is
    // let through, everything else is judged as in production.
    let tool = WebFetch::default()
        .with_resolver(Names::new(&[
            ("public.example", "127.0.0.1"),
            ("internal.example", "10.1.2.3"),
            ("nat64.example", "64:ff9b::7f00:1"),
        ]))
        .with_forbidden(|ip| ip != IpAddr::V4(Ipv4Addr::LOCALHOST) && is_forbidden(ip));
    let public = format!("http://public.example:{port}");

    let out = tool
        .call(
            json!({ "url": format!("{public}/hop") }),
            ToolContext::default(),
        )
        .await;
    assert!(
        !out.is_error && out.content.contains("Hello\nworld"),
        "the stand-in public server answers: {}",
        out.content
    );

    for (target, refused) in [
        (format!("http://internal.example:{port}/page"), "10.1.2.3"),
        (
            format!("http://nat64.example:{port}/page"),
            "64:ff9b::7f00:1",
        ),
        (format!("http://10.0.0.1:{port}/page"), "10.0.0.1"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/page"),
            "::ffff:127.0.0.1",
        ),
        (format!("http://[::127.0.0.1]:{port}/page"), "::7f00:1"),
    ] {
        let refused: IpAddr = refused.parse().unwrap();
        let start =
            reqwest::Url::parse_with_params(&format!("{public}/to"), [("url", &target)]).unwrap();
        let out = tool
            .call(json!({ "url": start.as_str() }), ToolContext::default())
            .await;
        assert!(out.is_error, "{target}: {}", out.content);
        assert!(
            out.content.contains("loopback, private or link-local")
                && !out.content.contains("public.example"),
            "{target} must be refused at the redirect: {}",
            out.content
        );
        assert!(
            out.content.contains(&format!("resolves to {refused}")),
            "{target}: {}",
            out.content
        );
    }
}
