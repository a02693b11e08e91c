//! A client for OpenAI-compatible embeddings endpoints (OpenAI, Ollama,
//! vLLM, llama.cpp server): `POST {base_url}/embeddings` with
//! `{"model", "input": [texts]}`, answered with
//! `{"data": [{"embedding": [...], "index": i}]}`.

use serde_json::{Value, json};

use super::http::HttpClient;
use super::{ProviderError, ProviderSettings};

/// The embeddings client of one provider and model. Its `Debug` never
/// shows the key.
#[derive(Debug, Clone)]
pub struct EmbeddingsClient {
    http: HttpClient,
}

impl EmbeddingsClient {
    /// A client with its own connection pool. `settings.model` is the
    /// embeddings model; the sampling settings are not used.
    pub fn new(settings: ProviderSettings) -> Self {
        Self {
            http: HttpClient::new(settings),
        }
    }

    /// The provider's name from the config.
    pub fn name(&self) -> &str {
        &self.http.settings.name
    }

    /// The embeddings model it asks.
    pub fn model(&self) -> &str {
        &self.http.settings.model
    }

    /// One vector per text of `texts`, in their order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({ "model": self.http.settings.model, "input": texts });
        let mut req = self
            .http
            .client
            .post(self.http.url("embeddings"))
            .json(&body);
        if let Some(key) = &self.http.settings.api_key {
            req = req.bearer_auth(key);
        }
        let resp = self.http.send(req).await?;
        let answer: Value = tokio::time::timeout(self.http.settings.idle_timeout, resp.json())
            .await
            .map_err(|_| self.http.timeout())?
            .map_err(|e| {
                self.http
                    .protocol(format!("the embeddings answer is not JSON: {e}"))
            })?;
        parse(&answer, texts.len()).map_err(|detail| self.http.protocol(detail))
    }
}

/// The vectors of an embeddings answer for `expected` inputs, ordered by
/// their `index`.
fn parse(answer: &Value, expected: usize) -> Result<Vec<Vec<f32>>, String> {
    let Some(data) = answer.get("data").and_then(Value::as_array) else {
        return Err("the embeddings answer has no `data` array (is this an OpenAI-compatible /embeddings endpoint?)".into());
    };
    if data.len() != expected {
        return Err(format!(
            "the embeddings answer has {} vectors for {expected} inputs",
            data.len()
        ));
    }
    let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let Some(numbers) = item.get("embedding").and_then(Value::as_array) else {
            return Err(format!(
                "vector {index} of the embeddings answer is not an array of numbers (ask for the float encoding)"
            ));
        };
        let mut vector = Vec::with_capacity(numbers.len());
        for n in numbers {
            match n.as_f64() {
                // Embeddings are stored and compared as f32.
                Some(x) if x.is_finite() => vector.push(x as f32),
                _ => {
                    return Err(format!(
                        "vector {index} of the embeddings answer holds a value that is not a number"
                    ));
                }
            }
        }
        if vector.is_empty() {
            return Err(format!("vector {index} of the embeddings answer is empty"));
        }
        vectors.push((index, vector));
    }
    vectors.sort_by_key(|(index, _)| *index);
    if vectors
        .iter()
        .enumerate()
        .any(|(i, (index, _))| *index != i as u64)
    {
        return Err("the embeddings answer's indexes do not match its inputs".into());
    }
    Ok(vectors.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn vectors_come_back_in_input_order() {
        let answer = json!({ "object": "list", "data": [
            { "object": "embedding", "index": 1, "embedding": [0.0, 1.0] },
            { "object": "embedding", "index": 0, "embedding": [1.0, 0.5] },
        ], "model": "m" });
        assert_eq!(
            parse(&answer, 2).unwrap(),
            vec![vec![1.0, 0.5], vec![0.0, 1.0]]
        );
        assert!(
            parse(&answer, 3)
                .unwrap_err()
                .contains("2 vectors for 3 inputs")
        );
        assert!(parse(&json!({ "error": "no" }), 1).is_err());
        let base64 = json!({ "data": [{ "index": 0, "embedding": "AAAA" }] });
        assert!(parse(&base64, 1).unwrap_err().contains("float"));
        let twice = json!({ "data": [{ "index": 0, "embedding": [1.0] }, { "index": 0, "embedding": [2.0] }] });
        assert!(parse(&twice, 2).is_err());
    }
}
