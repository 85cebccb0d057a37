//! HTTP hooks against a real HTTP server on 127.0.0.1:0 that records
//! every call: start and stop in order, a header from the environment
//! sent but never journaled, a 500 that fails the start and a rollback
//! from the journal that still calls stop, and the timeout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;

use super::http::{HeaderValue, HttpHook};
use super::HookRun;
use crate::deployment::FaultAction;
use crate::driver::{ControlClient, FaultDriver};
use crate::journal::{Journal, JournalDeployment, JOURNAL_FILE};

/// (method, path, authorization header, x-drill header, body)
type Calls = Arc<Mutex<Vec<(String, String, String, String, String)>>>;

async fn record(
    State(calls): State<Calls>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    calls.lock().unwrap().push((
        method.to_string(),
        uri.path().to_owned(),
        header("authorization"),
        header("x-drill"),
        body,
    ));
    match uri.path() {
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom".into()),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late".into())
        }
        _ => (StatusCode::OK, format!("ok {}", uri.path())),
    }
}

async fn server() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let app = Router::new().fallback(record).with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

fn hook(method: &str, url: String) -> HttpHook {
    HttpHook {
        method: method.into(),
        url,
        headers: [
            (
                "authorization".to_owned(),
                HeaderValue::Env {
                    env: "CHAOS_HTTP_HOOK_TEST_TOKEN".into(),
                },
            ),
            (
                "x-drill".to_owned(),
                HeaderValue::Literal("http hooks".into()),
            ),
        ]
        .into(),
        body: Some(r#"{"experiment":"eu-west-1"}"#.into()),
    }
}

fn action(start: HttpHook, stop: HttpHook, on: bool, timeout_s: f64) -> FaultAction {
    FaultAction::Http {
        target: "eu-west-1".into(),
        on,
        start,
        stop,
        timeout_s,
    }
}

#[tokio::test]
async fn start_and_stop_are_called_in_order_and_a_500_still_gets_its_stop() {
    std::env::set_var("CHAOS_HTTP_HOOK_TEST_TOKEN", "Bearer s3cr3t-hook");
    let (url, calls) = server().await;

    // A start and a stop that answer 200: both called, in order, with the
    // variable's value sent and the answer kept for the report.
    let (start, stop) = (
        hook("POST", format!("{url}/start")),
        hook("DELETE", format!("{url}/stop")),
    );
    let (result, run) = super::apply(&action(start.clone(), stop.clone(), true, 5.0))
        .await
        .unwrap();
    result.unwrap();
    let Some(HookRun::Http(run)) = run else {
        panic!("{run:?}")
    };
    assert_eq!((run.status, run.body.as_str()), (Some(200), "ok /start"));
    let (result, _) = super::apply(&action(start, stop, false, 5.0))
        .await
        .unwrap();
    result.unwrap();
    {
        let calls = calls.lock().unwrap();
        let seen: Vec<(&str, &str)> = calls.iter().map(|c| (c.0.as_str(), c.1.as_str())).collect();
        assert_eq!(seen, vec![("POST", "/start"), ("DELETE", "/stop")]);
        assert_eq!(calls[0].2, "Bearer s3cr3t-hook");
        assert_eq!(calls[0].3, "http hooks");
        assert_eq!(calls[0].4, r#"{"experiment":"eu-west-1"}"#);
    }
    calls.lock().unwrap().clear();

    // A start answered 500 fails; the rollback from the journal (what the
    // drill runs on abort, and `chaos rollback` after it died) calls stop.
    let dir = std::env::temp_dir().join(format!("http-hooks-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = Journal::open(&dir.join(JOURNAL_FILE)).unwrap();
    let deployment = JournalDeployment::Attached {
        control_url: "http://127.0.0.1:1".into(),
        state_file: None,
    };
    let failing = action(
        hook("POST", format!("{url}/fail")),
        hook("POST", format!("{url}/stop")),
        true,
        5.0,
    );
    journal.applying(&deployment, &failing).unwrap().unwrap();
    let (result, _) = super::apply(&failing).await.unwrap();
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("answered 500") && error.contains("boom"),
        "{error}"
    );
    let driver = FaultDriver::Remote(ControlClient::new("http://127.0.0.1:1", "unused").unwrap());
    let undone = crate::journal::rollback::undo_pending(&journal, &driver, "drill").await;
    assert_eq!((undone.undone.len(), undone.failed.len()), (1, 0));
    // The stop call's run comes back, and the journal keeps it.
    let stop_runs: Vec<String> = undone.hooks.iter().map(|(_, run)| run.what()).collect();
    assert_eq!(stop_runs, vec![format!("POST {url}/stop")]);
    assert!(undone.hooks[0].1.succeeded());
    let seen: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c.0, c.1))
        .collect();
    assert_eq!(seen, vec!["POST /fail", "POST /stop"]);
    // The journal names the variable, never its value.
    let text = std::fs::read_to_string(journal.path()).unwrap();
    assert!(text.contains("CHAOS_HTTP_HOOK_TEST_TOKEN"), "{text}");
    let undone_line = text
        .lines()
        .find(|line| line.contains(r#""record":"undone""#))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        undone_line.contains(r#""hook":"http""#) && undone_line.contains("/stop"),
        "{undone_line}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");
    // Undoing again is harmless: nothing pending.
    let again = crate::journal::rollback::undo_pending(&journal, &driver, "drill").await;
    assert!(again.undone.is_empty() && again.failed.is_empty());
    let _ = std::fs::remove_dir_all(&dir);

    // No answer within the timeout fails the call at the timeout.
    let started = Instant::now();
    let slow = action(
        hook("POST", format!("{url}/slow")),
        hook("POST", format!("{url}/stop")),
        true,
        1.0,
    );
    let (result, _) = super::apply(&slow).await.unwrap();
    let error = result.unwrap_err().to_string();
    assert!(error.contains("no answer within 1.0 s"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
