//! W3C trace context (`traceparent`, `tracestate`) as it travels with one event: from the
//! ingest request or the SDK caller, in AMQP headers from the producer to the router, to the
//! deliverer, through retry tiers, dead letters and replays, so that one trace tells the
//! event's whole story (ARCHITECTURE.md, "Tracing").
//!
//! Text only and dependency-free, because the SDK an auth service embeds carries it too;
//! with the `otel-api` feature it converts to and from OpenTelemetry's `SpanContext`.

use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// W3C's advice for what a vendor list may be cut to; a longer one is dropped, not carried,
/// so every message header stays bounded.
const MAX_TRACESTATE: usize = 512;

/// The length of a version-`00` traceparent: `00-` 32 hex `-` 16 hex `-` 2 hex.
const LEN: usize = 55;

/// The `tracestate` carried on, if any: a longer one than W3C's advice is dropped.
fn carried_state(tracestate: Option<&str>) -> Option<String> {
    tracestate
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE && s.is_ascii())
        .map(str::to_owned)
}

/// A checked `traceparent` (version `00`: `00-<trace id>-<span id>-<flags>`) and the
/// `tracestate` that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceParent {
    /// `None` for anything but a valid version-`00` traceparent (W3C: a receiver that cannot
    /// parse it starts a new trace); a `tracestate` too long to carry is left out.
    ///
    /// Every message of a traced event is parsed at every hop, sampled or not: the check
    /// reads the fixed positions of the 55 bytes, and the text kept is the one given.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceParent> {
        let traceparent = traceparent.trim();
        let b = traceparent.as_bytes();
        let hex = |from: usize, to: usize| {
            b[from..to]
                .iter()
                .all(|&c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        let zero = |from: usize, to: usize| b[from..to].iter().all(|&c| c == b'0');
        let valid = b.len() == LEN
            && b.starts_with(b"00-")
            && b[35] == b'-'
            && b[52] == b'-'
            && hex(3, 35)
            && hex(36, 52)
            && hex(53, 55)
            && !zero(3, 35)
            && !zero(36, 52);
        valid.then(|| TraceParent {
            traceparent: traceparent.to_owned(),
            tracestate: carried_state(tracestate),
        })
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The parent span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.traceparent[53..55], 16).is_ok_and(|f| f & 1 == 1)
    }

    /// The context a message carries in its headers, if it carries a valid one.
    pub fn of_message(props: &BasicProperties) -> Option<TraceParent> {
        let headers = props.headers().as_ref()?;
        // Borrowed, not copied: `parse` keeps its own copy of what is valid.
        let text = |key: &str| match headers.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        };
        TraceParent::parse(text(TRACEPARENT)?, text(TRACESTATE))
    }

    /// `props` carrying this context (in place of any it carried), in one copy of the
    /// headers.
    pub fn onto(&self, props: BasicProperties) -> BasicProperties {
        let mut headers = FieldTable::default();
        if let Some(given) = props.headers() {
            for (name, value) in given.inner() {
                if name.as_str() != TRACEPARENT && name.as_str() != TRACESTATE {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        let string = |s: &str| AMQPValue::LongString(s.into());
        headers.insert(TRACEPARENT.into(), string(&self.traceparent));
        if let Some(state) = &self.tracestate {
            headers.insert(TRACESTATE.into(), string(state));
        }
        props.with_headers(headers)
    }
}

/// `props` carrying `context` if there is one: what every publish of an event's message
/// does with the context it was handled under.
pub fn carry(props: BasicProperties, context: Option<&TraceParent>) -> BasicProperties {
    match context {
        Some(context) => context.onto(props),
        None => props,
    }
}

#[cfg(feature = "otel-api")]
mod otel {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::TraceParent;

    impl TraceParent {
        /// The context of a span, to carry on; `None` for an invalid (no-op) span. Written
        /// straight from the ids' bytes: every hop of a traced event does this, sampled or
        /// not.
        pub fn of_span(span: &SpanContext) -> Option<TraceParent> {
            if !span.is_valid() {
                return None;
            }
            let mut text = [b'-'; super::LEN];
            text[..2].copy_from_slice(b"00");
            let ids = hex::encode_to_slice(span.trace_id().to_bytes(), &mut text[3..35])
                .and_then(|()| hex::encode_to_slice(span.span_id().to_bytes(), &mut text[36..52]))
                .and_then(|()| hex::encode_to_slice([span.trace_flags().to_u8()], &mut text[53..]));
            let traceparent = ids
                .ok()
                .and_then(|()| String::from_utf8(text.to_vec()).ok())?;
            let state = span.trace_state().header();
            Some(TraceParent {
                traceparent,
                tracestate: super::carried_state(Some(&state)),
            })
        }

        /// This context as the remote parent of the spans started under it.
        pub fn span_context(&self) -> SpanContext {
            let trace_id = TraceId::from_hex(self.trace_id()).unwrap_or(TraceId::INVALID);
            let span_id = SpanId::from_hex(self.span_id()).unwrap_or(SpanId::INVALID);
            let flags = if self.sampled() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let state = self
                .tracestate()
                .and_then(|s| s.parse::<TraceState>().ok())
                .unwrap_or_default();
            SpanContext::new(trace_id, span_id, flags, true, state)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses_and_anything_else_starts_a_new_trace() {
        let tp = TraceParent::parse(GIVEN, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id(), "00f067aa0ba902b7");
        assert!(tp.sampled());
        assert_eq!(tp.tracestate(), Some("congo=t61rcWkgMzE"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(TraceParent::parse(bad, None), None, "{bad}");
        }
        let long = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE);
        assert_eq!(
            TraceParent::parse(GIVEN, Some(&long)).unwrap().tracestate(),
            None
        );
    }

    #[test]
    fn a_message_carries_the_context_and_a_new_one_replaces_it() {
        let first = TraceParent::parse(GIVEN, Some("a=1")).unwrap();
        let props = carry(broker::persistent_json("id"), Some(&first));
        assert_eq!(TraceParent::of_message(&props), Some(first));
        let second = TraceParent::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-00",
            None,
        )
        .unwrap();
        let props = broker::with_header(props, "x-hookbus-reason", "kept");
        let props = second.onto(props);
        assert_eq!(TraceParent::of_message(&props), Some(second));
        assert_eq!(
            broker::header(&props, "x-hookbus-reason").as_deref(),
            Some("kept"),
            "the message's other headers stay"
        );
        assert_eq!(
            TraceParent::of_message(&broker::persistent_json("id")),
            None
        );
    }

    #[cfg(feature = "otel-api")]
    #[test]
    fn it_round_trips_through_a_span_context() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let tp = TraceParent::parse(GIVEN, Some("congo=t61rcWkgMzE")).unwrap();
        let span = tp.span_context();
        assert!(span.is_remote() && span.is_sampled());
        assert_eq!(TraceParent::of_span(&span), Some(tp));
        let unsampled = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0xb7ad6b7169203331_u64),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        let carried = TraceParent::of_span(&unsampled).unwrap();
        assert_eq!(
            carried.traceparent(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        );
        assert_eq!((carried.sampled(), carried.tracestate()), (false, None));
        assert_eq!(TraceParent::of_span(&SpanContext::empty_context()), None);
    }
}
