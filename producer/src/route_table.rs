//! The Management API route table: which events a successful call emits, as data in one place.
//!
//! One row per method and matched route, in the order of the seeds
//! (`docs/logto/webhook-events.en.txt`, "Management API triggered events"); a unit test
//! reads the seed file and checks this table against it. A row lists what it emits, in order,
//! and how each payload is built from the call ([`Emit`]). Two rows emit a second event, after
//! the create event and only when the request carried scopes: Logto's code sends that one
//! first, hookbus follows the seed, which reads as a user expects (the role exists before its
//! scopes change).

use hookbus_contracts::EventName;

/// How one emitted event's payload is built from the call (see `api_call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// `data` is the response body; a DELETE has none (Logto's DELETE routes answer 204).
    ResponseBody,
    /// `data` is the deleted user, which the caller passes as `responseBody`.
    DeletedUser,
    /// `organizationId` and the added and removed ids instead of `data`.
    MembershipDelta,
    /// `roleId`, and `data` the assigned scopes; only when the request carried `scopeIds`.
    CreatedRoleScopes,
    /// `organizationRoleId`, no `data`; only when the request carried organization or
    /// resource scope ids.
    CreatedOrganizationRoleScopes,
}

/// One row: a method and a matched route (Logto's pattern, without `/api`).
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub route: &'static str,
    emits: &'static [(&'static str, Emit)],
}

impl Route {
    /// What the row emits, in order.
    pub fn emits(&self) -> impl Iterator<Item = (EventName, Emit)> + '_ {
        self.emits.iter().map(|(name, emit)| {
            let event = EventName::parse(name).expect("the route table names catalogue events");
            (event, *emit)
        })
    }
}

const fn row(
    method: &'static str,
    route: &'static str,
    emits: &'static [(&'static str, Emit)],
) -> Route {
    Route {
        method,
        route,
        emits,
    }
}

use Emit::{
    CreatedOrganizationRoleScopes, CreatedRoleScopes, DeletedUser, MembershipDelta, ResponseBody,
};

/// The table of the seeds, row for row.
pub const ROUTES: &[Route] = &[
    row("POST", "/users", &[("User.Created", ResponseBody)]),
    row("DELETE", "/users/:userId", &[("User.Deleted", DeletedUser)]),
    row(
        "PATCH",
        "/users/:userId",
        &[("User.Data.Updated", ResponseBody)],
    ),
    row(
        "PATCH",
        "/users/:userId/custom-data",
        &[("User.Data.Updated", ResponseBody)],
    ),
    row(
        "PATCH",
        "/users/:userId/profile",
        &[("User.Data.Updated", ResponseBody)],
    ),
    row(
        "PATCH",
        "/users/:userId/password",
        &[("User.Data.Updated", ResponseBody)],
    ),
    row(
        "PATCH",
        "/users/:userId/is-suspended",
        &[("User.SuspensionStatus.Updated", ResponseBody)],
    ),
    row(
        "POST",
        "/roles",
        &[
            ("Role.Created", ResponseBody),
            ("Role.Scopes.Updated", CreatedRoleScopes),
        ],
    ),
    row("DELETE", "/roles/:id", &[("Role.Deleted", ResponseBody)]),
    row(
        "PATCH",
        "/roles/:id",
        &[("Role.Data.Updated", ResponseBody)],
    ),
    row(
        "POST",
        "/roles/:id/scopes",
        &[("Role.Scopes.Updated", ResponseBody)],
    ),
    row(
        "DELETE",
        "/roles/:id/scopes/:scopeId",
        &[("Role.Scopes.Updated", ResponseBody)],
    ),
    row(
        "POST",
        "/resources/:resourceId/scopes",
        &[("Scope.Created", ResponseBody)],
    ),
    row(
        "DELETE",
        "/resources/:resourceId/scopes/:scopeId",
        &[("Scope.Deleted", ResponseBody)],
    ),
    row(
        "PATCH",
        "/resources/:resourceId/scopes/:scopeId",
        &[("Scope.Data.Updated", ResponseBody)],
    ),
    row(
        "POST",
        "/organizations",
        &[("Organization.Created", ResponseBody)],
    ),
    row(
        "DELETE",
        "/organizations/:id",
        &[("Organization.Deleted", ResponseBody)],
    ),
    row(
        "PATCH",
        "/organizations/:id",
        &[("Organization.Data.Updated", ResponseBody)],
    ),
    row(
        "PUT",
        "/organizations/:id/users",
        &[("Organization.Membership.Updated", MembershipDelta)],
    ),
    row(
        "POST",
        "/organizations/:id/users",
        &[("Organization.Membership.Updated", MembershipDelta)],
    ),
    row(
        "DELETE",
        "/organizations/:id/users/:userId",
        &[("Organization.Membership.Updated", MembershipDelta)],
    ),
    row(
        "POST",
        "/organization-roles",
        &[
            ("OrganizationRole.Created", ResponseBody),
            (
                "OrganizationRole.Scopes.Updated",
                CreatedOrganizationRoleScopes,
            ),
        ],
    ),
    row(
        "DELETE",
        "/organization-roles/:id",
        &[("OrganizationRole.Deleted", ResponseBody)],
    ),
    row(
        "PATCH",
        "/organization-roles/:id",
        &[("OrganizationRole.Data.Updated", ResponseBody)],
    ),
    row(
        "POST",
        "/organization-scopes",
        &[("OrganizationScope.Created", ResponseBody)],
    ),
    row(
        "DELETE",
        "/organization-scopes/:id",
        &[("OrganizationScope.Deleted", ResponseBody)],
    ),
    row(
        "PATCH",
        "/organization-scopes/:id",
        &[("OrganizationScope.Data.Updated", ResponseBody)],
    ),
    row(
        "PUT",
        "/organization-roles/:id/scopes",
        &[("OrganizationRole.Scopes.Updated", ResponseBody)],
    ),
    row(
        "POST",
        "/organization-roles/:id/scopes",
        &[("OrganizationRole.Scopes.Updated", ResponseBody)],
    ),
    row(
        "DELETE",
        "/organization-roles/:id/scopes/:organizationScopeId",
        &[("OrganizationRole.Scopes.Updated", ResponseBody)],
    ),
];

/// The row of an upper-case method and a matched route without `/api`, if there is one.
pub fn lookup(method: &str, route: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|row| row.method == method && row.route == route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const SEEDS: &str = include_str!("../../docs/logto/webhook-events.en.txt");

    /// The seed's "Management API triggered events" rows: `(method, route, events)`, with
    /// its `(Role.Scopes.Update)` typo read as the catalogue's `Role.Scopes.Updated`.
    fn seed_rows() -> Vec<(String, String, Vec<String>)> {
        let table = SEEDS
            .split("| API endpoint | Event |")
            .nth(1)
            .expect("the seed has the route table");
        table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with("| "))
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                let (method, route) = cells[0].split_once(' ').unwrap();
                let events = cells[1]
                    .split(',')
                    .map(|e| e.trim().trim_matches(['(', ')']).to_owned())
                    .map(|e| match e.as_str() {
                        "Role.Scopes.Update" => "Role.Scopes.Updated".to_owned(),
                        _ => e,
                    })
                    .collect();
                (method.to_owned(), route.to_owned(), events)
            })
            .collect()
    }

    #[test]
    fn the_table_is_the_seed_row_for_row() {
        let ours: Vec<(String, String, Vec<String>)> = ROUTES
            .iter()
            .map(|r| {
                let events = r.emits().map(|(e, _)| e.as_str().to_owned()).collect();
                (r.method.to_owned(), r.route.to_owned(), events)
            })
            .collect();
        assert_eq!(ours, seed_rows());
    }

    #[test]
    fn thirty_distinct_rows_two_of_which_emit_two_events() {
        assert_eq!(ROUTES.len(), 30);
        let distinct: HashSet<_> = ROUTES.iter().map(|r| (r.method, r.route)).collect();
        assert_eq!(distinct.len(), 30);
        let double: Vec<_> = ROUTES.iter().filter(|r| r.emits.len() == 2).collect();
        assert_eq!(double.len(), 2);
        for r in double {
            assert_eq!(r.method, "POST");
            let names: Vec<_> = r.emits().map(|(e, _)| e.as_str()).collect();
            assert!(names[0].ends_with(".Created") && names[1].ends_with(".Scopes.Updated"));
        }
    }

    /// docs/ROUTES.md as this table writes it.
    fn routes_doc() -> String {
        let mut doc = String::from(
            "# The route table\n\n\
             The events a successful Management API call reported to \
             `POST /api/management-api-calls` emits, by its `method` and `matchedRoute` \
             written exactly as here (Logto's route patterns; an `/api` in front is \
             ignored). A pair that is not in this table emits nothing and is answered \
             `202 {\"events\": [], \"unknownRoute\": true}` with the header \
             `x-hookbus-unknown-route: true`. A second event after a create is emitted \
             only when the request carried scope ids.\n\n\
             Written from `producer/src/route_table.rs` by its unit tests, which fail when \
             the two differ; `HOOKBUS_WRITE_DOCS=1 cargo test -p hookbus-producer \
             route_table` rewrites this file.\n\n\
             | method | matchedRoute | events, in order |\n|---|---|---|\n",
        );
        for row in ROUTES {
            let events: Vec<String> = row.emits().map(|(e, _)| format!("`{e}`")).collect();
            doc.push_str(&format!(
                "| {} | `{}` | {} |\n",
                row.method,
                row.route,
                events.join(", ")
            ));
        }
        doc
    }

    #[test]
    fn the_routes_doc_is_this_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ROUTES.md");
        let expected = routes_doc();
        if std::env::var_os("HOOKBUS_WRITE_DOCS").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == expected,
            "docs/ROUTES.md differs from the route table; rewrite it with \
             `HOOKBUS_WRITE_DOCS=1 cargo test -p hookbus-producer route_table`"
        );
    }

    #[test]
    fn lookup_is_by_exact_method_and_route() {
        let row = lookup("DELETE", "/users/:userId").unwrap();
        assert_eq!(
            row.emits().next(),
            Some((EventName::parse("User.Deleted").unwrap(), DeletedUser))
        );
        assert!(lookup("GET", "/users/:userId").is_none());
        assert!(lookup("delete", "/users/:userId").is_none());
        assert!(lookup("POST", "/users/:userId").is_none());
    }
}
