//! One attempt: [`prepare`] renders and signs (pure), [`Sender::send`] POSTs and reports an
//! [`AttemptResult`] (`Prepared` → `Sent`).
//!
//! The HTTP client never follows redirects, cuts every attempt at the configured timeout,
//! reads at most `max_response_bytes` of a response, and resolves names through a resolver
//! that refuses private addresses: the SSRF check happens where the connection is made, so
//! a name that resolves to 169.254.169.254 (DNS rebinding) is refused like the literal.

use std::net::SocketAddr;

use std::time::{Duration, Instant, SystemTime};

use hookbus_contracts::payload;
use hookbus_contracts::signature::{self, LOGTO_SIGNATURE_HEADER};
use hookbus_contracts::target::{TargetError, TargetPolicy};
use hookbus_contracts::{Delivery, Hook};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};

use crate::outcome::{AttemptResult, Failure};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const LOGTO_USER_AGENT: &str = "Logto (https://logto.io/)";

/// A request ready to send: the exact bytes that were signed.
#[derive(Debug)]
pub struct Prepared {
    pub url: String,
    pub headers: HeaderMap,
    /// Cheap to clone: the journal keeps it after the request took it.
    pub body: bytes::Bytes,
}

/// What came back.
#[derive(Debug)]
pub struct Sent {
    pub result: AttemptResult,
    pub duration: Duration,
    /// The first bytes of the response body (bounded), for logs.
    pub response_body: Option<String>,
}

/// Renders the Logto payload for `hook` and signs it both ways, at `now_ms`. During a key
/// rotation's overlap `webhook-signature` carries one signature per key (Standard
/// Webhooks' space-separated list); Logto's header uses the current key.
pub fn prepare(delivery: &Delivery, hook: &Hook, now_ms: i64) -> Prepared {
    let now_secs = now_ms / 1000;
    let body = payload::render(&delivery.event.payload, &hook.id);
    let webhook_id = delivery.event.id.as_str();
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(LOGTO_USER_AGENT));
    // Custom headers were validated when the hook was saved; one that no longer parses is
    // skipped rather than failing the delivery.
    for (name, value) in &hook.config.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(n, v);
        }
    }
    let hex = signature::logto_signature(&hook.signing_key, &body);
    let standard: Vec<String> = hook
        .signing_keys(now_ms)
        .map(|key| signature::standard_signature(key, webhook_id, now_secs, &body))
        .collect();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        headers.insert(
            name,
            HeaderValue::from_str(value).expect("ids, digits and base64 are valid header values"),
        );
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    set(&mut headers, LOGTO_SIGNATURE_HEADER, &hex);
    set(&mut headers, "webhook-id", webhook_id);
    set(&mut headers, "webhook-timestamp", &now_secs.to_string());
    set(&mut headers, "webhook-signature", &standard.join(" "));
    Prepared {
        url: hook.config.url.clone(),
        headers,
        body: body.into(),
    }
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
    use hookbus_contracts::hook::HookInput;
    use hookbus_contracts::{Event, EventName};

    #[test]
    fn prepared_request_carries_both_signatures_and_custom_headers() {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": ["PostSignIn"],
            "config": {"url": "https://example.com/h", "headers": {"x-tenant": "t1", "user-agent": "mine"}}
        }))
        .unwrap();
        let hook = input.validate(&TargetPolicy::default()).unwrap();
        let event = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        let delivery = Delivery::new(hook.id.clone(), event.clone());
        let p = prepare(&delivery, &hook, 1_700_000_000_000);
        assert!(p
            .body
            .ends_with(format!(",\"hookId\":\"{}\"}}", hook.id).as_bytes()));
        let h = |n: &str| p.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(
            h("user-agent"),
            "mine",
            "a custom header may override the user agent"
        );
        assert_eq!(h("x-tenant"), "t1");
        assert_eq!(h("webhook-id"), event.id.as_str());
        assert_eq!(h("webhook-timestamp"), "1700000000");
        assert_eq!(
            h(LOGTO_SIGNATURE_HEADER),
            signature::logto_signature(&hook.signing_key, &p.body)
        );
        assert_eq!(
            h("webhook-signature"),
            signature::standard_signature(
                &hook.signing_key,
                event.id.as_str(),
                1_700_000_000,
                &p.body
            )
        );
    }

    #[test]
    fn during_a_rotation_both_keys_sign() {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": ["PostSignIn"], "config": {"url": "https://example.com/h"}
        }))
        .unwrap();
        let mut hook = input.validate(&TargetPolicy::default()).unwrap();
        let old = hook.signing_key.clone();
        hook.rotate_key(Duration::from_secs(60), 1_000_000);
        let event = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        let delivery = Delivery::new(hook.id.clone(), event.clone());
        let p = prepare(&delivery, &hook, 1_000_000);
        let header = p.headers["webhook-signature"].to_str().unwrap().to_owned();
        let id = event.id.as_str();
        assert_eq!(
            header,
            format!(
                "{} {}",
                signature::standard_signature(&hook.signing_key, id, 1000, &p.body),
                signature::standard_signature(&old, id, 1000, &p.body)
            )
        );
        assert_eq!(
            p.headers[LOGTO_SIGNATURE_HEADER],
            signature::logto_signature(&hook.signing_key, &p.body)
        );
        let later = prepare(&delivery, &hook, 1_000_000 + 61_000);
        assert!(!later.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .contains(' '));
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_private_addresses() {
        use std::str::FromStr;
        let strict = GuardedResolver {
            policy: TargetPolicy::default(),
        };
        let err = match strict.resolve(Name::from_str("localhost").unwrap()).await {
            Err(err) => err,
            Ok(_) => panic!("localhost resolved through the guard"),
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
