//! A small blocking client for the identity API, taking only a base URL, so the
//! same calls run against an in-process server or the real `stagegate run`.

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

/// A response: status, headers and the JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error` code of an error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The API client.
pub struct ApiClient {
    base: String,
    http: Client,
}

/// Every request on a new connection: the server closes a connection after refusing a
/// request (413, 431, 408) or at its idle timeout, and a pooled one reused in that
/// instant fails on the client side (`IncompleteMessage`), which is not what a test checks.
fn builder() -> reqwest::blocking::ClientBuilder {
    Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .pool_max_idle_per_host(0)
}

impl ApiClient {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http: builder().build().expect("reqwest client"),
        }
    }

    /// A client for `base` whose connections come from the local address `from` (any of
    /// 127.0.0.0/8 on Linux): how tests act as several clients of the real server.
    pub fn from_address(base: &str, from: std::net::IpAddr) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http: builder()
                .local_address(from)
                .build()
                .expect("reqwest client"),
        }
    }

    /// The base URL.
    #[allow(dead_code)]
    pub fn base(&self) -> &str {
        &self.base
    }

    fn send(&self, rb: RequestBuilder) -> Reply {
        let resp = rb.send().expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// A request builder for any method and path, for the odd cases.
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a prepared request.
    pub fn run(&self, rb: RequestBuilder) -> Reply {
        self.send(rb)
    }

    /// `GET path` with an optional bearer credential.
    pub fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut rb = self.request(reqwest::Method::GET, path);
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        self.send(rb)
    }

    /// `POST path` with a JSON body and an optional bearer credential.
    pub fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> Reply {
        let mut rb = self.request(reqwest::Method::POST, path).json(body);
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        self.send(rb)
    }

    /// `POST path` with a raw body and content type.
    pub fn post_raw(
        &self,
        path: &str,
        bearer: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let mut rb = self
            .request(reqwest::Method::POST, path)
            .header("content-type", content_type)
            .body(body);
        if let Some(b) = bearer {
            rb = rb.bearer_auth(b);
        }
        self.send(rb)
    }

    /// `POST /v1/login`.
    pub fn login(&self, username: &str, password: &str) -> Reply {
        self.post(
            "/v1/login",
            None,
            &json!({"username": username, "password": password}),
        )
    }

    /// Logs in and returns the session id; panics unless 200.
    pub fn session(&self, username: &str, password: &str) -> String {
        let r = self.login(username, password);
        assert_eq!(r.status, 200, "login {username}: {}", r.text);
        r.body["session"].as_str().expect("session").to_string()
    }

    /// `POST /v1/logout`.
    pub fn logout(&self, bearer: &str) -> Reply {
        self.post_raw("/v1/logout", Some(bearer), "application/json", Vec::new())
    }

    /// `GET /v1/whoami`.
    pub fn whoami(&self, bearer: &str) -> Reply {
        self.get("/v1/whoami", Some(bearer))
    }

    /// `POST /v1/authorize` with the given question.
    pub fn authorize(&self, bearer: &str, question: &Value) -> Reply {
        self.post("/v1/authorize", Some(bearer), question)
    }

    /// Whether `/v1/authorize` allows it, and the reason code; panics unless 200.
    pub fn allowed(&self, bearer: &str, question: &Value) -> (bool, String) {
        let r = self.authorize(bearer, question);
        assert_eq!(r.status, 200, "authorize {question}: {}", r.text);
        (
            r.body["allowed"].as_bool().expect("allowed"),
            r.body["code"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// `GET /v1/models` as sorted `scope/name` strings; panics unless 200.
    pub fn model_names(&self, bearer: &str) -> Vec<String> {
        let r = self.get("/v1/models", Some(bearer));
        assert_eq!(r.status, 200, "models: {}", r.text);
        let mut names: Vec<String> = r.body["models"]
            .as_array()
            .expect("models array")
            .iter()
            .map(|m| m["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    }
}
