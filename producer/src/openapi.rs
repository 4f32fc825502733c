//! The ingest API's OpenAPI document, served at `GET /api/openapi.json`. The request
//! schemas are derived from the types the handlers parse; the paths are generated from the
//! same endpoint table that mounts the routes, so the document cannot list a route the
//! producer does not serve, nor miss one.

use hookbus_contracts::EventName;
use hookbus_runtime::http::ErrorBody;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use crate::api_call::{ApiCall, MembershipDelta};
use crate::ingest::Endpoint;
use crate::interaction::{Action, Interaction, InteractionEvent};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookbus ingest API",
        description = "Auth services report events here. Every route needs `Authorization: Bearer $HOOKBUS_INGEST_TOKEN`; a 202 means RabbitMQ confirmed every event."
    ),
    components(schemas(ApiCall, MembershipDelta, Interaction, InteractionEvent, Action, ErrorBody, EventName)),
    modifiers(&IngestPaths),
    security(("bearer" = []))
)]
pub struct IngestApi;

struct IngestPaths;

impl Modify for IngestPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        hookbus_runtime::http::add_bearer_scheme(openapi);
        for endpoint in Endpoint::ALL {
            openapi.paths.add_path_operation(
                endpoint.path(),
                vec![HttpMethod::Post],
                operation(endpoint),
            );
        }
    }
}

fn json(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn error(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json(Ref::from_schema_name("ErrorBody")))
        .build()
}

fn operation(endpoint: Endpoint) -> utoipa::openapi::path::Operation {
    let (summary, request, answer): (&str, RefOr<Schema>, RefOr<Schema>) = match endpoint {
        Endpoint::Event => (
            "Publish one event: `event` plus the other fields of Logto's payload for it",
            ObjectBuilder::new()
                .property("event", Ref::from_schema_name("EventName"))
                .required("event")
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
                ))
                .into(),
            ObjectBuilder::new()
                .property("id", ObjectBuilder::new().schema_type(Type::String))
                .into(),
        ),
        Endpoint::ApiCall => (
            "Report a Management API call; the events its route emits are published",
            Ref::from_schema_name("ApiCall").into(),
            published_events()
                .property(
                    "unknownRoute",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .description(Some(
                            "Present, `true`, when `method`/`matchedRoute` is not in the route \
                         table (docs/ROUTES.md) and the call is not a read: it emitted \
                         nothing. The header `x-hookbus-unknown-route: true` says the same.",
                        )),
                )
                .into(),
        ),
        Endpoint::Interaction => (
            "Report a finished sign-in flow; its interaction and data events are published",
            Ref::from_schema_name("Interaction").into(),
            published_events().into(),
        ),
    };
    let idempotency = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The same key within 24 h publishes nothing new and answers the same ids",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    OperationBuilder::new()
        .tag("ingest")
        .summary(Some(summary))
        .parameter(idempotency)
        .request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json(request))
                .required(Some(Required::True))
                .build(),
        ))
        .response(
            "202",
            ResponseBuilder::new()
                .description("Published and confirmed by RabbitMQ")
                .content("application/json", json(answer))
                .build(),
        )
        .response(
            "400",
            error("Malformed body, missing or mistyped field, unknown event"),
        )
        .response("401", error("Missing or wrong token"))
        .response(
            "409",
            error("Another request with this Idempotency-Key is under way"),
        )
        .response("413", error("Body larger than HOOKBUS_MAX_EVENT_BYTES"))
        .response(
            "422",
            error("This Idempotency-Key was used for another request"),
        )
        .response(
            "503",
            error("RabbitMQ (or, with an Idempotency-Key, Redis) unavailable; nothing published"),
        )
        .build()
}

fn published_events() -> ObjectBuilder {
    let item = ObjectBuilder::new()
        .property("id", ObjectBuilder::new().schema_type(Type::String))
        .property("event", Ref::from_schema_name("EventName"));
    ObjectBuilder::new().property(
        "events",
        utoipa::openapi::schema::ArrayBuilder::new().items(item),
    )
}
