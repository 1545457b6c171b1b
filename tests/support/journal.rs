//! Builds realistic journals without running a gameday: latencies are drawn from a seeded
//! random distribution and recorded into real HdrHistograms (microseconds), one per second,
//! merged per phase and serialized as the load generator does (V2-deflate, base64). SLOs,
//! recovery and derived action items are then worked out from those numbers, so the
//! renderers see the same shapes a real run produces (gaps, tails, noisy seconds).

use base64::Engine as _;
use gameday::report::analysis::{compute_recovery, derive_action_items, time_to_recover};
use gameday::report::impact::compute_impacts;
use gameday::report::*;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use rand::{rngs::StdRng, Rng, SeedableRng};
use time::macros::datetime;
use time::Duration;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Sim {
    pub run_id: String,
    pub baseline_s: u32,
    pub chaos_s: u32,
    pub recovery_s: u32,
    /// Requests per second.
    pub rate: u32,
    /// Latency added to affected requests while the fault is active, ms.
    pub fault_delay_ms: f64,
    /// Share of requests the fault slows down, 0..1.
    pub fault_share: f64,
    /// Share of requests the fault turns into errors, 0..1.
    pub fault_errors: f64,
    /// Seconds after the fault ends during which the service is still degraded.
    pub tail_s: u32,
    /// Seconds where the generator lagged (untrusted), counted from the start.
    pub untrusted: Vec<u32>,
    /// Attach a DR playbook.
    pub playbook: bool,
    /// The fault's revert fails.
    pub revert_fails: bool,
    /// The scenario's `owners`.
    pub owners: Vec<(&'static str, &'static str)>,
    /// The scenario's `impact_tolerance`.
    pub impact_tolerance: ImpactTolerance,
    pub seed: u64,
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            run_id: "r-20261101-a1b2".into(),
            baseline_s: 10,
            chaos_s: 12,
            recovery_s: 12,
            rate: 200,
            fault_delay_ms: 300.0,
            fault_share: 0.4,
            fault_errors: 0.03,
            tail_s: 3,
            untrusted: vec![],
            playbook: false,
            revert_fails: false,
            owners: vec![],
            impact_tolerance: ImpactTolerance::default(),
            seed: 7,
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn latency(h: &Histogram<u64>) -> Option<Latency> {
    (!h.is_empty()).then(|| Latency {
        p50: h.value_at_quantile(0.50) as f64 / 1000.0,
        p90: h.value_at_quantile(0.90) as f64 / 1000.0,
        p99: h.value_at_quantile(0.99) as f64 / 1000.0,
        p999: h.value_at_quantile(0.999) as f64 / 1000.0,
        max: h.max() as f64 / 1000.0,
        mean: h.mean() / 1000.0,
    })
}

fn add_errors(a: &mut ErrorCounts, b: &ErrorCounts) {
    a.reset += b.reset;
    a.http_5xx += b.http_5xx;
    a.connect_refused += b.connect_refused;
    a.request_timeout += b.request_timeout;
}

/// Encodes a histogram as the load generator does.
pub fn histogram_b64(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("histogram serializes");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// A journal of a simulated run: baseline, chaos with one latency+error fault in its
/// middle, recovery.
pub fn simulated(sim: &Sim) -> Journal {
    let mut rng = StdRng::seed_from_u64(sim.seed);
    let started = datetime!(2026-11-01 10:00:00 UTC);
    let total = sim.baseline_s + sim.chaos_s + sim.recovery_s;
    let chaos_start = sim.baseline_s as f64;
    let chaos_end = (sim.baseline_s + sim.chaos_s) as f64;
    let fault_start = chaos_start + 2.0;
    let fault_end = chaos_end - 2.0;

    let phase_bounds = [
        ("warm", ROLE_BASELINE, 0.0, chaos_start),
        ("db-latency", ROLE_CHAOS, chaos_start, chaos_end),
        ("settle", ROLE_RECOVERY, chaos_end, total as f64),
    ];
    let mut phase_hist: Vec<Histogram<u64>> = (0..3).map(|_| new_hist()).collect();
    let mut phase_err = [ErrorCounts::default(); 3];
    let mut phase_req = [0u64; 3];
    let mut phase_ok = [0u64; 3];
    let mut windows = Vec::new();
    for s in 0..total {
        let t = s as f64;
        let pi = phase_bounds
            .iter()
            .position(|(_, _, a, b)| t >= *a && t < *b)
            .unwrap();
        let in_fault = t + 0.5 >= fault_start && t + 0.5 < fault_end;
        let since_end = t - fault_end;
        let tail = if since_end >= 0.0 && since_end < sim.tail_s as f64 {
            1.0 - since_end / sim.tail_s as f64
        } else {
            0.0
        };
        let mut h = new_hist();
        let mut errors = ErrorCounts::default();
        let mut ok = 0;
        for _ in 0..sim.rate {
            // Base service time: 2 ms plus an exponential tail, and rare slow outliers.
            let u: f64 = rng.gen_range(1e-9..1.0);
            let mut ms = 2.0 - u.ln() * 1.5;
            if rng.gen_bool(0.005) {
                ms += rng.gen_range(20.0..60.0);
            }
            if in_fault {
                if rng.gen_bool(sim.fault_errors) {
                    if rng.gen_bool(0.5) {
                        errors.http_5xx += 1;
                    } else {
                        errors.reset += 1;
                    }
                    continue;
                }
                if rng.gen_bool(sim.fault_share) {
                    ms += sim.fault_delay_ms * rng.gen_range(0.8..1.2);
                }
            } else if tail > 0.0 && rng.gen_bool(sim.fault_share * tail) {
                ms += sim.fault_delay_ms * tail;
            }
            h.record((ms * 1000.0) as u64).unwrap();
            ok += 1;
        }
        let requests = ok + errors.total();
        phase_hist[pi].add(&h).unwrap();
        add_errors(&mut phase_err[pi], &errors);
        phase_req[pi] += requests;
        phase_ok[pi] += ok;
        windows.push(WindowRecord {
            t_s: t,
            duration_s: 1.0,
            requests,
            ok,
            dropped: if sim.untrusted.contains(&s) { 12 } else { 0 },
            late: 0,
            retries: 0,
            stalled: false,
            rate_requested: Some(sim.rate as f64),
            errors,
            latency_ms: latency(&h),
            trusted: !sim.untrusted.contains(&s),
        });
    }
    let phases: Vec<PhaseRecord> = phase_bounds
        .iter()
        .enumerate()
        .map(|(i, (name, role, a, b))| PhaseRecord {
            name: (*name).into(),
            role: (*role).into(),
            start_s: *a,
            end_s: *b,
            stats: PhaseStats {
                requests: phase_req[i],
                ok: phase_ok[i],
                dropped: 0,
                late: 0,
                rate: phase_req[i] as f64 / (b - a),
                errors: phase_err[i],
                error_pct: phase_err[i].total() as f64 * 100.0 / phase_req[i].max(1) as f64,
                latency_ms: latency(&phase_hist[i]),
                histogram_b64: Some(histogram_b64(&phase_hist[i])),
            },
        })
        .collect();

    let slo = |name: &str, metric: SloMetric, objective: &str, cmp: Comparison, threshold: f64| {
        let per_phase: Vec<SloPhaseResult> = phases
            .iter()
            .map(|p| {
                let observed = match metric {
                    SloMetric::LatencyP99Ms => p.stats.latency_ms.map(|l| l.p99),
                    SloMetric::ErrorRatePct => Some(p.stats.error_pct),
                    SloMetric::AvailabilityPct => Some(100.0 - p.stats.error_pct),
                    _ => unreachable!("not simulated"),
                };
                SloPhaseResult {
                    phase: p.name.clone(),
                    observed,
                    passed: observed.is_some_and(|v| cmp.holds(v, threshold)),
                }
            })
            .collect();
        SloRecord {
            name: name.into(),
            metric,
            objective: objective.into(),
            comparison: cmp,
            threshold,
            passed: per_phase.iter().all(|r| r.passed),
            per_phase,
        }
    };
    let slos = vec![
        slo(
            "checkout-p99",
            SloMetric::LatencyP99Ms,
            "< 250 ms",
            Comparison::Lt,
            250.0,
        ),
        slo(
            "checkout-errors",
            SloMetric::ErrorRatePct,
            "< 1%",
            Comparison::Lt,
            1.0,
        ),
        slo(
            "availability",
            SloMetric::AvailabilityPct,
            ">= 99%",
            Comparison::Ge,
            99.0,
        ),
    ];
    let at = |t: f64| started + Duration::seconds_f64(t);
    let fault = FaultRecord {
        name: "slow-db".into(),
        kind: "latency".into(),
        target: "local".into(),
        phase: Some("db-latency".into()),
        start_s: fault_start,
        end_s: Some(fault_end),
        targets: vec!["proxy 127.0.0.1:15432 -> 127.0.0.1:5432".into()],
        irreversible: false,
        reverted: !sim.revert_fails,
        detail: None,
        service: Some("orders-db".into()),
    };
    let mut events = Vec::new();
    for p in &phases {
        events.push(Event {
            t_s: p.start_s,
            at: at(p.start_s),
            kind: EventKind::PhaseStart,
            phase: Some(p.name.clone()),
            fault: None,
            fault_kind: None,
            targets: vec![],
            irreversible: false,
            message: format!("phase {} ({}) started", p.name, p.role),
        });
        if p.role == ROLE_CHAOS {
            events.push(Event {
                t_s: fault_start,
                at: at(fault_start),
                kind: EventKind::Inject,
                phase: Some(p.name.clone()),
                fault: Some(fault.name.clone()),
                fault_kind: Some(fault.kind.clone()),
                targets: fault.targets.clone(),
                irreversible: false,
                message: format!(
                    "+{} ms on {:.0}% of queries",
                    sim.fault_delay_ms,
                    sim.fault_share * 100.0
                ),
            });
            events.push(Event {
                t_s: fault_end,
                at: at(fault_end),
                kind: if sim.revert_fails {
                    EventKind::RevertFailed
                } else {
                    EventKind::Revert
                },
                phase: Some(p.name.clone()),
                fault: Some(fault.name.clone()),
                fault_kind: Some(fault.kind.clone()),
                targets: fault.targets.clone(),
                irreversible: false,
                message: if sim.revert_fails {
                    "proxy did not stop: connection refused on its control port".into()
                } else {
                    "proxy removed".into()
                },
            });
        }
        events.push(Event {
            t_s: p.end_s,
            at: at(p.end_s),
            kind: EventKind::PhaseEnd,
            phase: Some(p.name.clone()),
            fault: None,
            fault_kind: None,
            targets: vec![],
            irreversible: false,
            message: String::new(),
        });
    }
    let violated = slos.iter().any(|s| !s.passed);
    let outcome = if sim.revert_fails {
        Outcome::RevertIncomplete
    } else if violated {
        Outcome::Violated
    } else {
        Outcome::Held
    };
    let mut j = Journal {
        journal_version: JOURNAL_VERSION,
        run: RunInfo {
            id: sim.run_id.clone(),
            scenario_name: "checkout-db-latency".into(),
            scenario_file: Some("scenarios/checkout-db-latency.yaml".into()),
            owner: Some("team-payments".into()),
            description: Some("Slow the checkout database by 300 ms for 40% of queries".into()),
            hypothesis: Some(
                "Checkout keeps p99 under 250 ms and errors under 1% while the database is slow"
                    .into(),
            ),
            tags: vec!["monthly".into(), "checkout".into()],
            participants: vec!["alice".into(), "bob".into(), "carol".into()],
            started_at: started,
            ended_at: at(total as f64),
            gameday_version: "0.1.0".into(),
            exit_code: match outcome {
                Outcome::Held => 0,
                Outcome::Violated => 1,
                _ => 4,
            },
            outcome,
            abort_reason: None,
        },
        scenario: serde_json::json!({"name": "checkout-db-latency", "load": {"url": "http://127.0.0.1:8080/checkout", "rate": sim.rate}}),
        targets: vec![TargetRecord {
            name: "local".into(),
            kind: Some("local".into()),
            config: serde_json::json!({"processes": ["checkout-api"]}),
        }],
        events,
        phases,
        windows,
        slos,
        faults: vec![fault],
        recovery: vec![],
        action_items: vec![ActionItem {
            title: "Add a circuit breaker in front of the orders DB".into(),
            owner: Some("alice".into()),
            priority: Some("P2".into()),
            due: Some("2026-12-01".into()),
            source: ActionSource::Scenario,
            detail: None,
        }],
        playbook: None,
        impact_tolerance: sim.impact_tolerance,
        owners: sim
            .owners
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        impacts: vec![],
    };
    j.recovery = compute_recovery(&j, 3);
    j.impacts = compute_impacts(&j, 3);
    if sim.playbook {
        j.playbook = Some(Playbook {
            name: "orders-db failover".into(),
            link: Some("docs/playbooks/orders-db.md".into()),
            rto_s: Some(15.0),
            steps: vec![
                PlaybookStep {
                    step: "Page the on-call DBA".into(),
                    owner: Some("bob".into()),
                    confirmed_by: Some("bob".into()),
                    confirmed_at: Some(at(fault_start + 1.0)),
                },
                PlaybookStep {
                    step: "Promote the replica".into(),
                    owner: Some("carol".into()),
                    confirmed_by: None,
                    confirmed_at: None,
                },
            ],
            time_to_recover_s: time_to_recover(&j, 3),
        });
    }
    let derived = derive_action_items(&j);
    j.action_items.extend(derived);
    j
}
