//! The web console (`/console`) and the portal page (`/portal/:token`): one HTML page, one
//! script and one stylesheet, compiled into the binary so that a router serves them with no
//! CDN and no network, from the same listener as the admin API they read.
//!
//! The page renders everything it shows as text (the script never assigns markup), and every
//! answer carries a Content-Security-Policy that lets the page load and call nothing but
//! these files and this origin, and run no inline script or style: a receiver answering
//! `<script>` cannot run, even if a rendering bug slipped through.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::middleware::map_response_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hookbus_contracts::catalogue::EventKind;
use hookbus_contracts::EventName;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Everything from this origin only; no inline code, no plugins, no `<base>`, no forms posted
/// anywhere (the script sends every request itself).
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

/// `frame-ancestors` of the console, and of the portal unless configured otherwise.
pub const NO_FRAMES: &str = "'none'";

/// The console's and the portal page's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleConfig {
    /// Key of portal links (HMAC-SHA256). Unset, each router start draws a random one: links
    /// then stop working when the router restarts, and only the router that minted a link
    /// accepts it (set the same secret on every router).
    #[arg(long, env = "HOOKBUS_PORTAL_SECRET", hide_env_values = true)]
    pub portal_secret: Option<String>,
    /// Who may embed the portal page in a frame: the CSP `frame-ancestors` sources, such as
    /// `https://app.example.com`. The console itself is never framed.
    #[arg(long, env = "HOOKBUS_PORTAL_FRAME_ANCESTORS", default_value = NO_FRAMES,
          value_parser = parse_frame_ancestors)]
    pub portal_frame_ancestors: String,
}

impl Default for ConsoleConfig {
    fn default() -> ConsoleConfig {
        ConsoleConfig {
            portal_secret: None,
            portal_frame_ancestors: NO_FRAMES.into(),
        }
    }
}

/// Sources only: a `;` would add directives of its own to the policy.
fn parse_frame_ancestors(value: &str) -> Result<String, String> {
    if value.contains(';') || HeaderValue::from_str(value).is_err() || value.trim().is_empty() {
        return Err(
            "a space-separated list of CSP sources, such as https://app.example.com".into(),
        );
    }
    Ok(value.to_owned())
}

fn policy(frame_ancestors: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{POLICY}; frame-ancestors {frame_ancestors}"))
        .expect("sources were checked when the configuration was parsed")
}

/// The console's routes and the portal page's.
pub fn routes(config: &ConsoleConfig) -> Router {
    let console = Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/catalogue.json", get(catalogue))
        .layer(map_response_with_state(policy(NO_FRAMES), secure));
    let portal = Router::new()
        .route("/portal/{token}", get(index))
        .layer(map_response_with_state(
            policy(&config.portal_frame_ancestors),
            secure,
        ));
    console.merge(portal)
}

/// The headers of every console answer. `no-referrer` and `no-store` because a portal
/// page's address holds its token: it must not leak to another site nor stay in a cache.
async fn secure(State(policy): State<HeaderValue>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn index() -> Response {
    text("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    text("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    text("text/css; charset=utf-8", STYLE)
}

fn text(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Every event and its family, for the console's event picker.
async fn catalogue() -> Json<serde_json::Value> {
    let events: Vec<serde_json::Value> = EventName::all()
        .map(|event| {
            let kind = match event.kind() {
                EventKind::Interaction => "interaction",
                EventKind::Data => "data",
                EventKind::Exception => "exception",
            };
            serde_json::json!({"name": event.as_str(), "kind": kind})
        })
        .collect();
    Json(serde_json::Value::Array(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
        assert!(INDEX.contains(r#"<script src="/console/console.js""#));
        assert!(
            !SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"),
            "the console renders text only"
        );
        assert!(
            !SCRIPT.contains("localStorage"),
            "the token stays in the session"
        );
    }

    #[test]
    fn frame_ancestors_take_sources_only() {
        assert!(parse_frame_ancestors("https://app.example.com 'self'").is_ok());
        for bad in ["", "https://a.example; script-src *", "a\nb"] {
            assert!(parse_frame_ancestors(bad).is_err(), "{bad:?}");
        }
    }
}
