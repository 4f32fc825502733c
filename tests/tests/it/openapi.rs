//! The OpenAPI documents of the admin API (router) and the ingest API (producer): served
//! at `GET /api/openapi.json`, generated from the code, and true to the routes: every
//! operation they list exists and refuses a request without the token.

use hookbus_tests::Pipeline;
use serde_json::Value;

async fn document(p: &Pipeline, addr: std::net::SocketAddr) -> Value {
    let res = p
        .http
        .get(format!("http://{addr}/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Calls every operation of `doc` without a token: each must exist and answer 401.
async fn every_operation_is_served(p: &Pipeline, addr: std::net::SocketAddr, doc: &Value) -> usize {
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = format!("http://{addr}{}", path.replace("{id}", "somehookid"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = p
                .http
                .request(method.clone(), url)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(
                status, 401,
                "{method} {path} is documented but answers {status}"
            );
            operations += 1;
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_publish_a_document_true_to_their_routes() {
    let p = Pipeline::start_with("openapi", &[], 0).await;

    let admin = document(&p, p.router.addr).await;
    assert!(admin["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        every_operation_is_served(&p, p.router.addr, &admin).await,
        16
    );
    let hook = &admin["components"]["schemas"]["Hook"]["properties"];
    for field in [
        "tenantId",
        "id",
        "name",
        "event",
        "events",
        "config",
        "signingKey",
        "enabled",
        "createdAt",
    ] {
        assert!(hook.get(field).is_some(), "Hook lacks {field}");
    }
    assert!(
        hook.get("retiringKey").is_none(),
        "the retiring key is not part of the API"
    );
    let test = &admin["components"]["schemas"]["TestRequest"];
    assert_eq!(test["required"], serde_json::json!(["events", "config"]));
    for field in ["events", "config"] {
        assert!(
            test["properties"][field]["description"].is_string(),
            "TestRequest.{field} is not described: {test}"
        );
    }
    assert!(test["example"]["config"]["url"].is_string(), "{test}");
    let events = admin["components"]["schemas"]["EventName"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(events.len(), 29);
    assert_eq!(
        admin["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let ingest = document(&p, p.producer.addr).await;
    assert_eq!(
        every_operation_is_served(&p, p.producer.addr, &ingest).await,
        3
    );
    let paths: Vec<&String> = ingest["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/api/events",
            "/api/interactions",
            "/api/management-api-calls"
        ]
    );
    assert!(ingest["components"]["schemas"]["ApiCall"]["properties"]
        .get("matchedRoute")
        .is_some());
    let answer = &ingest["paths"]["/api/management-api-calls"]["post"]["responses"]["202"]
        ["content"]["application/json"]["schema"];
    assert!(
        answer["properties"]["unknownRoute"]["description"].is_string(),
        "{answer}"
    );
    assert!(ingest["components"]["schemas"]["Interaction"]["properties"]
        .get("interactionEvent")
        .is_some());
    p.stop().await;
}
