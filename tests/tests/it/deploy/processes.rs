//! What the processes really serve: the probe and scrape paths the manifests point at answer
//! as the manifests expect, on a real `ops::routes` server.

use hookbus_runtime::health::Readiness;
use hookbus_runtime::ops;

use super::{HEALTHZ, METRICS_PATH, READYZ};

/// The probe and scrape paths the manifests use are the ones every process serves.
#[tokio::test]
async fn probe_and_metrics_paths_are_served() {
    let readiness = Readiness::default();
    let rabbitmq = readiness.flag("rabbitmq");
    let registry = hookbus_deliverer::metrics::Metrics::new().registry;
    let app = ops::routes(registry, readiness);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(ops::serve(listener, app, shutdown.clone()));
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            http.get(url)
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(HEALTHZ).await, 200);
    assert_eq!(
        status(READYZ).await,
        503,
        "not ready while RabbitMQ is down"
    );
    rabbitmq.set(true);
    assert_eq!(status(READYZ).await, 200);
    let metrics = http
        .get(format!("{base}{METRICS_PATH}"))
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("a body");
    assert!(
        metrics.contains("hookbus_deliveries_in_flight"),
        "{metrics}"
    );
    shutdown.cancel();
    server.await.expect("the server task").expect("the server");
}
