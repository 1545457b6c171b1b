//! The post-gameday report: every format rendered from realistic journals, the JSON Schema
//! kept in step with the types, JUnit parsed by a real XML parser, the HTML rendered by a
//! real headless Chromium, and `gameday report --compare` flagging a regression made on
//! purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

use gameday::report::analysis::{compare, Change};
use gameday::report::*;

use crate::support::journal::{simulated, Sim};

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/journal.schema.json")
}

/// A run where the database fault breaks the p99 and error SLOs.
fn violated() -> Journal {
    simulated(&Sim::default())
}

/// A run where the fault is mild and every SLO holds (yet p99 is 2.7x the baseline's).
fn held() -> Journal {
    simulated(&held_sim())
}

fn held_sim() -> Sim {
    Sim {
        run_id: "r-20261001-c3d4".into(),
        fault_delay_ms: 20.0,
        fault_errors: 0.0,
        ..Sim::default()
    }
}

#[test]
fn journal_schema_is_up_to_date() {
    let generated = serde_json::to_string_pretty(&journal_schema()).unwrap() + "\n";
    let path = schema_path();
    if std::env::var_os("GAMEDAY_UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date with the Journal types: run `GAMEDAY_UPDATE_SCHEMAS=1 cargo test \
         journal_schema_is_up_to_date` and commit the result",
        path.display()
    );
}

#[test]
fn journals_validate_against_the_checked_in_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    for j in [
        violated(),
        held(),
        simulated(&Sim {
            playbook: true,
            revert_fails: true,
            untrusted: vec![3, 4],
            ..Sim::default()
        }),
    ] {
        let value = serde_json::to_value(&j).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "journal does not match schema: {errors:#?}"
        );
    }
    // The validator is not vacuous: a wrong outcome is caught.
    let mut bad = serde_json::to_value(violated()).unwrap();
    bad["run"]["outcome"] = "sort_of_ok".into();
    assert!(!validator.is_valid(&bad));
}

#[test]
fn journal_round_trips_through_json() {
    let j = simulated(&Sim {
        playbook: true,
        ..Sim::default()
    });
    let text = serde_json::to_string(&j).unwrap();
    let back: Journal = serde_json::from_str(&text).unwrap();
    assert_eq!(back, j);
}

#[test]
fn the_simulated_fault_breaks_the_slos_it_should() {
    // Guards the fixtures the other tests rely on.
    let j = violated();
    assert_eq!(j.run.outcome, Outcome::Violated);
    let p99 = j.slos.iter().find(|s| s.name == "checkout-p99").unwrap();
    let by_phase: Vec<(&str, bool)> = p99
        .per_phase
        .iter()
        .map(|r| (r.phase.as_str(), r.passed))
        .collect();
    assert_eq!(
        by_phase,
        [("warm", true), ("db-latency", false), ("settle", true)]
    );
    assert_eq!(held().run.outcome, Outcome::Held);
}

#[test]
fn markdown_puts_the_verdict_first_and_covers_every_section() {
    let j = simulated(&Sim {
        playbook: true,
        ..Sim::default()
    });
    let md = render_markdown(&j);
    let first: Vec<&str> = md.lines().take(4).collect();
    assert!(first[0].starts_with("# Gameday report: checkout-db-latency"));
    assert!(
        first.iter().any(|l| l.contains("**Verdict: ❌ VIOLATED**")),
        "verdict not in the first lines: {first:#?}"
    );
    // The verdict names what broke and by how much.
    assert!(first
        .iter()
        .any(|l| l.contains("`checkout-p99` in `db-latency`")));
    for section in [
        "## Hypothesis",
        "## Load by phase",
        "## Fault timeline",
        "## Recovery",
        "## Action items",
        "## R-3 / R-4",
        "## Measurement",
    ] {
        assert!(md.contains(section), "missing {section}");
    }
    for row in [
        "| p50 |",
        "| p90 |",
        "| p99 |",
        "| p99.9 |",
        "| max |",
        "| rate |",
        "| error % |",
    ] {
        assert!(md.contains(row), "phase table lacks {row}");
    }
    // Change from baseline is shown for the chaos phase's p99.
    let p99_row = md.lines().find(|l| l.starts_with("| p99 |")).unwrap();
    assert!(p99_row.matches("(+").count() >= 1, "{p99_row}");
    // Derived action items name the SLO, the fault, and leave blanks to fill.
    assert!(md.contains("`checkout-p99` (p99 latency) broke during `slow-db` (latency)"));
    assert!(md.contains("owner: _____"));
    assert!(md.contains("x the threshold"));
    // R-4: the playbook steps with who confirmed them.
    assert!(md.contains("orders-db failover"));
    assert!(md.contains("| 1 | Page the on-call DBA | bob | bob |"));
    assert!(md.contains("❌ not confirmed"));
    assert!(md.contains("1 of 2 steps confirmed"));
}

#[test]
fn a_held_run_says_so_and_derives_no_slo_items() {
    let j = held();
    let md = render_markdown(&j);
    assert!(md.contains("**Verdict: ✅ HELD**"));
    // The only derived item is what users felt (p99 2.7x the baseline), none from an SLO.
    assert!(j
        .action_items
        .iter()
        .all(|a| a.source == ActionSource::Scenario
            || a.title.contains("hurt users beyond tolerance")));
}

/// Issue 14: every SLO held, yet users felt the fault (p99 2.7x the baseline's for nine
/// seconds): the run says both, drafts an action item with its evidence, and does not tick
/// the R-3 owner box for an item nobody owns.
#[test]
fn a_fault_that_hurts_users_while_every_slo_holds_is_a_finding_with_an_action_item() {
    let j = held();
    assert_eq!(j.run.outcome, Outcome::Held);
    assert!(j.slos.iter().all(|s| s.passed));
    assert_eq!(j.impacts.len(), 1);
    let i = &j.impacts[0];
    assert!(i.exceeds_tolerance, "{i:#?}");
    let ratio = i.p99_ratio().unwrap();
    assert!(ratio > 2.0, "{ratio}");
    assert!(i.slower_than_baseline_p99 > 100, "{i:#?}");
    let derived: Vec<&ActionItem> = j
        .action_items
        .iter()
        .filter(|a| a.source == ActionSource::Derived)
        .collect();
    assert_eq!(derived.len(), 1, "{derived:#?}");
    let a = derived[0];
    assert!(a.title.contains("`slow-db` (latency)"), "{}", a.title);
    assert!(a.title.contains("x the baseline"), "{}", a.title);
    assert_eq!(a.owner.as_deref(), Some(UNASSIGNED));
    let d = a.detail.as_deref().unwrap();
    for want in [
        "service `orders-db`",
        "succeeded slower than the baseline's p99",
        "Worst second: t=",
        "Impact began",
    ] {
        assert!(d.contains(want), "`{want}` missing: {d}");
    }
    let md = render_markdown(&j);
    assert!(
        md.contains("**Verdict: ✅ HELD** · **1 finding** ·"),
        "{md}"
    );
    assert!(md.contains("## What users felt, per fault"), "{md}");
    assert!(md.contains("| `slow-db` (latency) |"), "{md}");
    assert!(md.contains("❌ **FINDING**"), "{md}");
    assert!(md.contains("owner: unassigned"), "{md}");
    assert!(
        md.contains("- [ ] Every action item has an owner and a due date"),
        "{md}"
    );
    assert!(
        md.contains("(1 with an owner)"),
        "only the scenario's: {md}"
    );
    let html = render_html(&j);
    assert!(html.contains("id=\"impact-table\""));
    assert!(html.contains("class=\"spark\""));
    assert!(html.contains("id=\"findings\">· 1 finding<"));

    // With `owners`, the service's owner is suggested, and then every item has one.
    let mut j = simulated(&Sim {
        owners: vec![("orders-db", "team-db")],
        ..held_sim()
    });
    let a = j
        .action_items
        .iter()
        .find(|a| a.source == ActionSource::Derived)
        .unwrap();
    assert_eq!(a.owner.as_deref(), Some("team-db"));
    assert!(a.detail.as_deref().unwrap().contains("`owners.orders-db`"));
    for a in &mut j.action_items {
        a.due.get_or_insert_with(|| "2027-01-15".into());
    }
    let md = render_markdown(&j);
    assert!(
        md.contains("- [x] Every action item has an owner and a due date: 2 of 2"),
        "{md}"
    );
    // An owner written as `unassigned` is no owner.
    j.action_items[1].owner = Some(UNASSIGNED.into());
    assert!(render_markdown(&j).contains("- [ ] Every action item has an owner"));
}

#[test]
fn an_impact_within_tolerance_is_no_finding() {
    let j = simulated(&Sim {
        impact_tolerance: ImpactTolerance {
            error_rate_points: 1.0,
            p99_ratio: 5.0,
        },
        ..held_sim()
    });
    assert_eq!(j.impacts.len(), 1);
    assert!(!j.impacts[0].exceeds_tolerance, "{:#?}", j.impacts[0]);
    assert!(
        j.impacts[0].time_to_impact_s.is_some(),
        "felt, but tolerated"
    );
    assert_eq!(j.findings().count(), 0);
    assert!(j
        .action_items
        .iter()
        .all(|a| a.source == ActionSource::Scenario));
    let md = render_markdown(&j);
    assert!(
        md.contains("**Verdict: ✅ HELD** · The"),
        "no findings suffix: {md}"
    );
    assert!(md.contains("| within tolerance |"), "{md}");
    assert!(!md.contains("FINDING"), "{md}");
}

#[test]
fn junit_has_an_impact_case_per_fault_failing_beyond_tolerance() {
    for (j, fails) in [
        (violated(), true),
        (
            simulated(&Sim {
                impact_tolerance: ImpactTolerance {
                    error_rate_points: 50.0,
                    p99_ratio: 100.0,
                },
                ..Sim::default()
            }),
            false,
        ),
    ] {
        let xml = render_junit(&j).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = doc
            .descendants()
            .find(|n| {
                n.has_tag_name("testsuite")
                    && n.attribute("name").is_some_and(|v| v.ends_with("/ impact"))
            })
            .expect("an impact suite");
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), j.faults.len());
        assert_eq!(cases[0].attribute("name"), Some("impact of slow-db"));
        let failure = cases[0].children().find(|n| n.has_tag_name("failure"));
        assert_eq!(failure.is_some(), fails, "{xml}");
        if let Some(f) = failure {
            assert_eq!(f.attribute("type"), Some("impact_beyond_tolerance"));
            assert!(f.attribute("message").unwrap().contains("29.8x"), "{xml}");
        }
    }
}

/// The summary `gameday run` prints, as reviewed snapshots: phases, what users felt per
/// fault, and the top findings with their owners.
#[test]
fn terminal_summary_snapshot() {
    insta::assert_snapshot!("terminal_summary_violated", render_terminal(&violated()));
    insta::assert_snapshot!(
        "terminal_summary_held_with_owner",
        render_terminal(&simulated(&Sim {
            owners: vec![("local", "platform")],
            ..held_sim()
        }))
    );
}

/// Journals written before impacts existed have no `impacts`, `impact_tolerance`, `owners`
/// or fault `service`: they still load, with the defaults, and `gameday report` works the
/// impacts out from their windows.
#[test]
fn an_old_journal_without_impacts_loads_and_gets_them_on_re_render() {
    let mut v = serde_json::to_value(violated()).unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let old = read_journal(&path).unwrap();
    assert!(old.impacts.is_empty());
    assert_eq!(old.impact_tolerance, ImpactTolerance::default());
    assert!(old.owners.is_empty() && old.faults[0].service.is_none());

    let mut filled = old.clone();
    impact::fill_missing(&mut filled);
    assert_eq!(filled.impacts.len(), 1);
    assert!(filled.impacts[0].exceeds_tolerance);
    assert_eq!(filled.action_items.len(), old.action_items.len() + 1);
    let again = filled.clone();
    impact::fill_missing(&mut filled);
    assert_eq!(filled, again, "a journal with impacts is left as it is");

    let o = gameday().arg("report").arg(&path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## What users felt, per fault"), "{md}");
    assert!(md.contains("· **1 finding**"), "{md}");
}

/// An empty list of actions proves nothing: the R-3 boxes about actions stay unticked for it,
/// held run or not, and are ticked once the items exist with owners and due dates.
#[test]
fn r3_ticks_no_box_for_an_empty_action_list() {
    let mut j = held();
    j.action_items.clear();
    let md = render_markdown(&j);
    assert!(
        md.contains("- [ ] Post-gameday actions defined: none yet"),
        "{md}"
    );
    assert!(
        md.contains("- [ ] Every action item has an owner and a due date: there are none"),
        "{md}"
    );
    assert!(!md.contains("- [x] Post-gameday actions"), "{md}");
    let mut j = violated();
    assert!(!j.action_items.is_empty());
    for a in &mut j.action_items {
        a.owner = Some("sre".into());
        a.due = Some("2027-01-15".into());
    }
    let md = render_markdown(&j);
    assert!(md.contains("- [x] Post-gameday actions defined:"), "{md}");
    assert!(
        md.contains("- [x] Every action item has an owner and a due date:"),
        "{md}"
    );
}

#[test]
fn junit_has_a_case_per_slo_per_phase_and_fails_the_broken_ones() {
    let j = violated();
    let xml = render_junit(&j).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("junit.xml is well-formed XML");
    let cases: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let slo_cases = j.slos.len() * j.phases.len();
    // One case per SLO per phase, one per fault's impact, one per fault's revert.
    assert_eq!(cases.len(), slo_cases + 2 * j.faults.len());
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    let expected: Vec<String> = j
        .slos
        .iter()
        .flat_map(|s| {
            s.per_phase
                .iter()
                .filter(|r| !r.passed)
                .map(move |r| format!("{} [{}]", s.name, r.phase))
        })
        .chain(j.findings().map(|i| format!("impact of {}", i.fault)))
        .collect();
    assert_eq!(failed, expected);
    let root = doc.root_element();
    assert_eq!(
        root.attribute("failures").unwrap(),
        expected.len().to_string()
    );
    let msg = cases
        .iter()
        .find(|c| c.attribute("name") == Some("checkout-p99 [db-latency]"))
        .and_then(|c| c.children().find(|n| n.has_tag_name("failure")))
        .and_then(|f| f.attribute("message"))
        .unwrap();
    assert!(msg.contains("objective < 250 ms"), "{msg}");
}

#[test]
fn junit_escapes_names_and_marks_a_failed_revert_as_an_error() {
    let mut j = simulated(&Sim {
        revert_fails: true,
        ..Sim::default()
    });
    j.slos[0].name = "p99 <\"quoted\" & 'odd'>".into();
    let xml = render_junit(&j).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed despite odd names");
    assert!(doc
        .descendants()
        .any(|n| n.attribute("name") == Some("p99 <\"quoted\" & 'odd'> [warm]")));
    let revert = doc
        .descendants()
        .find(|n| n.attribute("name") == Some("revert slow-db"))
        .unwrap();
    assert!(revert.children().any(|n| n.has_tag_name("error")));
}

#[test]
fn html_is_self_contained() {
    let j = violated();
    let html = render_html(&j);
    assert!(html.starts_with("<!doctype html>"));
    for banned in ["<script", "<link", " src=", "@import", "url("] {
        assert!(
            !html.contains(banned),
            "report.html must not load anything: {banned}"
        );
    }
    let without_ns = html.replace("http://www.w3.org/2000/svg", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    assert_eq!(
        html.matches("<svg").count(),
        4 + j.impacts.len(),
        "latency, errors, throughput, distribution, a sparkline per fault"
    );
    assert!(html.contains("<g class=\"fault\">"), "fault window shaded");
    assert!(html.contains("class=\"phase-label\""), "phases labelled");
    assert!(
        html.contains("SLO checkout-p99: &lt; 250 ms"),
        "threshold drawn"
    );
}

#[test]
fn write_all_writes_every_format_and_run_dirs_never_collide() {
    let base = tempfile::tempdir().unwrap();
    let date = time::macros::date!(2026 - 11 - 01);
    let j = violated();
    let a = run_dir(base.path(), date, "Checkout DB latency!", &j.run.id).unwrap();
    assert_eq!(
        a.file_name().unwrap().to_str().unwrap(),
        "2026-11-01-checkout-db-latency-r-20261101-a1b2"
    );
    let files = write_all(&j, &a).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["journal.json", "report.md", "report.html", "junit.xml"]
    );
    let before = std::fs::read(a.join("journal.json")).unwrap();
    // Same date, scenario and id again: a new directory, the first left alone.
    let b = run_dir(base.path(), date, "Checkout DB latency!", &j.run.id).unwrap();
    assert_ne!(a, b);
    assert!(std::fs::read_dir(&b).unwrap().next().is_none());
    assert_eq!(std::fs::read(a.join("journal.json")).unwrap(), before);
    assert_eq!(read_journal(&a.join("journal.json")).unwrap(), j);
}

#[test]
fn a_newer_journal_version_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = serde_json::to_value(violated()).unwrap();
    v["journal_version"] = (JOURNAL_VERSION + 1).into();
    v["something_new"] = true.into();
    let path = dir.path().join("journal.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let err = read_journal(&path).unwrap_err().to_string();
    assert!(err.contains("upgrade gameday"), "{err}");
}

#[test]
fn compare_flags_a_regression_made_on_purpose() {
    let last_month = held();
    let this_month = violated();
    let c = compare(&last_month, &this_month, 10.0);
    let regressed: Vec<(&str, &str)> = c
        .regressions()
        .map(|r| (r.slo.as_str(), r.phase.as_str()))
        .collect();
    assert!(
        regressed.contains(&("checkout-p99", "db-latency")),
        "{regressed:?}"
    );
    assert!(
        regressed.contains(&("checkout-errors", "db-latency")),
        "{regressed:?}"
    );
    // The baseline phases are the same service with the same seed: no change there.
    assert!(c
        .rows
        .iter()
        .filter(|r| r.phase == "warm")
        .all(|r| r.change == Change::Unchanged));
    // And the other way round it is an improvement.
    let back = compare(&this_month, &last_month, 10.0);
    assert!(back.regressions().next().is_none());
    assert!(back.improvements().any(|r| r.slo == "checkout-p99"));
}

fn gameday() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gameday"))
}

#[test]
fn cli_rerenders_a_journal_and_compare_exits_1_on_regression() {
    let dir = tempfile::tempdir().unwrap();
    let old_dir = dir.path().join("old");
    let new_dir = dir.path().join("new");
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    write_all(&held(), &old_dir).unwrap();
    std::fs::write(
        new_dir.join("journal.json"),
        serde_json::to_string(&violated()).unwrap(),
    )
    .unwrap();

    // Re-render only: every format appears next to the journal, exit 0.
    let out = gameday()
        .args(["report"])
        .arg(new_dir.join("journal.json"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["report.md", "report.html", "junit.xml"] {
        assert!(new_dir.join(f).is_file(), "{f} not written");
    }

    // Compare with last month's run: the regression is flagged and the exit code is 1.
    let out_dir = dir.path().join("cmp");
    let out = gameday()
        .args(["report"])
        .arg(new_dir.join("journal.json"))
        .arg("--compare")
        .arg(old_dir.join("journal.json"))
        .args(["--format", "md", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| `checkout-p99` | db-latency |"))
        .unwrap_or_else(|| panic!("no p99 chaos row in {stdout}"));
    assert!(row.contains("REGRESSION"), "{row}");
    assert!(out_dir.join("compare.md").is_file());
    assert!(out_dir.join("report.md").is_file());
    assert!(
        !out_dir.join("report.html").exists(),
        "--format md writes only Markdown"
    );

    // A run compared with itself has nothing to flag.
    let out = gameday()
        .args(["report"])
        .arg(old_dir.join("journal.json"))
        .arg("--compare")
        .arg(old_dir.join("journal.json"))
        .args(["--format", "md", "--out"])
        .arg(dir.path().join("same"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    // A missing journal is an error with the path in it, exit 2.
    let out = gameday()
        .args(["report", "/nonexistent/journal.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/journal.json"));
}

/// The Chromium binary, or `None` (with a loud message) when it is not installed. Under CI
/// a missing browser is a failure, not a skip.
pub fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if !p.is_empty() {
                    return Some(PathBuf::from(p));
                }
            }
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is required under CI: apt-get install -y chromium"
    );
    eprintln!("SKIPPED: chromium is not installed (apt-get install -y chromium); the HTML report was not checked in a browser");
    None
}

/// Runs headless Chromium on a local file with everything that could reach the network
/// turned off.
pub fn chromium_run(
    browser: &Path,
    profile: &Path,
    extra: &[&str],
    page: &Path,
) -> std::process::Output {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", page.display()));
    cmd.output().expect("chromium starts")
}

/// Renders the report in a real browser and checks what a person would see: the verdict,
/// and the four charts drawn with their fault windows and phase labels. The screenshot is
/// kept under target/ for a human look.
pub fn check_html_in_browser(html_path: &Path, expect_verdict: &str) {
    let Some(browser) = chromium() else { return };
    let profile = tempfile::tempdir().unwrap();
    let out = chromium_run(&browser, profile.path(), &["--dump-dom"], html_path);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains(&format!("id=\"verdict-label\">{expect_verdict}<")),
        "verdict not in the rendered DOM"
    );
    for id in [
        "chart-latency",
        "chart-errors",
        "chart-throughput",
        "chart-distribution",
    ] {
        let start = dom
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} not in the rendered DOM"));
        let svg = &dom[start..start + dom[start..].find("</svg>").unwrap()];
        assert!(svg.contains("<path class=\"series"), "{id} has no line");
        assert!(
            svg.matches(" d=\"M").count() >= 1,
            "{id}'s lines have no points"
        );
    }
    assert!(dom.contains("class=\"phase-label\""));
    assert!(dom.contains("<g class=\"fault\">"));

    let shot_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shot_dir).unwrap();
    let shot = shot_dir.join(format!(
        "{}.png",
        html_path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    ));
    let _ = std::fs::remove_file(&shot);
    std::fs::copy(html_path, shot.with_extension("html")).unwrap();
    let out = chromium_run(
        &browser,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1366,2600",
        ],
        html_path,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
    // A blank page compresses to almost nothing; charts and tables do not.
    assert!(
        png.len() > 50_000,
        "screenshot looks blank ({} bytes)",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("violated");
    std::fs::create_dir(&run).unwrap();
    write_all(
        &simulated(&Sim {
            playbook: true,
            untrusted: vec![5],
            ..Sim::default()
        }),
        &run,
    )
    .unwrap();
    check_html_in_browser(&run.join("report.html"), "VIOLATED");

    let run = dir.path().join("revert-failed");
    std::fs::create_dir(&run).unwrap();
    write_all(
        &simulated(&Sim {
            revert_fails: true,
            ..Sim::default()
        }),
        &run,
    )
    .unwrap();
    check_html_in_browser(&run.join("report.html"), "REVERT INCOMPLETE");
}

/// The whole Markdown report of a seeded run, as a reviewed snapshot: any change to what
/// people read shows up in review (`cargo insta review`).
#[test]
fn markdown_report_snapshot() {
    let md = render_markdown(&simulated(&Sim {
        playbook: true,
        ..Sim::default()
    }));
    insta::with_settings!({filters => vec![(r"gameday \d+\.\d+\.\d+\S*", "gameday [version]")]}, {
        insta::assert_snapshot!(md);
    });
}

/// A real service for real gamedays: a Python HTTP server on a fixed port (what the load
/// hits) that also answers on the replica's own `$PORT` (what the supervisor probes), so a
/// killed replica means refused connections until the supervisor restarts it.
fn real_scenario(dir: &Path, port: u16, name: &str, kill: &str) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "<h1>checkout</h1>\n").unwrap();
    let server = dir.join("server.py");
    std::fs::write(
        &server,
        r#"import http.server, os, sys, threading
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = lambda *a, **k: H(*a, directory=sys.argv[2], **k)
public = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler)
probe = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), handler)
threading.Thread(target=probe.serve_forever, daemon=True).start()
public.serve_forever()
"#,
    )
    .unwrap();
    let text = format!(
        r#"apiVersion: gameday/v1
kind: Gameday
metadata:
  name: {name}
  owner: team-checkout
  description: Kill the checkout service and watch users' errors and latency.
  tags: [monthly, example]
target:
  local:
    max_percent: 100
    services:
      - name: checkout
        command: [python3, "{server}", "{port}", "{www}"]
        replicas: 1
        health: /
load:
  url: http://127.0.0.1:{port}/
  rate: 50
  connections: 4
  timeout: 2s
hypothesis:
  description: Users keep getting answers, fast, while the checkout service is killed.
  slos:
    - name: checkout-errors
      error_rate: {{ max_percent: 25 }}
    - name: checkout-p99
      latency: {{ percentile: 99, max: 200ms }}
    - name: checkout-recovers
      recovery_time: {{ max: 5s, consecutive: 2 }}
phases:
  - name: baseline
    duration: 3s
  - name: chaos
    duration: 6s
    faults:
      - name: kill-checkout
{kill}
        process_kill: {{ service: checkout }}
  - name: recovery
    duration: 4s
action_items:
  - title: Run two checkout replicas behind a load balancer
    owner: team-checkout
    priority: P2
    due: 2026-12-15
playbook:
  name: checkout restart
  rto: 30s
  steps:
    - step: Confirm the supervisor restarted checkout
      owner: on-call
    - step: Check error rate is back under 1%
      owner: on-call
"#,
        server = server.display(),
        www = www.display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs one real gameday and returns its run folder.
fn run_gameday(scenario: &Path, out: &Path) -> PathBuf {
    let o = gameday()
        .args(["run"])
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .arg("--no-progress")
        // Tests run in parallel: no fixed metrics port.
        .args(["--metrics-addr", "none"])
        .output()
        .unwrap();
    let code = o.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "the gameday should end held or violated, got {code:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run folder per run: {dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// The whole chain on real parts: two real gamedays of the same scenario (a service killed
/// once "last month", every second "this month"), every format rendered from the real
/// journal, checked by a schema validator, an XML parser and a browser, and `--compare`
/// flagging the regression made on purpose.
#[test]
fn real_gamedays_render_every_format_and_compare_flags_the_regression() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let last_month = run_gameday(
        &real_scenario(
            &dir.path().join("last"),
            port,
            "checkout-kill",
            "        at: 1500ms",
        ),
        &dir.path().join("reports-last"),
    );
    let this_month = run_gameday(
        &real_scenario(
            &dir.path().join("this"),
            port,
            "checkout-kill",
            "        at: 1500ms\n        every: 1s",
        ),
        &dir.path().join("reports-this"),
    );
    for run in [&last_month, &this_month] {
        for f in ["journal.json", "report.md", "report.html", "junit.xml"] {
            assert!(run.join(f).is_file(), "{f} missing in {}", run.display());
        }
    }
    let old = read_journal(&last_month.join("journal.json")).unwrap();
    let new = read_journal(&this_month.join("journal.json")).unwrap();

    // The journal is the real run's: phases, windows, the kills, and the errors they caused.
    assert_eq!(
        new.phases
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["baseline", "chaos", "recovery"]
    );
    assert!(new.windows.len() >= 12, "{} windows", new.windows.len());
    let kills = new
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Inject)
        .count();
    assert!(kills >= 3, "expected repeated kills, saw {kills}");
    let chaos = new.phase("chaos").unwrap();
    let refused = chaos.stats.errors.connect_refused + chaos.stats.errors.reset;
    assert!(
        refused > 0,
        "killing the only replica refused nothing: {:?}",
        chaos.stats.errors
    );
    assert!(chaos.stats.histogram_b64.is_some());
    assert_eq!(new.slos.len(), 3);
    assert!(
        new.action_items
            .iter()
            .any(|a| a.source == ActionSource::Scenario
                && a.owner.as_deref() == Some("team-checkout"))
    );

    // Schema-valid.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for j in [&old, &new] {
        let v = serde_json::to_value(j).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }

    // Markdown: the verdict on top, matching the run's outcome.
    let md = std::fs::read_to_string(this_month.join("report.md")).unwrap();
    let head: String = md.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("**Verdict: ") && head.contains(new.run.outcome.label()),
        "{head}"
    );
    assert!(md.contains("`kill-checkout`"));
    assert!(md.contains("checkout restart"), "the playbook is in R-4");

    // JUnit: one case per SLO per judged phase plus one per fault, failures as judged.
    let xml = std::fs::read_to_string(this_month.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    let judged: usize = new.slos.iter().map(|s| s.per_phase.len()).sum();
    // ... and one per fault for its impact on users.
    assert_eq!(cases, judged + 2 * new.faults.len());
    let failed_slo_phases = new
        .slos
        .iter()
        .flat_map(|s| s.per_phase.iter())
        .filter(|r| !r.passed)
        .count();
    assert_eq!(
        doc.root_element().attribute("failures").unwrap(),
        (failed_slo_phases + new.findings().count()).to_string()
    );

    // The HTML as a person sees it.
    check_html_in_browser(&this_month.join("report.html"), new.run.outcome.label());

    // Last month against this month: the error rate during chaos regressed.
    let cmp_dir = dir.path().join("compare");
    let o = gameday()
        .arg("report")
        .arg(this_month.join("journal.json"))
        .arg("--compare")
        .arg(last_month.join("journal.json"))
        .arg("--out")
        .arg(&cmp_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| `checkout-errors` | chaos |"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains("REGRESSION"), "{row}");
    for f in ["compare.md", "compare.html", "journal.json", "report.html"] {
        assert!(cmp_dir.join(f).is_file(), "{f}");
    }
}
