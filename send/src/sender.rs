//! Sending one prepared attempt: [`Sender::send`] POSTs it and reports what came back.
//!
//! The HTTP client never follows redirects, cuts every attempt at the configured timeout,
//! reads at most `max_response_bytes` of a response, and resolves names through a resolver
//! that refuses private addresses: the SSRF check happens where the connection is made, so
//! a name that resolves to 169.254.169.254 (DNS rebinding) is refused like the literal.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hookbus_contracts::target::{TargetError, TargetPolicy};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderValue;

use crate::prepare::Prepared;
use crate::result::{AttemptResult, Failure};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What came back.
#[derive(Debug)]
pub struct Sent {
    pub result: AttemptResult,
    pub duration: Duration,
    /// The first bytes of the response body (bounded), for logs.
    pub response_body: Option<String>,
}

/// Sends attempts; one per process, shared (it pools connections).
pub struct Sender {
    client: reqwest::Client,
    policy: TargetPolicy,
    max_response_bytes: usize,
}

impl Sender {
    /// `egress_proxy` is the operator's `HOOKBUS_EGRESS_PROXY` (validated at startup); the
    /// proxy variables of the environment are never used, since a proxy would resolve the
    /// target past the guarded resolver.
    pub fn new(
        policy: TargetPolicy,
        egress_proxy: Option<&str>,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Sender {
        let builder = match egress_proxy {
            Some(url) => reqwest::Client::builder()
                .proxy(reqwest::Proxy::all(url).expect("HOOKBUS_EGRESS_PROXY is validated")),
            None => reqwest::Client::builder().no_proxy(),
        };
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(64)
            .dns_resolver(GuardedResolver { policy })
            .build()
            .expect("the HTTP client builds");
        Sender {
            client,
            policy,
            max_response_bytes,
        }
    }

    pub async fn send(&self, prepared: &Prepared) -> Sent {
        let started = Instant::now();
        // Literal IP URLs never reach the resolver: check them here.
        if self.policy.check_url(&prepared.url).is_err() {
            return Sent {
                result: AttemptResult::Failed(Failure::Blocked),
                duration: started.elapsed(),
                response_body: None,
            };
        }
        let request = self
            .client
            .post(&prepared.url)
            .headers(prepared.headers.clone())
            .body(prepared.body.clone());
        let (result, response_body) = match request.send().await {
            Ok(mut response) => {
                let code = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(parse_retry_after);
                let body = self.read_bounded(&mut response).await;
                (AttemptResult::Status { code, retry_after }, body)
            }
            Err(err) => (AttemptResult::Failed(failure_of(&err)), None),
        };
        Sent {
            result,
            duration: started.elapsed(),
            response_body,
        }
    }

    /// Reads at most `max_response_bytes`; the rest is never read (the connection is dropped).
    async fn read_bounded(&self, response: &mut reqwest::Response) -> Option<String> {
        let mut buf = Vec::new();
        while buf.len() < self.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        buf.truncate(self.max_response_bytes);
        Some(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
#[error("DNS lookup of {0} failed: {1}")]
struct DnsError(String, std::io::Error);

/// Resolves with the system resolver, then refuses the name if any address is private.
struct GuardedResolver {
    policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(DnsError(host.clone(), e)) as BoxError)?
                .collect();
            for addr in &addrs {
                policy
                    .check_ip(addr.ip())
                    .map_err(|e| Box::new(e) as BoxError)?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn failure_of(err: &reqwest::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut text = String::new();
    while let Some(e) = source {
        if e.downcast_ref::<TargetError>().is_some() {
            return Failure::Blocked;
        }
        if e.downcast_ref::<DnsError>().is_some() {
            return Failure::Dns;
        }
        text.push_str(&e.to_string().to_ascii_lowercase());
        source = e.source();
    }
    if err.is_timeout() {
        Failure::Timeout
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        Failure::Tls
    } else if err.is_connect() {
        Failure::Connect
    } else {
        Failure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_private_addresses() {
        use std::str::FromStr;
        let strict = GuardedResolver {
            policy: TargetPolicy::default(),
        };
        let Err(err) = strict.resolve(Name::from_str("localhost").unwrap()).await else {
            panic!("localhost resolved through the guard")
        };
        assert!(err.downcast_ref::<TargetError>().is_some(), "{err}");
        let open = GuardedResolver {
            policy: TargetPolicy {
                allow_http: true,
                allow_private: true,
            },
        };
        let addrs: Vec<_> = open
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("120")),
            Some(Duration::from_secs(120))
        );
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
