//! The gateway's port under attack: guessed tokens are throttled per client
//! address without locking others out, weak tokens refuse to start, the
//! token never travels in a URL, slow, piled-up and oversized requests get
//! clear refusals, and TLS serves a certificate that is renewed in place.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(30);

async fn start(extra: &str) -> (FakeOpenAi, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), extra)).await;
    (model, gw, dir)
}

/// `GET /api/status` as `client` (an `X-Forwarded-For` address) with
/// `token`: the status, `Retry-After`, and the body.
async fn status_as(gw: &Gateway, client: &str, token: &str) -> (u16, Option<String>, Value) {
    let r = gw
        .http
        .get(format!("{}/api/status", gw.url))
        .bearer_auth(token)
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_throttled_per_address_and_never_locks_out_the_right_token() {
    // Behind a trusted proxy (the test itself), addresses come from
    // X-Forwarded-For.
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config(port, &model.base_url(), "").replace(
        "shutdown_grace_secs = 20\n",
        "shutdown_grace_secs = 20\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let text = text.replace(
        &format!("token = \"{TOKEN}\"\n"),
        &format!("token = \"{TOKEN}\"\nfailed_per_minute = 3\n"),
    );
    let gw = Gateway::start(dir.path(), &text).await;

    let guesser = "203.0.113.5";
    for i in 0..4 {
        let (status, _, body) = status_as(&gw, guesser, &format!("wrong-guess-{i}")).await;
        assert_eq!(status, 401, "guess {i}: {body}");
    }
    let (status, retry, body) = status_as(&gw, guesser, "wrong-guess-4").await;
    assert_eq!(status, 429, "{body}");
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not checked"),
        "{body}"
    );
    // From the guesser's address even the right token waits: it is not
    // compared at all meanwhile.
    assert_eq!(status_as(&gw, guesser, TOKEN).await.0, 429);
    // Someone else's failures never lock out the right token elsewhere.
    assert_eq!(status_as(&gw, "198.51.100.7", TOKEN).await.0, 200);
    // The UI's sign-in form counts too.
    let form = |token: &str| {
        gw.http
            .post(format!("{}/login", gw.url))
            .header("x-forwarded-for", "203.0.113.9")
            .form(&[("token", token)])
            .send()
    };
    for i in 0..4 {
        assert_eq!(form(&format!("nope-{i}")).await.unwrap().status(), 401);
    }
    assert_eq!(form("nope-again").await.unwrap().status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(free_port(), &model.base_url(), "").replace(
        &format!("token = \"{TOKEN}\"\n"),
        &format!("token = \"{TOKEN}\"\nfailed_per_minute = 3\n"),
    );
    let gw = Gateway::start(dir.path(), &text).await;
    // A new made-up address each time does not reset the count.
    for i in 0..4 {
        let (status, _, _) = status_as(&gw, &format!("192.0.2.{i}"), "wrong").await;
        assert_eq!(status, 401);
    }
    let (status, _, body) = status_as(&gw, "192.0.2.200", "wrong").await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_token_refuses_to_start_and_a_new_one_works() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let weak = config(port, &model.base_url(), "").replace(
        &format!("token = \"{TOKEN}\""),
        "token = \"hunter2-hunter2\"",
    );
    let mut gw = Gateway::prepare(dir.path(), &weak);
    gw.spawn_only();
    let status = gw.wait_exit().await;
    assert!(!status.success());
    let log = gw.log();
    assert!(log.contains("gateway.auth.token: is too weak"), "{log}");
    assert!(log.contains("switchboard token new"), "{log}");
    assert!(
        !log.contains("hunter2-hunter2"),
        "the token was echoed: {log}"
    );

    let (ok, out, err) = gw.cli(&["token", "new"]);
    assert!(ok.success(), "{err}");
    let token = out.trim().to_string();
    assert!(token.len() >= 32, "{token}");
    gw.rewrite_config(&config(port, &model.base_url(), "").replace(
        &format!("token = \"{TOKEN}\""),
        &format!("token = \"{token}\""),
    ));
    gw.restart().await;
    let r = gw
        .http
        .get(format!("{}/api/status", gw.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_goes_in_a_url() {
    let (_model, gw, _dir) = start("").await;
    let r = gw
        .http
        .get(format!("{}/api/status?token={TOKEN}", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_in_url", "{body}");
    let ws = format!(
        "{}/api/ws?token={TOKEN}",
        gw.url.replace("http://", "ws://")
    );
    match tokio_tungstenite::connect_async(ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
        }
        other => panic!("a WebSocket opened with the token in its URL: {other:?}"),
    }
}

/// Read from `stream` until the server closes it; what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open for {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_piled_up_and_oversized_requests_are_refused_clearly() {
    let (_model, gw, _dir) = start(
        "[gateway.limits]\nheader_timeout_secs = 1\nmax_connections = 4\nws_message_bytes = 1024\n",
    )
    .await;
    let addr = gw.url.trim_start_matches("http://").to_string();

    // Headers that never end: the connection is closed after the timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let said = until_closed(&mut slow).await;
    assert!(!said.contains("200 OK"), "{said}");

    // A body over the limit: 413, said plainly, and the gateway goes on.
    let big = "x".repeat(2 << 20);
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"model\":\"main\",\"messages\":[{{\"role\":\"user\",\"content\":\"{big}\"}}]}}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");
    let (status, _) = gw.chat("ada", "still there?").await;
    assert_eq!(status, 200);

    // A WebSocket message over the limit closes that socket only.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut req = format!("{}/api/ws", gw.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let _ = ws.send(Message::Text("y".repeat(4096).into())).await;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversized WebSocket message was taken");

    // More connections than the cap: the one over it is answered 503.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut over = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let said = until_closed(&mut over).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("too many open connections"), "{said}");
    drop(held);
}

/// A self-signed certificate for `localhost` and its key, as PEM.
fn certificate() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

fn https_client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .https_only(true)
        .build()
        .unwrap()
}

/// Ask `url` with `client` until it answers 200 (within [`WAIT`]).
async fn until_ok(client: &reqwest::Client, url: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_picks_up_a_renewed_certificate() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = certificate();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();
    let port = free_port();
    let extra = format!(
        "[gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let mut gw = Gateway::prepare(dir.path(), &config(port, &model.base_url(), &extra));
    gw.spawn_only();
    let url = format!("https://localhost:{port}/healthz");
    until_ok(
        &https_client(&cert1),
        &url,
        "HTTPS with the first certificate",
    )
    .await;
    // Plain HTTP to the TLS port gets nowhere.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );

    // Renewed in place: the new certificate is served without a restart.
    let (cert2, key2) = certificate();
    std::fs::write(&key_path, &key2).unwrap();
    std::fs::write(&cert_path, &cert2).unwrap();
    until_ok(
        &https_client(&cert2),
        &url,
        "HTTPS with the renewed certificate",
    )
    .await;
    assert!(
        https_client(&cert1).get(&url).send().await.is_err(),
        "the old certificate is still served"
    );
    assert!(
        gw.log().contains("TLS certificate reloaded"),
        "{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_security_names_findings_by_id_and_fails_on_a_high_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let tg = switchboard_tests::fake_telegram::FakeTelegram::start().await;
    let (_model, gw, _dir) = start(&format!(
        "[channels.telegram.accounts.main]\ntoken = \"{}\"\napi_url = \"{}\"\npoll_timeout_secs = 1\ndm_policy = \"open\"\n",
        switchboard_tests::fake_telegram::TOKEN,
        tg.url()
    ))
    .await;
    let findings = |gw: &Gateway| {
        let (status, out, err) = gw.cli(&["--json", "doctor", "--security"]);
        let v: Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"));
        let ids: Vec<String> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect();
        for f in v["findings"].as_array().unwrap() {
            assert!(
                !f["fix"].as_str().unwrap_or("").is_empty(),
                "a finding without its fix: {f}"
            );
        }
        (status.success(), ids)
    };
    let (ok, ids) = findings(&gw);
    assert!(!ok, "a high finding must fail the command: {ids:?}");
    assert!(ids.contains(&"SB-DM-OPEN".to_string()), "{ids:?}");
    // The config holds the token in plain text and others can read it.
    assert!(ids.contains(&"SB-CONFIG-PERMS".to_string()), "{ids:?}");
    std::fs::set_permissions(&gw.config_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, ids) = findings(&gw);
    assert!(!ids.contains(&"SB-CONFIG-PERMS".to_string()), "{ids:?}");
    assert!(!ids.contains(&"SB-AUDIT-BROKEN".to_string()), "{ids:?}");
    // The token is never printed.
    let (_, out, err) = gw.cli(&["doctor", "--security"]);
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN), "{out}{err}");
    assert!(out.contains("SB-DM-OPEN") && out.contains("fix:"), "{out}");
}
