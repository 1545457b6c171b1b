//! `gameday validate`: every mistake class reported at its exact line and column, all at once.

use crate::support::{fixture, gameday, text};

fn validate(name: &str) -> (i32, String) {
    let f = fixture(name);
    let o = gameday(&["validate", f.to_str().unwrap()]);
    (o.status.code().unwrap_or(-1), text(&o))
}

fn has(out: &str, file: &str, line: usize, col: usize, words: &str) {
    let prefix = format!("{file}:{line}:{col}: ");
    assert!(
        out.lines()
            .any(|l| l.contains(&prefix) && l.contains(words)),
        "expected `{prefix}...{words}...` in:\n{out}"
    );
}

#[test]
fn structural_mistakes_are_all_reported_with_line_and_column() {
    let (code, out) = validate("structural-errors.yaml");
    assert_eq!(code, 2, "{out}");
    let f = "structural-errors.yaml";
    // Unknown field, with a suggestion.
    has(&out, f, 13, 5, "unknown field `durration`");
    assert!(out.contains("did you mean `duration`?"), "{out}");
    // Missing field, at the mapping that lacks it.
    has(&out, f, 12, 5, "missing field `duration`");
    // Wrong type.
    has(&out, f, 10, 19, "expected an integer, found a string");
    // Negative duration.
    has(&out, f, 17, 13, "negative");
    // Bad enum value.
    has(&out, f, 18, 47, "unknown value `SIGHUP`");
    assert!(out.contains("5 errors found"), "{out}");
}

#[test]
fn meaning_mistakes_are_all_reported_with_line_and_column() {
    let (code, out) = validate("semantic-errors.yaml");
    assert_eq!(code, 2, "{out}");
    let f = "semantic-errors.yaml";
    // Percent out of range.
    has(&out, f, 7, 18, "max_percent 150 must be in (0, 100]");
    // An SLO that nothing measures.
    has(&out, f, 14, 7, "no `load:` section");
    // Zero duration.
    has(&out, f, 18, 15, "zero duration");
    // Overlapping faults on the same targets.
    has(&out, f, 25, 9, "overlap in time on the same targets");
    // A fault that outlasts its phase.
    has(&out, f, 30, 19, "past the end of phase `chaos`");
    // A fault for a target that is not configured.
    has(&out, f, 34, 17, "names target `aws`");
}

#[test]
fn a_valid_scenario_passes_and_a_missing_file_is_a_clear_error() {
    let (code, out) = validate("valid-local.yaml");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid-local.yaml: ok"), "{out}");
    let o = gameday(&["validate", "/nonexistent/scenario.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("/nonexistent/scenario.yaml:1:1: cannot read"),
        "{}",
        text(&o)
    );
}

#[test]
fn invalid_yaml_points_at_the_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, "apiVersion: gameday/v1\nkind: [Gameday\nmetadata: {}\n").unwrap();
    let o = gameday(&["validate", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("bad.yaml:"), "{}", text(&o));
    assert!(text(&o).contains("invalid YAML"), "{}", text(&o));
}

#[test]
fn schema_is_json_and_names_the_fault_kinds() {
    let o = gameday(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    assert!(text.contains("process_kill"));
    assert!(text.contains("stop_conditions"));
}

#[test]
fn aws_mistakes_are_reported_with_line_and_column_before_anything_is_contacted() {
    // The fixture names no reachable endpoint: validate must not need one.
    let (code, out) = validate("aws-errors.yaml");
    assert_eq!(code, 2, "{out}");
    let f = "aws-errors.yaml";
    has(&out, f, 7, 13, "not an AWS region name");
    has(&out, f, 8, 19, "not an http(s) URL");
    has(&out, f, 9, 26, "not an AWS account id");
    // `target: aws` with a spot interruption that selects no EC2 instances.
    has(&out, f, 17, 11, "has no `select:`");
    // The notice would end after the phase.
    has(
        &out,
        f,
        19,
        13,
        "interrupted at 170.0s, after phase `chaos` ends",
    );
    has(&out, f, 21, 64, "150 is over 100");
    // Termination must be acknowledged.
    has(&out, f, 25, 11, "ec2_terminate cannot be reverted");
    has(&out, f, 25, 34, "`abc` is not an instance id");
    // FIS: a role, and a notice FIS accepts.
    has(&out, f, 28, 11, "needs the ARN of the IAM role");
    has(&out, f, 30, 19, "outside what FIS accepts");
    // Two interruptions of the same instances at once.
    has(
        &out,
        f,
        32,
        9,
        "overlap in time on the same targets (spot_interruption on aws instances tagged a=b)",
    );
    // A stop shorter than its notice.
    has(&out, f, 33, 19, "less than its spot notice (20s)");
    assert!(out.contains("12 errors found"), "{out}");
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let o = gameday(&["validate", path.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(0), "{}: {}", path.display(), text(&o));
            seen += 1;
        }
    }
    assert!(seen >= 7, "only {seen} scenarios found");
}

#[test]
fn a_kubernetes_probe_slo_needs_the_kubernetes_target() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("probe.yaml");
    std::fs::write(
        &f,
        "apiVersion: gameday/v1\nkind: Gameday\nmetadata:\n  name: p\ntarget:\n  local:\n    services:\n      - name: web\n        command: [sleep, '60']\nhypothesis:\n  slos:\n    - name: web-up\n      workload_ready: {kind: deployment, namespace: shop, name: web}\nphases:\n  - name: a\n    duration: 1s\n",
    )
    .unwrap();
    let o = gameday(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    has(
        &text(&o),
        "probe.yaml",
        13,
        23,
        "reads the Kubernetes target, which is not configured",
    );
}

/// A closed-model load (no `rate`) is valid, and validate says what it cannot measure; an open
/// model says nothing of the kind.
#[test]
fn a_closed_model_load_is_flagged_as_not_coordinated_omission_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixture("valid-local.yaml")).unwrap();
    for (rate, flagged) in [("", true), ("  rate: 20\n", false)] {
        let p = dir.path().join("closed.yaml");
        std::fs::write(
            &p,
            format!("{base}\nload:\n  url: http://127.0.0.1:9/\n{rate}  connections: 2\n"),
        )
        .unwrap();
        let o = gameday(&["validate", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(
            text(&o).contains("NOT coordinated-omission corrected"),
            flagged,
            "{}",
            text(&o)
        );
    }
}

/// The load's durations are the scenario's own type: a bad one is found by the same reader as
/// every other duration, at its line and column, with the same cap, and all at once.
#[test]
fn load_durations_are_reported_like_every_scenario_duration() {
    let (code, out) = validate("load-duration-errors.yaml");
    assert_eq!(code, 2, "{out}");
    let f = "load-duration-errors.yaml";
    has(&out, f, 14, 12, "`soon` is not a duration");
    has(&out, f, 15, 20, "negative");
    has(&out, f, 16, 12, "too long");
    has(&out, f, 20, 29, "`1x` is not a duration");
    assert!(out.contains("4 errors found"), "{out}");
}

/// Issue 14: `impact_tolerance` and `owners` are checked like every other field, at their
/// line and column, all at once; valid ones pass.
#[test]
fn impact_tolerance_and_owners_mistakes_point_at_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("impact.yaml");
    let head = "apiVersion: gameday/v1\nkind: Gameday\nmetadata:\n  name: p\ntarget:\n  local:\n    services:\n      - name: web\n        command: [sleep, '60']\nphases:\n  - name: a\n    duration: 1s\n";
    std::fs::write(
        &f,
        format!("{head}impact_tolerance:\n  error_rate_points: 120\n  p99_ratio: 0.5\nowners:\n  web: ''\n"),
    )
    .unwrap();
    let o = gameday(&["validate", f.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    has(
        &out,
        "impact.yaml",
        14,
        22,
        "error_rate_points 120 must be percentage points",
    );
    has(&out, "impact.yaml", 15, 14, "p99_ratio 0.5 must be");
    has(&out, "impact.yaml", 17, 8, "owners.web is empty");
    // A near-miss key is a structural error with a suggestion.
    std::fs::write(&f, format!("{head}impact_tolerance:\n  p99_ration: 3\n")).unwrap();
    let out = text(&gameday(&["validate", f.to_str().unwrap()]));
    has(&out, "impact.yaml", 14, 3, "unknown field `p99_ration`");
    assert!(out.contains("did you mean `p99_ratio`?"), "{out}");
    std::fs::write(
        &f,
        format!("{head}impact_tolerance: {{ error_rate_points: 0.5 }}\nowners:\n  web: team-web\n  local: platform\n"),
    )
    .unwrap();
    let o = gameday(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A key that names nothing of the scenario would leave its items `unassigned` silently.
    std::fs::write(&f, format!("{head}owners:\n  wbe: team-web\n")).unwrap();
    let o = gameday(&["validate", f.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    has(
        &out,
        "impact.yaml",
        14,
        8,
        "owners.wbe names no fault, service or target of this scenario; did you mean `web`?",
    );
}
