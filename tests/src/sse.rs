//! Reading `text/event-stream` bodies as an OpenAI client does.

use serde_json::Value;

/// The `data` of each event in `body`, in order.
pub fn events(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data: Vec<String> = Vec::new();
    for line in body.replace("\r\n", "\n").split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                out.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
        }
    }
    if !data.is_empty() {
        out.push(data.join("\n"));
    }
    out
}

/// The concatenated `choices[0].delta.content` of a chat completion stream,
/// and the parsed chunks (without `[DONE]`).
pub fn completion_text(body: &str) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut chunks = Vec::new();
    for e in events(body) {
        if e == "[DONE]" {
            continue;
        }
        let v: Value =
            serde_json::from_str(&e).unwrap_or_else(|err| panic!("chunk is not JSON ({err}): {e}"));
        if let Some(t) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text.push_str(t);
        }
        chunks.push(v);
    }
    (text, chunks)
}
