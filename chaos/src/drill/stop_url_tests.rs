//! The stop URL against a real HTTP server on loopback: 404 carries on, a
//! 2xx stops, a URL that cannot be read refuses the start, and one that
//! goes deaf mid-drill stops it after the grace period.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Router;

use super::watch_stop_url;

/// A server answering the status held in the returned cell, and its URL.
async fn flag_server() -> (String, Arc<AtomicU16>, tokio::task::JoinHandle<()>) {
    let status = Arc::new(AtomicU16::new(404));
    let app = Router::new()
        .fallback(|State(status): State<Arc<AtomicU16>>| async move {
            StatusCode::from_u16(status.load(Ordering::Relaxed)).unwrap()
        })
        .with_state(status.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/drills/stop", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, status, server)
}

#[tokio::test]
async fn a_404_carries_on_and_a_200_stops() {
    let (url, status, _server) = flag_server().await;
    let stop = watch_stop_url(url.clone()).await.unwrap();
    tokio::pin!(stop);
    // Three reads of 404: still running.
    assert!(
        tokio::time::timeout(Duration::from_millis(3_500), &mut stop)
            .await
            .is_err()
    );
    status.store(200, Ordering::Relaxed);
    let raised = Instant::now();
    let cause = tokio::time::timeout(Duration::from_secs(3), &mut stop)
        .await
        .expect("a 200 stops the drill");
    assert_eq!(cause, format!("stop URL {url} (answered 200 OK)"));
    assert!(raised.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn a_url_that_says_stop_or_cannot_be_read_refuses_the_start() {
    let (url, status, _server) = flag_server().await;
    status.store(204, Ordering::Relaxed);
    let error = watch_stop_url(url.clone()).await.err().unwrap().to_string();
    assert_eq!(
        error,
        format!(
            "the stop URL {url} answers 204 No Content: a drill does not start while it says stop"
        )
    );
    status.store(500, Ordering::Relaxed);
    let error = watch_stop_url(url.clone()).await.err().unwrap().to_string();
    assert!(
        error.contains("cannot be read (answered 500 Internal Server Error)"),
        "{error}"
    );
    // Nothing listens on port 1.
    let error = watch_stop_url("http://127.0.0.1:1/stop".into())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("cannot be read"), "{error}");
}

#[tokio::test]
async fn a_stop_url_that_goes_deaf_stops_the_drill_after_ten_seconds() {
    let (url, _status, server) = flag_server().await;
    let stop = watch_stop_url(url.clone()).await.unwrap();
    tokio::pin!(stop);
    assert!(
        tokio::time::timeout(Duration::from_millis(1_500), &mut stop)
            .await
            .is_err()
    );
    server.abort();
    let deaf = Instant::now();
    let cause = tokio::time::timeout(Duration::from_secs(15), &mut stop)
        .await
        .expect("a deaf stop URL stops the drill");
    assert!(
        cause.starts_with(&format!("stop URL {url} unreadable for 10 s (")),
        "{cause}"
    );
    let after = deaf.elapsed();
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(13),
        "{after:?}"
    );
}
