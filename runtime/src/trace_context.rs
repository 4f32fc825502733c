//! W3C trace context (`traceparent`, `tracestate`) as it travels with one event: from the
//! ingest request or the SDK caller, in AMQP headers from the producer to the router, to the
//! deliverer, through retry tiers, dead letters and replays, so that one trace tells the
//! event's whole story (ARCHITECTURE.md, "Tracing").
//!
//! Text only and dependency-free, because the SDK an auth service embeds carries it too;
//! with the `otel-api` feature it converts to and from OpenTelemetry's `SpanContext`.

use lapin::BasicProperties;

use crate::broker;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// W3C's advice for what a vendor list may be cut to; a longer one is dropped, not carried,
/// so every message header stays bounded.
const MAX_TRACESTATE: usize = 512;

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
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceParent> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let [version, trace_id, span_id, flags] = parts[..] else {
            return None;
        };
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = version == "00"
            && hex(trace_id, 32)
            && hex(span_id, 16)
            && hex(flags, 2)
            && !zero(trace_id)
            && !zero(span_id);
        valid.then(|| TraceParent {
            traceparent: format!("{version}-{trace_id}-{span_id}-{flags}"),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE && s.is_ascii())
                .map(str::to_owned),
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
        let traceparent = broker::header(props, TRACEPARENT)?;
        TraceParent::parse(&traceparent, broker::header(props, TRACESTATE).as_deref())
    }

    /// `props` carrying this context (in place of any it carried).
    pub fn onto(&self, props: BasicProperties) -> BasicProperties {
        let props = broker::without_header(props, TRACESTATE);
        let props = broker::with_header(props, TRACEPARENT, &self.traceparent);
        match &self.tracestate {
            Some(state) => broker::with_header(props, TRACESTATE, state),
            None => props,
        }
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
        /// The context of a span, to carry on; `None` for an invalid (no-op) span.
        pub fn of_span(span: &SpanContext) -> Option<TraceParent> {
            if !span.is_valid() {
                return None;
            }
            let traceparent = format!(
                "00-{}-{}-{:02x}",
                span.trace_id(),
                span.span_id(),
                span.trace_flags().to_u8()
            );
            let state = span.trace_state().header();
            TraceParent::parse(&traceparent, Some(&state))
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
        let props = second.onto(props);
        assert_eq!(TraceParent::of_message(&props), Some(second));
        assert_eq!(
            TraceParent::of_message(&broker::persistent_json("id")),
            None
        );
    }

    #[cfg(feature = "otel-api")]
    #[test]
    fn it_round_trips_through_a_span_context() {
        let tp = TraceParent::parse(GIVEN, Some("congo=t61rcWkgMzE")).unwrap();
        let span = tp.span_context();
        assert!(span.is_remote() && span.is_sampled());
        assert_eq!(TraceParent::of_span(&span), Some(tp));
    }
}
