//! `gameday history`: three runs of one scenario (the oldest written by an older gameday,
//! without the impact fields), a run of another scenario, a journal that is not one and a
//! run that never wrote its journal. Checked: the rows, the resilience score by its
//! formula, the regression flag, `--json`, the filter, the unreadable runs reported with
//! their path, and the trend page rendered by a real headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use gameday::report::history::{history, score};
use gameday::report::*;
use time::Duration;

use crate::report::{chromium, chromium_run};
use crate::support::journal::{simulated, Sim};

const SCENARIO: &str = "checkout-db-latency";
const SCENARIO_FILE: &str = "scenarios/checkout-db-latency.yaml";

fn gameday() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gameday"))
}

/// A simulated run moved to another day, so months follow each other.
fn run_on(sim: Sim, days_before: i64) -> Journal {
    let mut j = simulated(&sim);
    j.run.started_at -= Duration::days(days_before);
    j.run.ended_at -= Duration::days(days_before);
    j
}

/// September: the fault breaks SLOs. October: a mild fault, everything holds. November:
/// the breaking fault again — a regression against October.
fn three_runs() -> [Journal; 3] {
    let violated = |id: &str, seed| Sim {
        run_id: id.into(),
        seed,
        ..Sim::default()
    };
    let held = Sim {
        run_id: "r-oct".into(),
        fault_delay_ms: 20.0,
        fault_errors: 0.0,
        ..Sim::default()
    };
    [
        run_on(violated("r-sep", 3), 61),
        run_on(held, 31),
        run_on(violated("r-nov", 7), 0),
    ]
}

/// The journal as an older gameday wrote it: no impacts, tolerance, owners or fault
/// service, and no impact-derived action item.
fn older_version(j: &Journal) -> String {
    let mut v = serde_json::to_value(j).unwrap();
    let obj = v.as_object_mut().unwrap();
    for k in ["impacts", "impact_tolerance", "owners"] {
        assert!(obj.remove(k).is_some(), "{k}");
    }
    for f in obj["faults"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("service");
    }
    obj["action_items"]
        .as_array_mut()
        .unwrap()
        .retain(|a| !a["title"].as_str().unwrap().contains("hurt users"));
    serde_json::to_string_pretty(&v).unwrap()
}

/// The score by its documented formula, counted here independently of the code.
fn expected_score(j: &Journal) -> f64 {
    let checks: Vec<bool> = j
        .slos
        .iter()
        .flat_map(|s| s.per_phase.iter().map(|r| r.passed))
        .collect();
    100.0 * checks.iter().filter(|p| **p).count() as f64 / checks.len() as f64
}

struct Reports {
    _tmp: tempfile::TempDir,
    out: PathBuf,
    runs: [Journal; 3],
    broken: PathBuf,
    unfinished: PathBuf,
}

fn reports() -> Reports {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    std::fs::create_dir(&out).unwrap();
    let runs = three_runs();
    for (i, j) in runs.iter().enumerate() {
        let dir = out.join(format!("2026-0{}-{SCENARIO}-{}", i + 1, j.run.id));
        std::fs::create_dir(&dir).unwrap();
        if i == 0 {
            std::fs::write(dir.join(JOURNAL_FILE), older_version(j)).unwrap();
        } else {
            write_all(j, &dir).unwrap();
        }
    }
    let mut other = run_on(
        Sim {
            run_id: "r-other".into(),
            ..Sim::default()
        },
        10,
    );
    other.run.scenario_name = "payments-dns".into();
    other.run.scenario_file = Some("scenarios/payments-dns.yaml".into());
    let dir = out.join("2026-10-22-payments-dns-r-other");
    std::fs::create_dir(&dir).unwrap();
    write_all(&other, &dir).unwrap();

    let broken = out.join("2026-10-05-broken-r-x");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join(JOURNAL_FILE),
        "{\"journal_version\": 1, \"run\": ",
    )
    .unwrap();
    let unfinished = out.join("2026-10-06-killed-r-y");
    std::fs::create_dir(&unfinished).unwrap();
    std::fs::write(unfinished.join("ledger.jsonl"), "").unwrap();
    // A folder that is no run at all is not listed.
    std::fs::create_dir(out.join("notes")).unwrap();
    Reports {
        _tmp: tmp,
        out,
        runs,
        broken: broken.join(JOURNAL_FILE),
        unfinished,
    }
}

#[test]
fn history_scores_three_runs_and_flags_the_regression() {
    let [sep, oct, nov] = three_runs();
    // The older journal loads through the report's own loader, impacts worked out again.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(JOURNAL_FILE);
    std::fs::write(&path, older_version(&sep)).unwrap();
    let mut old = read_journal(&path).unwrap();
    assert!(old.impacts.is_empty());
    impact::fill_missing(&mut old);

    let runs = vec![
        ("c".to_owned(), nov.clone()),
        ("a".to_owned(), old.clone()),
        ("b".to_owned(), oct.clone()),
    ];
    let h = history(&runs, vec![]);
    let ids: Vec<&str> = h.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["r-sep", "r-oct", "r-nov"], "oldest first");

    for (row, j) in h.runs.iter().zip([&old, &oct, &nov]) {
        let want = expected_score(j);
        assert!(
            (row.score.unwrap() - want).abs() < 1e-9,
            "{}: {:?} != {want}",
            row.run_id,
            row.score
        );
        assert_eq!(row.checks_total, 9.0, "3 SLOs x 3 phases");
        assert_eq!(row.scenario, SCENARIO);
        assert_eq!(row.verdict, j.run.outcome.label());
        assert_eq!(row.findings, j.findings().count());
        assert_eq!(row.slos.len(), 3);
    }
    let [s, o, n] = [&h.runs[0], &h.runs[1], &h.runs[2]];
    assert_eq!(o.score, Some(100.0), "October held every check");
    assert_eq!(o.verdict, "HELD");
    assert!(s.score.unwrap() < 100.0 && n.score.unwrap() < 100.0);
    assert_eq!(
        s.findings, 1,
        "the older journal's impact was worked out again"
    );
    assert_eq!(n.findings, 1);

    // The key value is the worst phase's: the chaos phase's p99, above the objective.
    let p99 = n.slos.iter().find(|k| k.name == "checkout-p99").unwrap();
    assert_eq!(p99.phase.as_deref(), Some("db-latency"));
    let chaos_p99 = nov
        .phase("db-latency")
        .unwrap()
        .stats
        .latency_ms
        .unwrap()
        .p99;
    assert_eq!(p99.value, Some(chaos_p99));
    assert!(!p99.passed && chaos_p99 > 250.0);

    // September is the first run: nothing to regress from. October improved. November
    // dropped in score and broke SLOs that held in October.
    assert!(s.regressions.is_empty() && o.regressions.is_empty());
    assert!(
        n.regressions.iter().any(|r| r.starts_with("score ")),
        "{:?}",
        n.regressions
    );
    assert!(
        n.regressions
            .iter()
            .any(|r| r == "checkout-p99 held in run r-oct, fails now"),
        "{:?}",
        n.regressions
    );

    // The same run twice in a row is no regression; another scenario is never compared.
    let mut again = nov.clone();
    again.run.id = "r-dec".into();
    again.run.started_at += Duration::days(30);
    let mut other = oct.clone();
    other.run.scenario_name = "payments-dns".into();
    other.run.started_at += Duration::days(1);
    let h = history(
        &[
            ("b".into(), oct.clone()),
            ("o".into(), other),
            ("c".into(), nov.clone()),
            ("d".into(), again),
        ],
        vec![],
    );
    assert!(
        h.runs[3].regressions.is_empty(),
        "{:?}",
        h.runs[3].regressions
    );
    assert!(
        !h.runs[2].regressions.is_empty(),
        "compared with r-oct, not payments-dns"
    );
    assert_eq!(score(&oct).2, Some(100.0));
}

#[test]
fn history_cli_lists_runs_as_table_and_json_and_reports_unreadable_ones() {
    let r = reports();
    let out = gameday()
        .args(["history", "--json", "--out"])
        .arg(&r.out)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r-sep", "r-oct", "r-other", "r-nov"]);
    let nov = &runs[3];
    let want = expected_score(&r.runs[2]);
    assert!((nov["score"].as_f64().unwrap() - want).abs() < 1e-9);
    assert_eq!(runs[1]["score"].as_f64(), Some(100.0));
    assert_eq!(nov["verdict"], "VIOLATED");
    assert_eq!(nov["findings"], 1);
    assert_eq!(
        runs[0]["findings"], 1,
        "older journal: impacts worked out again"
    );
    assert!(nov["regressions"].as_array().unwrap().len() >= 2);
    assert!(
        runs[2]["regressions"].as_array().unwrap().is_empty(),
        "the only payments-dns run has nothing to regress from"
    );
    let unreadable = v["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 2, "{unreadable:?}");
    assert_eq!(unreadable[0]["path"], r.broken.display().to_string());
    assert!(
        unreadable[0]["error"]
            .as_str()
            .unwrap()
            .contains("is not a gameday journal"),
        "{unreadable:?}"
    );
    assert_eq!(unreadable[1]["path"], r.unfinished.display().to_string());

    // The table: one line per run, the regression and the unreadable runs with their path.
    let out = gameday()
        .args(["history", "--out"])
        .arg(&r.out)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for id in ["r-sep", "r-oct", "r-other", "r-nov"] {
        assert!(table.contains(id), "{id} missing:\n{table}");
    }
    let nov_line = table.lines().find(|l| l.contains("r-nov")).unwrap();
    assert!(
        nov_line.contains("VIOLATED") && nov_line.contains("REGRESSION"),
        "{nov_line}"
    );
    assert!(nov_line.contains(&format!("{want:.1}")), "{nov_line}");
    assert!(
        table.contains(&format!("UNREADABLE {}: ", r.broken.display())),
        "{table}"
    );
    assert!(table.contains(&format!("UNREADABLE {}: ", r.unfinished.display())));

    // Filtered by scenario name, and by scenario file.
    for filter in [SCENARIO, SCENARIO_FILE] {
        let out = gameday()
            .args(["history", "--json", "--out"])
            .arg(&r.out)
            .arg(filter)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["r-sep", "r-oct", "r-nov"], "{filter}");
    }

    // A missing folder is an error naming it.
    let out = gameday()
        .args(["history", "--out", "/nonexistent/reports"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/reports"));
}

#[test]
fn history_page_renders_in_headless_chromium_with_trends_and_regressions() {
    let r = reports();
    let page = r.out.join("index.html");
    let out = gameday()
        .args(["history", "--out"])
        .arg(&r.out)
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched from anywhere.
    let without_ns = html.replace("http://www.w3.org/2000/svg", "");
    for bad in [
        "<script", "<link", " src=", "@import", "url(", "http://", "https://",
    ] {
        assert!(!without_ns.contains(bad), "page contains {bad}");
    }
    // Each run with a report links to it, relative to the page.
    assert!(html.contains("href=\"2026-03-checkout-db-latency-r-nov/report.html\""));
    assert!(
        !html.contains("2026-01-checkout-db-latency-r-sep/report.html"),
        "no report written for the older run"
    );

    let Some(browser) = chromium() else { return };
    let profile = tempfile::tempdir().unwrap();
    let out = chromium_run(&browser, profile.path(), &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("id=\"verdict-label\">REGRESSED<"));
    let svg = svg_in(&dom, "trend-score-checkout-db-latency");
    assert_eq!(
        svg.matches("<circle class=\"dot").count(),
        3,
        "a dot per run"
    );
    assert!(svg.contains("<path class=\"series s1\" d=\"M") && svg.contains("L"));
    assert!(
        svg.contains("<g class=\"marker\">"),
        "the regression is marked on the chart"
    );
    let p99 = svg_in(&dom, "trend-slo-checkout-db-latency-checkout-p99");
    assert!(p99.contains("class=\"threshold\""));
    assert!(dom.contains("<svg id=\"trend-score-payments-dns\""));
    assert_eq!(
        dom.matches("<td class=\"regression\">REGRESSION: ").count(),
        1,
        "only November regressed"
    );
    assert!(
        dom.contains(&r.broken.display().to_string()),
        "unreadable run listed"
    );

    let shot_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shot_dir).unwrap();
    let shot = shot_dir.join("history.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium_run(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1366,2600",
        ],
        &page,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"));
    assert!(
        png.len() > 50_000,
        "screenshot looks blank ({} bytes)",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

/// The `<svg id="…">` element of the DOM, up to its end.
fn svg_in<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("{id} not in the rendered DOM"));
    &dom[start..start + dom[start..].find("</svg>").unwrap()]
}
