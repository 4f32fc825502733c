//! The admin API's OpenAPI document, generated from the handlers' annotations and the
//! request and response types themselves, served at `GET /api/openapi.json`.

use hookbus_contracts::hook::{HookConfig, HookInput, HookPatch};
use hookbus_contracts::logs::{ExecutionStats, HookRequest, LogPayload, LogRecord, LoggedResponse};
use hookbus_contracts::Hook;
use hookbus_runtime::http::ErrorBody;
use utoipa::{Modify, OpenApi};

use hookbus_contracts::overview::{ActivityPoint, Presence};
use hookbus_runtime::overview::{Backlog, Overview, ProcessShown};

use super::{dead_letters, hooks, logs, overview, portal, store, testing};
use crate::dead_letters::{DeadLetter, ReplayFilter};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookbus admin API",
        description = "Logto's hooks Management API, plus dead letters, portal links and the console's overview. Every route needs `Authorization: Bearer $HOOKBUS_ADMIN_TOKEN`."
    ),
    paths(
        hooks::list,
        hooks::create,
        hooks::get_one,
        hooks::update,
        hooks::delete,
        hooks::rotate_key,
        logs::recent,
        testing::test,
        dead_letters::list,
        dead_letters::replay,
        dead_letters::list_events,
        dead_letters::replay_events,
        store::restore,
        store::accept,
        portal::mint,
        overview::get
    ),
    components(schemas(
        Hook,
        HookConfig,
        HookInput,
        HookPatch,
        LogRecord,
        LogPayload,
        HookRequest,
        LoggedResponse,
        ExecutionStats,
        ErrorBody,
        DeadLetter,
        ReplayFilter,
        testing::TestRequest,
        portal::PortalLinkRequest,
        portal::PortalLink,
        hooks::DeliveryStats,
        Overview,
        ActivityPoint,
        Backlog,
        ProcessShown,
        Presence
    )),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
pub struct AdminApi;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        hookbus_runtime::http::add_bearer_scheme(openapi);
    }
}
