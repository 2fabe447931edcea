//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `./scripts/install_debian.sh chromium chromium`, which run_rpc_tests.sh calls) opens it
//! while the producer's task generator keeps two consumers busy, lets its scripts run, and the
//! DOM they built must show each consumer up and a non-zero rate of calls.
//!
//! With `DASHBOARD_SCREENSHOT=path.png` it also saves a screenshot (docs/dashboard.png).

mod support;

use std::process::Command;
use std::time::Duration;

use support::web::WebProducer;
use support::Consumer;

/// Runs headless Chromium on `url` with `args` and returns its stdout; panics, naming the
/// script that installs it, when it cannot run.
fn chromium(url: &str, args: &[&str]) -> String {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,1150",
            // Scripts run for 4 s of page time (the page polls every second).
            "--virtual-time-budget=4000",
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run chromium ({err}): install it with \
                 `./scripts/install_debian.sh chromium chromium` (run_rpc_tests.sh does)"
            )
        });
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of the first `attribute="..."` after `from` in `dom`.
fn attribute<'a>(dom: &'a str, from: &str, attribute: &str) -> Option<&'a str> {
    let rest = &dom[dom.find(from)?..];
    let start = rest.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    rest[start..].split('"').next()
}

#[test]
fn dashboard_shows_each_consumer_and_a_live_rate_in_chromium() {
    let a = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let b = Consumer::start(&["--transport", "tcp", "--no-model"]);
    let mut producer = WebProducer::start(&[
        "--transport",
        "tcp",
        &a.port.to_string(),
        &b.port.to_string(),
        "--generate",
        "--interval",
        "0.002",
        "--mix",
        "fibonacci",
        "--seed",
        "3",
    ]);
    producer.wait_for("result #200 ", Duration::from_secs(30));
    // A few seconds of load, so that the page has whole seconds to show.
    std::thread::sleep(Duration::from_secs(3));

    let dom = chromium(&producer.url, &["--dump-dom"]);
    assert!(
        dom.contains("<body data-updated=\""),
        "the page's script never ran:\n{dom}"
    );
    for consumer in [&a, &b] {
        let row = format!("data-consumer=\"127.0.0.1:{}\"", consumer.port);
        assert!(dom.contains(&row), "no row for {row}:\n{dom}");
        assert_eq!(attribute(&dom, &row, "data-up"), Some("true"), "{row} up");
    }
    let rate: f64 = attribute(&dom, "id=\"rate\"", "data-rate")
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no rate in:\n{dom}"));
    assert!(rate > 10.0, "calls/s shown: {rate}");

    if let Some(path) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        let path = path.to_string_lossy().into_owned();
        chromium(&producer.url, &[&format!("--screenshot={path}")]);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 10_000),
            "{path}"
        );
    }
}
