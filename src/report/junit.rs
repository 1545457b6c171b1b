//! `junit.xml`: a gameday as a test run, so CI systems list each SLO per phase as a test
//! case, each fault's impact on users as one more (failing beyond `impact_tolerance`), and
//! each fault's revert as one more, with failures that say by how much.
//!
//! The XML is written by `quick-junit` (the crate nextest uses), which does the escaping.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::analysis::{fmt_num, fmt_value, shortfall};
use super::journal::{Journal, Outcome};
use super::ReportError;

/// Renders the JUnit XML: one suite per phase with a test case per SLO evaluated in it, an
/// `impact` suite with a test case per fault (a failure when what users felt is beyond the
/// tolerance), and a `reverts` suite with a test case per fault.
pub fn render_junit(j: &Journal) -> Result<String, ReportError> {
    let mut report = Report::new(format!("gameday {}", j.run.scenario_name));
    report.set_time(Duration::from_secs_f64(j.duration_s().max(0.0)));
    let class_base = format!("gameday.{}", super::slug(&j.run.scenario_name));

    // Phases in timeline order, then any phase named only by an SLO result.
    let mut phases: Vec<(String, String, f64)> = j
        .phases
        .iter()
        .map(|p| (p.name.clone(), p.role.clone(), p.end_s - p.start_s))
        .collect();
    for s in &j.slos {
        for r in &s.per_phase {
            if !phases.iter().any(|(n, _, _)| *n == r.phase) {
                phases.push((r.phase.clone(), String::new(), 0.0));
            }
        }
    }
    for (phase, role, len) in &phases {
        let mut suite = TestSuite::new(format!("{} / {phase}", j.run.scenario_name));
        suite.set_time(Duration::from_secs_f64(len.max(0.0)));
        suite.add_property(Property::new("run_id", j.run.id.as_str()));
        if !role.is_empty() {
            suite.add_property(Property::new("role", role.as_str()));
        }
        for s in &j.slos {
            let Some(r) = s.per_phase.iter().find(|r| r.phase == *phase) else {
                continue;
            };
            let unit = s.metric.unit();
            let observed = r
                .observed
                .map(|v| fmt_value(v, unit))
                .unwrap_or_else(|| "no data".to_owned());
            let status = if r.passed {
                TestCaseStatus::success()
            } else {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let why = r
                    .observed
                    .map(|v| format!(" ({})", shortfall(s, v)))
                    .unwrap_or_default();
                st.set_message(format!(
                    "{} {observed} in phase {phase}, objective {}{why}",
                    s.metric.label(),
                    s.objective
                ));
                st.set_type("slo_violation");
                st
            };
            let mut case = TestCase::new(format!("{} [{phase}]", s.name), status);
            case.set_classname(format!("{class_base}.{}", super::slug(phase)));
            case.add_property(Property::new("metric", format!("{:?}", s.metric)));
            case.add_property(Property::new("objective", s.objective.as_str()));
            case.add_property(Property::new("observed", observed));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }

    if !j.impacts.is_empty() {
        let mut impact = TestSuite::new(format!("{} / impact", j.run.scenario_name));
        impact.add_property(Property::new("run_id", j.run.id.as_str()));
        impact.add_property(Property::new(
            "tolerance",
            format!(
                "+{} pts errors, {}x p99",
                fmt_num(j.impact_tolerance.error_rate_points),
                fmt_num(j.impact_tolerance.p99_ratio)
            ),
        ));
        for i in &j.impacts {
            let status = if i.exceeds_tolerance {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!(
                    "users felt {} ({}) beyond tolerance: {}",
                    i.fault,
                    i.kind,
                    i.reasons.join("; ")
                ));
                st.set_type("impact_beyond_tolerance");
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(format!("impact of {}", i.fault), status);
            case.set_classname(format!("{class_base}.impact"));
            case.set_time(Duration::from_secs_f64(
                (i.window_end_s - i.window_start_s).max(0.0),
            ));
            case.add_property(Property::new("error_pct", fmt_num(i.error_pct)));
            if let Some(p99) = i.p99_ms {
                case.add_property(Property::new("p99_ms", fmt_num(p99)));
            }
            case.add_property(Property::new("requests", i.requests.to_string()));
            case.add_property(Property::new("failed", i.failed.to_string()));
            impact.add_test_case(case);
        }
        report.add_test_suite(impact);
    }

    let mut reverts = TestSuite::new(format!("{} / reverts", j.run.scenario_name));
    for f in &j.faults {
        let status = if f.reverted {
            TestCaseStatus::success()
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(format!(
                "revert of {} ({}) on {} failed: run `gameday recover`",
                f.name,
                f.kind,
                f.targets.join(", ")
            ));
            st.set_type("revert_failed");
            st
        };
        let mut case = TestCase::new(format!("revert {}", f.name), status);
        case.set_classname(format!("{class_base}.reverts"));
        if let Some(end) = f.end_s {
            case.set_time(Duration::from_secs_f64((end - f.start_s).max(0.0)));
        }
        reverts.add_test_case(case);
    }
    if matches!(j.run.outcome, Outcome::Aborted | Outcome::Unreachable) {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
        st.set_message(format!(
            "run {}: {}",
            j.run.outcome.label().to_lowercase(),
            j.run
                .abort_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        ));
        st.set_type("run_aborted");
        let mut case = TestCase::new("run completed", st);
        case.set_classname(format!("{class_base}.run"));
        reverts.add_test_case(case);
    }
    if !reverts.test_cases.is_empty() {
        report.add_test_suite(reverts);
    }
    Ok(report.to_string()?)
}
