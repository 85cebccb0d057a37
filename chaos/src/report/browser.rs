//! The HTML report in a real browser: headless Chromium opens the fixture
//! report, and the test checks that its script ran without an error and
//! that every chart, with its failover and failback tags, is in the DOM.
//!
//! Skipped with a message where no Chromium is installed (`apt-get install
//! chromium`; `scripts/tools.sh` installs it for CI). `CHROMIUM` names
//! another binary. To look at the page, `docs/drills.md` ("Checking the
//! report in a browser") gives the screenshot command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fixture::{empty_report, region_kill_report};
use super::write_all;

/// Chromium on this machine: `$CHROMIUM`, else the first of the usual
/// names on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
}

/// The DOM after the page's scripts ran, and everything the browser logged
/// (console messages included). Both go through files in `scratch`: a
/// pipe left unread while waiting would fill and stall the browser.
fn load(browser: &Path, page: &Path, scratch: &Path) -> (String, String) {
    let dom_path = scratch.join("dom.html");
    let log_path = scratch.join("chromium.log");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            // Root in CI: Chromium's sandbox refuses to run as root.
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,3000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_path).expect("creating dom.html"))
        .stderr(std::fs::File::create(&log_path).expect("creating chromium.log"))
        .spawn()
        .expect("chromium starts");
    // A browser that hangs must fail the test, not stall the suite.
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("waiting for chromium").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading the report within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let read = |path: &Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    (read(&dom_path), read(&log_path))
}

#[test]
fn the_report_draws_its_charts_in_chromium_without_a_script_error() {
    let Some(browser) = chromium() else {
        eprintln!(
            "skipped: no chromium on the PATH (apt-get install chromium, or set CHROMIUM) \
             to check report.html in a browser"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("chaos-report-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = region_kill_report();
    let paths = write_all(&report, &dir).unwrap();
    let (dom, log) = load(&browser, &paths.html, &dir);
    let _ = std::fs::remove_dir_all(&dir);

    // Any console message or uncaught exception is a fault of the page.
    let problems: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("CONSOLE") || line.contains("Uncaught"))
        .collect();
    assert!(problems.is_empty(), "the page logged: {problems:#?}");
    assert!(
        dom.contains("</main>"),
        "no DOM was dumped; chromium said:\n{log}"
    );
    // uPlot built every chart: success, latency and one panel per client.
    let charts = 2 + report.client_regions.len();
    assert_eq!(dom.matches(r#"<div class="uplot"#).count(), charts, "{dom}");
    assert!(dom.matches("<canvas").count() >= charts);
    // The tags above the success chart, as charts.js laid them out: the
    // way out and the way back of the fault, and the events' badges.
    let tags = dom
        .split(r#"data-tags=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the success chart lists the tags it drew");
    for tag in [
        "fault",
        "out of DNS",
        "fault ended",
        "back in DNS",
        "served again",
    ] {
        assert!(
            tags.split('|').any(|drawn| drawn == tag),
            "{tag:?} not in {tags:?}"
        );
    }
}

#[test]
fn a_report_without_data_loads_in_chromium_without_a_script_error() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on the PATH (apt-get install chromium, or set CHROMIUM)");
        return;
    };
    let dir =
        std::env::temp_dir().join(format!("chaos-report-browser-empty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let paths = write_all(&empty_report(), &dir).unwrap();
    let (dom, log) = load(&browser, &paths.html, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "{log}"
    );
    assert!(dom.contains("no requests were recorded"));
    assert_eq!(dom.matches(r#"<div class="uplot"#).count(), 0);
}
