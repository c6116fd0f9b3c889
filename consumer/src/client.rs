//! [`Client`]: the connection to one `cairnd`.
//!
//! A `Client` is cheap to clone (an `Arc`); every clone shares one `reqwest` connection pool,
//! so producers, readers and consumers made from it reuse keep-alive connections. It holds
//! the base URL (`http://` or `https://`; TLS by rustls, trusting the web PKI roots plus any
//! [`ClientBuilder::root_certificate_pem`]), an optional bearer token, timeouts and the
//! [`RetryPolicy`] that the producer, reader and group calls use.
//! The admin calls are in [`crate::admin`].
//!
//! ```
//! let client = cairn_consumer::Client::new("http://127.0.0.1:7420").unwrap();
//! let same_pool = client.clone(); // cheap: one connection pool for both
//! # drop(same_pool);
//! ```

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::error::{api_error, Error, Result};
use crate::retry::RetryPolicy;

/// Default timeout of one request, added to any long-poll wait the request asks for.
///
/// ```
/// assert_eq!(cairn_consumer::client::REQUEST_TIMEOUT_DEFAULT.as_secs(), 30);
/// ```
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default timeout for establishing a connection.
///
/// ```
/// assert_eq!(cairn_consumer::client::CONNECT_TIMEOUT_DEFAULT.as_secs(), 10);
/// ```
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// A handle to one `cairnd`, shared by everything made from it.
///
/// ```no_run
/// # async fn demo() -> Result<(), cairn_consumer::Error> {
/// let client = cairn_consumer::Client::new("http://127.0.0.1:7420")?;
/// client.health().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    request_timeout: Duration,
    retry: RetryPolicy,
}

/// Settings for a [`Client`].
///
/// ```no_run
/// use std::time::Duration;
/// # fn demo() -> Result<(), cairn_consumer::Error> {
/// let client = cairn_consumer::Client::builder("http://127.0.0.1:7420")
///     .bearer_token("secret")
///     .request_timeout(Duration::from_secs(10))
///     .retry(cairn_consumer::RetryPolicy::none())
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    token: Option<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    root_certificates: Vec<Vec<u8>>,
}

impl ClientBuilder {
    /// Also trusts the CA (or self-signed) certificate(s) in `pem` for `https://` URLs, on top
    /// of the bundled web PKI roots (for a `cairnd --tls-cert` with a private CA).
    ///
    /// ```
    /// let b = cairn_consumer::Client::builder("https://localhost:7420").root_certificate_pem(b"-----BEGIN...".to_vec());
    /// ```
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    ///
    /// ```
    /// let b = cairn_consumer::Client::builder("http://localhost:7420").bearer_token("t");
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Timeout of one request (a long-poll's wait is added to it).
    ///
    /// ```
    /// let b = cairn_consumer::Client::builder("http://localhost:7420")
    ///     .request_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Timeout for establishing a connection.
    ///
    /// ```
    /// let b = cairn_consumer::Client::builder("http://localhost:7420")
    ///     .connect_timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retry policy for produce, read and group calls.
    ///
    /// ```
    /// let b = cairn_consumer::Client::builder("http://localhost:7420")
    ///     .retry(cairn_consumer::RetryPolicy::default());
    /// ```
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the client.
    ///
    /// ```
    /// let c = cairn_consumer::Client::builder("http://localhost:7420").build().unwrap();
    /// assert_eq!(c.base_url(), "http://localhost:7420");
    /// ```
    pub fn build(self) -> Result<Client> {
        if !(self.base.starts_with("http://") || self.base.starts_with("https://")) {
            return Err(Error::InvalidInput(format!(
                "base URL must start with http:// or https://, got {:?}",
                self.base
            )));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        for pem in &self.root_certificates {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: self.base.trim_end_matches('/').to_string(),
                token: self.token,
                request_timeout: self.request_timeout,
                retry: self.retry,
            }),
        })
    }
}

impl Client {
    /// A client with default settings for `base_url` (e.g. `http://127.0.0.1:7420`).
    ///
    /// ```
    /// let c = cairn_consumer::Client::new("http://127.0.0.1:7420/").unwrap();
    /// assert_eq!(c.base_url(), "http://127.0.0.1:7420");
    /// assert!(cairn_consumer::Client::new("127.0.0.1:7420").is_err());
    /// ```
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        Self::builder(base_url).build()
    }

    /// A builder for a client of `base_url`.
    ///
    /// ```
    /// let c = cairn_consumer::Client::builder("http://127.0.0.1:7420").build().unwrap();
    /// ```
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            token: None,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            retry: RetryPolicy::default(),
            root_certificates: Vec::new(),
        }
    }

    /// The server's base URL, without a trailing slash.
    ///
    /// ```
    /// # let c = cairn_consumer::Client::new("http://h:1").unwrap();
    /// assert_eq!(c.base_url(), "http://h:1");
    /// ```
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The retry policy of this client.
    ///
    /// ```
    /// # let c = cairn_consumer::Client::new("http://h:1").unwrap();
    /// assert_eq!(c.retry_policy(), cairn_consumer::RetryPolicy::default());
    /// ```
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// `GET /v1/health`: succeeds once the server's store is open.
    ///
    /// ```no_run
    /// # async fn demo(client: cairn_consumer::Client) -> Result<(), cairn_consumer::Error> {
    /// client.health().await?;
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Result<()> {
        let _: serde_json::Value = self.json(self.request(Method::GET, "/v1/health")).await?;
        Ok(())
    }

    /// A request to `path` (starting with `/`) with auth and the default timeout.
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_waiting(method, path, Duration::ZERO)
    }

    /// As [`Client::request`] for a request that may wait `wait` on the server (long-poll).
    pub(crate) fn request_waiting(&self, method: Method, path: &str, wait: Duration) -> RequestBuilder {
        let rb = self
            .inner
            .http
            .request(method, format!("{}{}", self.inner.base, path))
            .timeout(self.inner.request_timeout + wait);
        match &self.inner.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends `rb` and returns the response if its status is 2xx, else the typed error.
    pub(crate) async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        let resp = rb.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(api_error(status.as_u16(), &body))
    }

    /// Sends `rb` and parses a 2xx JSON reply.
    pub(crate) async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let resp = self.send(rb).await?;
        let body = resp.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| Error::Protocol(format!("reply is not the expected JSON: {e}")))
    }

    /// Sends `rb` and discards a 2xx reply's body.
    pub(crate) async fn empty(&self, rb: RequestBuilder) -> Result<()> {
        let resp = self.send(rb).await?;
        let _ = resp.bytes().await?;
        Ok(())
    }
}
