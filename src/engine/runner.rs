//! The run: the timeline executed against the targets, with the load running throughout,
//! stop conditions watched every second, and every injected fault reverted on the way out.
//!
//! The order of a run is fixed, and every way out goes through the same tail:
//! ledger opened → targets reachable? → preflight → targets started → load started →
//! phases (faults as tasks under one cancellation tree) → **revert everything still active,
//! newest first** → load finished → targets shut down → ledger closed → hypothesis judged.
//! The timeline runs in its own task, so that a panic in it still reaches the tail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::{EventKind, EventLog, NewEvent};
use super::hypothesis::{self, RecoveryVerdict, StopWatch};
use super::plan::{Plan, PlannedFault};
use crate::engine::targets::Targets;
use crate::ledger::{self, now_rfc3339, Ledger, Record};
use crate::load::{self, LoadSummary, Window};
use crate::observe::metrics::{self, Metrics};
use crate::scenario::Loaded;
use crate::targets::{Fault, Prepared, Severity, TargetError};

/// How a run ended, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every SLO held in every phase it applies to. Exit 0.
    Held,
    /// At least one SLO was violated. Exit 1.
    Violated,
    /// A stop condition or a signal ended the run; everything was reverted. Exit 3.
    Aborted,
    /// Something could not be reverted: run `gameday recover`. Exit 4.
    RevertIncomplete,
    /// A target could not be reached before any injection. Exit 5.
    Unreachable,
}

impl Outcome {
    /// The process exit code (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Held => 0,
            Outcome::Violated => 1,
            Outcome::Aborted => 3,
            Outcome::RevertIncomplete => 4,
            Outcome::Unreachable => 5,
        }
    }
}

/// Options of `gameday run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The base directory: each run gets its own folder inside.
    pub out_dir: PathBuf,
    /// Proceed where a confirmation would otherwise be needed (an unnamed kube context).
    pub yes: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Where to serve Prometheus metrics (`None`: not at all).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `metrics_addr` is the default (8067), not an address the person asked for: when it is
    /// taken the run serves its metrics on another free loopback port and says so, instead of
    /// refusing to start (metrics are for watching a gameday, not for its safety).
    pub metrics_addr_is_default: bool,
}

/// Why the run is being cut short; the first reason wins.
#[derive(Debug, Clone, Default)]
pub struct Abort {
    token: CancellationToken,
    reason: Arc<Mutex<Option<(EventKind, String)>>>,
    /// The run's ledger, once created: a forced exit stops the fleet it names and tells the
    /// person this exact file for `recover`.
    ledger: Arc<Mutex<Option<PathBuf>>>,
}

impl Abort {
    /// A fresh abort switch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the run short (first reason wins).
    pub fn trigger(&self, kind: EventKind, reason: impl Into<String>) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some((kind, reason.into()));
        }
        self.token.cancel();
    }

    /// The reason, once triggered.
    pub fn reason(&self) -> Option<(EventKind, String)> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves when triggered.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// Whether triggered.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Records the run's ledger file (the runner, right after creating it).
    pub fn set_ledger(&self, path: PathBuf) {
        *self.ledger.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
    }

    /// The run's ledger file, once it exists.
    pub fn ledger(&self) -> Option<PathBuf> {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A fault that is injected and not yet reverted.
#[derive(Debug, Clone)]
pub struct ActiveFault {
    /// Its ledger id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its target.
    pub target: String,
    /// The ledger record.
    pub prepared: Prepared,
}

/// The faults currently injected, shared with the signal handler so that a forced exit can
/// name what it leaves behind.
pub type ActiveSet = Arc<Mutex<Vec<ActiveFault>>>;

/// One fault's life, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRun {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its target.
    pub target: String,
    /// Its phase.
    pub phase: String,
    /// First injection, seconds since start.
    pub start_s: Option<f64>,
    /// Last revert (or injection, for instant faults), seconds since start.
    pub end_s: Option<f64>,
    /// Everything it hit, over all its injections.
    pub targets: Vec<String>,
    /// It cannot be undone.
    pub irreversible: bool,
    /// Every injection was reverted (or needed none).
    pub reverted: bool,
    /// Injections made.
    pub injections: u32,
    /// Errors met.
    pub errors: Vec<String>,
    /// How it was delivered ([`Fault::detail`]).
    pub detail: Option<String>,
}

pub use super::hypothesis::{PhaseResult, PhaseVerdict, Recovery, SloVerdict};

/// Everything a run produced: the raw material of the journal.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The run id.
    pub run_id: String,
    /// The run's folder.
    pub run_dir: PathBuf,
    /// The ledger file.
    pub ledger_path: PathBuf,
    /// The outcome.
    pub outcome: Outcome,
    /// Why it was aborted, if it was.
    pub abort_reason: Option<String>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub ended_at: String,
    /// The targets' ledger configs.
    pub targets: BTreeMap<String, serde_json::Value>,
    /// The plan that ran.
    pub plan: Plan,
    /// Events in order.
    pub events: Vec<super::events::Event>,
    /// Per-second load windows.
    pub windows: Vec<Window>,
    /// The load's whole-run summary.
    pub load: Option<LoadSummary>,
    /// Phases as measured.
    pub phases: Vec<PhaseResult>,
    /// Faults as run.
    pub faults: Vec<FaultRun>,
    /// SLO verdicts.
    pub slos: Vec<SloVerdict>,
    /// Recovery per fault.
    pub recovery: Vec<Recovery>,
    /// Injections left pending (run `gameday recover`).
    pub pending: usize,
    /// The ledger could not be read back (or its end not written) at the end of the run:
    /// the run is not known to be clean, so it exits 4 with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_error: Option<String>,
    /// Every reading of the hypothesis's Kubernetes probes.
    pub probes: Vec<super::probes::ProbeSample>,
}

/// A short random run id.
fn new_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Creates the run's own folder: `<out>/<date>-<scenario>-<run id>`, never reusing one.
pub fn create_run_dir(
    out: &std::path::Path,
    scenario: &str,
    run_id: &str,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| "run".into());
    let dir = out.join(format!("{date}-{scenario}-{run_id}"));
    // Owner and group only, whatever the umask: the ledger and journal name hosts, pids and
    // undo data, and nobody else may plant or change files a later `recover` would trust.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o750).create(&dir)?;
    Ok(dir)
}

struct Ctx {
    metrics: Metrics,
    status: crate::observe::progress::SharedStatus,
    t0: Instant,
    ledger: Arc<Ledger>,
    targets: Targets,
    events: EventLog,
    active: ActiveSet,
    faults: Arc<Mutex<BTreeMap<String, FaultRun>>>,
    /// Cuts the run short when the ledger cannot be written: nothing more may be injected.
    abort: Abort,
}

/// Runs a scenario. Returns the result in every case where the run could start; an `Err` only
/// when not even the run folder or the ledger could be made.
pub async fn run(
    loaded: &Loaded,
    opts: &RunOptions,
    abort: Abort,
    active: ActiveSet,
) -> anyhow::Result<RunResult> {
    let s = &loaded.scenario;
    let plan = Plan::new(s);
    super::disk::check_free_space(&opts.out_dir, plan.total).map_err(anyhow::Error::msg)?;
    let run_id = new_run_id();
    let run_dir = create_run_dir(&opts.out_dir, &s.metadata.name, &run_id).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the run folder under {}: {e}",
            opts.out_dir.display()
        )
    })?;
    let ledger_path = run_dir.join("ledger.jsonl");
    let ledger = Arc::new(Ledger::create(&ledger_path)?);
    abort.set_ledger(ledger_path.clone());
    // So that `gameday playbook confirm` can check a step against the run's own playbook.
    if let Some(pb) = &s.playbook {
        if let Err(e) = super::playbook::write_steps(&run_dir, pb) {
            tracing::warn!("cannot write the playbook's steps into the run folder ({e}); `gameday playbook confirm` will refuse this run");
        } else {
            eprintln!(
                "gameday: playbook `{}`: confirm each step as it is done with `gameday playbook confirm {run_id} STEP` (a number or part of its text)",
                pb.name
            );
        }
    }
    // So that `recover` finds this run from any directory. Not fatal: the ledger under
    // `--out` is the safety net; the index only saves a person from having to know where.
    if let Err(e) = super::run_index::register(&run_id, &run_dir) {
        tracing::warn!(
            "cannot register the run in the state directory ({e}); if this run is killed, `gameday recover` finds it only under {} (set XDG_STATE_HOME or HOME to fix)",
            opts.out_dir.display()
        );
    }
    let root = CancellationToken::new();
    let targets = Targets::from_scenario(s, &run_dir, Some(ledger.clone()), &root, opts.yes).await;
    let target_configs: BTreeMap<String, serde_json::Value> = targets
        .all()
        .iter()
        .map(|t| (t.name().to_string(), t.ledger_config()))
        .collect();
    ledger.append(&Record::RunStart {
        run_id: run_id.clone(),
        scenario: s.metadata.name.clone(),
        pid: std::process::id(),
        targets: target_configs.clone(),
        at: now_rfc3339(),
    })?;
    let started_at = now_rfc3339();
    let t0 = Instant::now();
    let events = EventLog::new(t0);
    let span = tracing::info_span!("run", run_id = %run_id, scenario = %s.metadata.name);
    let _enter = span.enter();
    tracing::info!(dir = %run_dir.display(), "gameday starting");

    let mut result = RunResult {
        run_id,
        run_dir: run_dir.clone(),
        ledger_path: ledger_path.clone(),
        outcome: Outcome::Held,
        abort_reason: None,
        started_at,
        ended_at: String::new(),
        targets: target_configs,
        plan: plan.clone(),
        events: vec![],
        windows: vec![],
        load: None,
        phases: vec![],
        faults: vec![],
        slos: vec![],
        recovery: vec![],
        pending: 0,
        ledger_error: None,
        probes: vec![],
    };

    // Metrics first: a taken port is an error before anything is touched.
    let metrics = Metrics::new();
    if let Some(addr) = opts.metrics_addr {
        let mut served = metrics::serve(addr, metrics.clone(), root.child_token()).await;
        if let Err(metrics::MetricsError::Bind { source, .. }) = &served {
            if opts.metrics_addr_is_default && source.kind() == std::io::ErrorKind::AddrInUse {
                let elsewhere = std::net::SocketAddr::new(addr.ip(), 0);
                served = metrics::serve(elsewhere, metrics.clone(), root.child_token()).await;
                if let Ok(bound) = &served {
                    tracing::warn!(
                        %bound,
                        "metrics: the default address {addr} is taken by another program; serving on http://{bound}/metrics instead (a Prometheus scraping {addr} will not see this run: free the port or pass --metrics-addr)"
                    );
                }
            }
        }
        match served {
            Ok(bound) => tracing::info!(%bound, "metrics on http://{bound}/metrics"),
            Err(e) => {
                return finish_early(
                    result,
                    &ledger,
                    &events,
                    Outcome::Unreachable,
                    e.to_string(),
                )
            }
        }
    }

    // Before anything is injected: reachability, preflight, start.
    let mut fault_objs: Vec<(PlannedFault, Arc<dyn Fault>)> = Vec::new();
    for pf in plan.faults() {
        match targets.fault(&pf.name, &pf.entry) {
            Ok(f) => fault_objs.push((pf.clone(), f)),
            Err(e) => {
                return finish_early(
                    result,
                    &ledger,
                    &events,
                    Outcome::Unreachable,
                    e.to_string(),
                )
            }
        }
    }
    for t in targets.all() {
        if let Err(e) = t.check_reachable().await {
            return finish_early(
                result,
                &ledger,
                &events,
                Outcome::Unreachable,
                e.to_string(),
            );
        }
        let fs: Vec<&dyn Fault> = fault_objs
            .iter()
            .filter(|(p, _)| p.target == t.name())
            .map(|(_, f)| f.as_ref())
            .collect();
        match t.preflight(&fs).await {
            Ok(findings) => {
                let errors: Vec<String> = findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(|f| f.message.clone())
                    .collect();
                for f in findings.iter().filter(|f| f.severity == Severity::Warning) {
                    events.note(format!("preflight warning: {}", f.message));
                }
                if !errors.is_empty() {
                    return finish_early(
                        result,
                        &ledger,
                        &events,
                        Outcome::Unreachable,
                        format!("preflight failed: {}", errors.join("; ")),
                    );
                }
            }
            Err(e) => {
                return finish_early(
                    result,
                    &ledger,
                    &events,
                    Outcome::Unreachable,
                    e.to_string(),
                )
            }
        }
    }
    for t in targets.all() {
        if let Err(e) = t.start().await {
            return abandon_started(&targets, result, &ledger, &events, e.to_string()).await;
        }
    }

    // The timeline's zero: now that the targets are up. Phases, faults, windows and events
    // count from here; what came before (preflight, starting the targets) keeps negative
    // times, and the first phase gets its whole length under load.
    let t0 = Instant::now();
    events.rebase(t0);

    // The hypothesis's Kubernetes probes, through the whole run (baselines taken now).
    let probe_cancel = root.child_token();
    let mut probe_task = None;
    if let (true, Some(k)) = (
        super::probes::any(&s.hypothesis.slos),
        targets.kubernetes.as_ref(),
    ) {
        match super::probes::start(
            &s.hypothesis.slos,
            k.shared().clone(),
            events.clone(),
            metrics.clone(),
            probe_cancel.clone(),
        )
        .await
        {
            Ok(task) => probe_task = Some(task),
            Err(e) => {
                return abandon_started(
                    &targets,
                    result,
                    &ledger,
                    &events,
                    format!("the hypothesis's probes cannot start: {e}"),
                )
                .await;
            }
        }
    }

    // The load, through the whole run.
    let status = crate::observe::progress::SharedStatus::default();
    let progress = crate::observe::progress::spawn(
        plan.total,
        status.clone(),
        opts.progress,
        root.child_token(),
    );
    let windows: Arc<Mutex<Vec<Window>>> = Arc::default();
    let mut load_handle = None;
    let mut monitor = None;
    if let Some(spec) = &s.load {
        if let Some(note) = spec.model_note() {
            events.note(note.to_owned());
        }
        // Windows end on the run's whole seconds and at every phase start, so that each
        // window lies in one phase, whatever the phases' lengths.
        let clock = load::Clock {
            epoch: t0,
            cuts: plan.phases.iter().map(|p| p.start).collect(),
        };
        match load::start_on_clock(spec, root.child_token(), Some(clock)) {
            Ok((handle, mut rx)) => {
                // Windows count from the load's own start, which comes after the targets
                // started; phases, faults and events count from `t0`. Put the windows on the
                // run's clock, or a phase would be judged on another phase's seconds.
                let clock_offset_s = handle
                    .started_at()
                    .saturating_duration_since(t0)
                    .as_secs_f64();
                // No request is meant for after the timeline's end: the load stops there on
                // its own clock, however late the tail's `finish` runs (a sliver window past
                // the end with one request read as a spike of hundreds of requests a second).
                handle.stop_at(
                    plan.total
                        .saturating_sub(Duration::from_secs_f64(clock_offset_s)),
                );
                let mut live = handle.live();
                load_handle = Some(Arc::new(handle));
                let windows = windows.clone();
                let abort = abort.clone();
                let events = events.clone();
                let mut watch = StopWatch::new(&s.stop_conditions);
                let status = status.clone();
                let metrics = metrics.clone();
                let slo_objectives: Vec<(String, hypothesis::Objective)> = s
                    .hypothesis
                    .slos
                    .iter()
                    .filter_map(|x| {
                        hypothesis::Objective::of(&x.latency, &x.error_rate, &x.availability)
                            .map(|o| (x.name.clone(), o))
                    })
                    .collect();
                monitor = Some(tokio::spawn(async move {
                    // Final windows (every outcome known, the load's timeout after their end)
                    // go to the journal and the counters; the live view of the windows not
                    // final yet drives the stop conditions, the progress line and the SLO
                    // gauges, so a hang acts while it lasts instead of a timeout later.
                    let mut live_open = true;
                    loop {
                        tokio::select! {
                            biased;
                            w = rx.recv() => {
                                let Some(mut w) = w else { break };
                                w.start_s += clock_offset_s;
                                metrics.window(&w);
                                if let Some(reason) = watch.feed(&w) {
                                    stop(&abort, &events, &metrics, reason);
                                }
                                windows.lock().unwrap_or_else(|p| p.into_inner()).push(w);
                            }
                            changed = live.changed(), if live_open => {
                                if changed.is_err() {
                                    live_open = false;
                                    continue;
                                }
                                let view = live.borrow_and_update().clone();
                                if let Some(w) = view.windows.last() {
                                    for (n, o) in &slo_objectives {
                                        match o.live_state(w) {
                                            hypothesis::WindowState::Good => metrics.slo_status(n, true),
                                            hypothesis::WindowState::Bad => metrics.slo_status(n, false),
                                            hypothesis::WindowState::Unknown => {}
                                        }
                                    }
                                    let known = w.ok + w.failed();
                                    status.lock().unwrap_or_else(|p| p.into_inner()).last_window =
                                        Some((known as f64 / w.duration_s.max(1e-3), w.latency_bounds(99.0).0, w.failed(), w.pending));
                                }
                                if let Some(reason) = watch.check_live(&view) {
                                    stop(&abort, &events, &metrics, reason);
                                }
                            }
                        }
                    }
                }));
            }
            Err(e) => {
                return abandon_started(
                    &targets,
                    result,
                    &ledger,
                    &events,
                    format!("load cannot start: {e}"),
                )
                .await;
            }
        }
    }

    let ctx = Arc::new(Ctx {
        metrics: metrics.clone(),
        status: status.clone(),
        t0,
        ledger: ledger.clone(),
        targets: targets.clone(),
        events: events.clone(),
        active: active.clone(),
        faults: Arc::default(),
        abort: abort.clone(),
    });
    for (pf, f) in &fault_objs {
        ctx.faults.lock().unwrap_or_else(|p| p.into_inner()).insert(
            pf.name.clone(),
            FaultRun {
                name: pf.name.clone(),
                kind: f.kind().into(),
                target: pf.target.clone(),
                phase: pf.phase.clone(),
                start_s: None,
                end_s: None,
                targets: vec![],
                irreversible: false,
                reverted: true,
                injections: 0,
                errors: vec![],
                detail: f.detail(),
            },
        );
    }

    // The timeline, in its own task: a panic there still reaches the tail below.
    let timeline_cancel = root.child_token();
    let mut timeline = tokio::spawn(timeline(
        ctx.clone(),
        plan.clone(),
        fault_objs,
        load_handle.clone(),
        timeline_cancel.clone(),
    ));
    let joined = tokio::select! {
        r = &mut timeline => r,
        _ = abort.triggered() => {
            // Every wait in the timeline selects on this token: it returns at once.
            timeline_cancel.cancel();
            timeline.await
        }
    };
    timeline_cancel.cancel();
    let phase_ends: Vec<f64> = match joined {
        Ok(ends) => ends,
        Err(e) => {
            events.push(NewEvent::new(
                EventKind::Error,
                format!("the timeline failed: {e}; reverting everything"),
            ));
            abort.trigger(EventKind::Error, format!("internal error: {e}"));
            Vec::new()
        }
    };

    // The tail: revert, stop the load, stop the targets, close the ledger.
    let aborted = abort.reason();
    if let Some((kind, reason)) = &aborted {
        if *kind == EventKind::Signal {
            events.push(NewEvent::new(EventKind::Signal, reason.clone()));
        }
        result.abort_reason = Some(reason.clone());
    }
    revert_all(&ctx).await;
    probe_cancel.cancel();
    if let Some(task) = probe_task {
        result.probes = task.await.unwrap_or_default();
    }
    let end_s = events.now_s();
    if let Some(h) = load_handle.and_then(|h| Arc::try_unwrap(h).ok()) {
        result.load = Some(h.finish().await);
    }
    if let Some(m) = monitor {
        let _ = m.await;
    }
    for t in targets.all() {
        if let Err(e) = t.shutdown().await {
            events.push(NewEvent::new(
                EventKind::Error,
                format!("target {} did not shut down cleanly: {e}", t.name()),
            ));
        }
    }
    root.cancel();
    let _ = progress.await;
    // The ledger is what `recover` will trust, so it, not the memory of this process, says
    // whether the run is clean; a ledger that cannot be read says nothing, which is never
    // "clean" (exit 4 with the reason, and `recover` reverts what its readable lines name).
    let in_memory = active.lock().unwrap_or_else(|p| p.into_inner()).len();
    let clean = match ledger::read(&ledger_path) {
        Ok(records) => {
            result.pending = ledger::pending(&records).len().max(in_memory);
            result.pending == 0
        }
        Err(e) => {
            let why = format!(
                "{e}; whether every injection was reverted cannot be checked from it: run `gameday recover --ledger {}`, which reverts what its readable lines name",
                ledger_path.display()
            );
            events.push(NewEvent::new(EventKind::Error, why.clone()));
            result.pending = in_memory;
            result.ledger_error = Some(why);
            false
        }
    };
    match ledger.append(&Record::RunEnd {
        clean,
        at: now_rfc3339(),
    }) {
        Ok(()) if clean => super::run_index::forget(&result.run_id),
        Ok(()) => {}
        Err(e) => {
            let why = format!(
                "cannot record the run's end: {e}; once that is fixed, run `gameday recover \
                 --ledger {}` to check and close it",
                ledger_path.display()
            );
            events.push(NewEvent::new(EventKind::Error, why.clone()));
            result.ledger_error.get_or_insert(why);
        }
    }

    // Judge.
    result.windows = windows.lock().unwrap_or_else(|p| p.into_inner()).clone();
    result.faults = ctx
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    result.faults.sort_by(|a, b| {
        a.start_s
            .partial_cmp(&b.start_s)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (i, ph) in plan.phases.iter().enumerate() {
        let start_s = ph.start.as_secs_f64();
        if start_s > end_s {
            break;
        }
        let end = phase_ends
            .get(i)
            .copied()
            .unwrap_or(ph.end().as_secs_f64())
            .min(end_s);
        let ws: Vec<&Window> = hypothesis::windows_in(&result.windows, start_s, end).collect();
        let histograms = if ws.is_empty() {
            None
        } else {
            load::HistSet::merge(ws.iter().map(|w| &w.histograms)).ok()
        };
        result.phases.push(PhaseResult {
            name: ph.name.clone(),
            role: ph.role,
            start_s,
            end_s: end,
            measure: hypothesis::measure(&result.windows, start_s, end),
            histograms,
        });
    }
    judge(s, &mut result);
    result.events = events.snapshot();
    result.ended_at = now_rfc3339();
    result.outcome = if result.pending > 0 || result.ledger_error.is_some() {
        Outcome::RevertIncomplete
    } else if aborted.is_some() {
        Outcome::Aborted
    } else if result.slos.iter().all(|v| v.passed) {
        Outcome::Held
    } else {
        Outcome::Violated
    };
    Ok(result)
}

/// A stop condition fired: note it once and abort the run (the tail reverts everything).
fn stop(abort: &Abort, events: &EventLog, metrics: &Metrics, reason: String) {
    if abort.is_triggered() {
        return;
    }
    events.push(NewEvent::new(EventKind::StopCondition, reason.clone()));
    metrics.stopped();
    abort.trigger(EventKind::StopCondition, reason);
}

/// Something failed after the targets started and before any fault: stop them, then
/// [`finish_early`] (exit 5, nothing was injected).
async fn abandon_started(
    targets: &Targets,
    result: RunResult,
    ledger: &Ledger,
    events: &EventLog,
    reason: String,
) -> anyhow::Result<RunResult> {
    for t in targets.all() {
        let _ = t.shutdown().await;
    }
    finish_early(result, ledger, events, Outcome::Unreachable, reason)
}

fn finish_early(
    mut result: RunResult,
    ledger: &Ledger,
    events: &EventLog,
    outcome: Outcome,
    reason: String,
) -> anyhow::Result<RunResult> {
    events.push(NewEvent::new(
        EventKind::Error,
        format!("{reason}; nothing was injected"),
    ));
    if ledger
        .append(&Record::RunEnd {
            clean: true,
            at: now_rfc3339(),
        })
        .is_ok()
    {
        super::run_index::forget(&result.run_id);
    }
    result.outcome = outcome;
    result.abort_reason = Some(reason);
    result.events = events.snapshot();
    result.ended_at = now_rfc3339();
    Ok(result)
}

/// Runs the phases in order; returns each phase's actual end (seconds since start).
async fn timeline(
    ctx: Arc<Ctx>,
    plan: Plan,
    faults: Vec<(PlannedFault, Arc<dyn Fault>)>,
    rate: Option<Arc<load::LoadHandle>>,
    cancel: CancellationToken,
) -> Vec<f64> {
    let mut ends = Vec::new();
    for ph in &plan.phases {
        if !sleep_until(ctx.t0 + ph.start, &cancel).await {
            break;
        }
        ctx.status.lock().unwrap_or_else(|p| p.into_inner()).phase = ph.name.clone();
        ctx.metrics.set_phase(&ph.name);
        ctx.events.push(
            NewEvent::new(
                EventKind::PhaseStart,
                format!(
                    "phase `{}` ({:?}) starts, {:?}",
                    ph.name, ph.role, ph.duration
                ),
            )
            .phase(&ph.name),
        );
        if let (Some(r), Some(pl)) = (&rate, &ph.load) {
            if let Err(e) = r.apply_phase(pl) {
                ctx.events.push(
                    NewEvent::new(EventKind::Error, format!("cannot change the load: {e}"))
                        .phase(&ph.name),
                );
            }
        }
        let phase_cancel = cancel.child_token();
        let mut tasks = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for (pf, f) in faults.iter().filter(|(p, _)| p.phase == ph.name) {
            let h = tasks.spawn(fault_task(
                ctx.clone(),
                pf.clone(),
                f.clone(),
                phase_cancel.clone(),
                cancel.clone(),
            ));
            names.insert(h.id(), pf.clone());
        }
        let completed = sleep_until(ctx.t0 + ph.end(), &cancel).await;
        // Faults end with their phase at the latest; their tasks revert what they injected
        // before they return (see `fault_task`), so the next phase starts without them.
        phase_cancel.cancel();
        while let Some(joined) = tasks.join_next_with_id().await {
            if let Err(e) = joined {
                if let Some(pf) = names.get(&e.id()) {
                    fault_task_died(&ctx, pf, &e).await;
                }
            }
        }
        ends.push(ctx.events.now_s());
        ctx.events.push(
            NewEvent::new(EventKind::PhaseEnd, format!("phase `{}` ends", ph.name)).phase(&ph.name),
        );
        if !completed {
            break;
        }
    }
    ends
}

/// Sleeps until `deadline`; false if cancelled first.
async fn sleep_until(deadline: Instant, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(deadline.into()) => true,
        _ = cancel.cancelled() => false,
    }
}

/// Mirrors the number of active faults into the progress line.
fn sync_status(ctx: &Ctx) {
    let n = ctx.active.lock().unwrap_or_else(|p| p.into_inner()).len();
    ctx.status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .active_faults = n;
}

fn note_fault(ctx: &Ctx, name: &str, f: impl FnOnce(&mut FaultRun)) {
    if let Some(r) = ctx
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(name)
    {
        f(r);
    }
}

/// One fault's life: wait for its start, inject (again every interval), revert at its end.
///
/// A durable fault is reverted here, by its own task, when its hold ends: at its `duration`,
/// at its next `every`, or when its phase ends (`phase` cancelled). The phase's end and the
/// hold's deadline are usually the same instant, so the task must not care which of the two
/// it sees first: both lead to the revert. Only an abort of the whole run (`run` cancelled,
/// which cancels `phase` with it) leaves the injection to the run's tail, which reverts every
/// active fault newest first across all targets.
async fn fault_task(
    ctx: Arc<Ctx>,
    pf: PlannedFault,
    fault: Arc<dyn Fault>,
    phase: CancellationToken,
    run: CancellationToken,
) {
    if !sleep_until(ctx.t0 + pf.start, &phase).await {
        return;
    }
    let end = ctx.t0 + pf.end;
    loop {
        let id = inject_once(&ctx, &pf, fault.as_ref(), end).await;
        let next = pf.every.map(|e| Instant::now() + e);
        if let (Some(id), true) = (id, pf.durable) {
            let hold_until = next.map_or(end, |n| n.min(end));
            let held = sleep_until(hold_until, &phase).await;
            if !held && run.is_cancelled() {
                return; // the tail reverts it, in order with everything else
            }
            revert_one(&ctx, id).await;
            if !held {
                return; // the phase is over
            }
        }
        match next {
            Some(n) if n < end => {
                if !sleep_until(n, &phase).await {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// A fault task that panicked (or was cancelled from outside) may have left its injection
/// active: say so in the event log, then revert every injection of that fault now rather
/// than leave it on until the run's tail.
async fn fault_task_died(ctx: &Ctx, pf: &PlannedFault, e: &tokio::task::JoinError) {
    let why = if e.is_panic() {
        let p = e.to_string();
        format!("the task of fault `{}` panicked ({p})", pf.name)
    } else {
        format!("the task of fault `{}` was cancelled", pf.name)
    };
    ctx.events.push(
        NewEvent::new(
            EventKind::Error,
            format!("{why}; reverting what it injected"),
        )
        .phase(&pf.phase)
        .fault((pf.name.as_str(), pf.kind.as_str())),
    );
    note_fault(ctx, &pf.name, |r| r.errors.push(why.clone()));
    let ids: Vec<u64> = ctx
        .active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .filter(|a| a.name == pf.name)
        .map(|a| a.id)
        .collect();
    for id in ids {
        revert_one(ctx, id).await;
    }
}

/// prepare → ledger (fsync) → inject. Returns the ledger id of an injection that now needs a
/// revert.
async fn inject_once(ctx: &Ctx, pf: &PlannedFault, fault: &dyn Fault, end: Instant) -> Option<u64> {
    let label = (pf.name.as_str(), pf.kind.as_str());
    let prepared = match fault.prepare().await {
        Ok(p) => p,
        Err(e) => {
            ctx.events.push(
                NewEvent::new(
                    EventKind::Error,
                    format!("cannot prepare fault `{}`: {e}; not injected", pf.name),
                )
                .phase(&pf.phase)
                .fault(label),
            );
            note_fault(ctx, &pf.name, |r| r.errors.push(e.to_string()));
            return None;
        }
    };
    let deadline =
        SystemTime::now() + end.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
    let id = match ctx
        .ledger
        .record_inject(&pf.name, &pf.kind, &pf.target, &prepared, deadline)
    {
        Ok(id) => id,
        Err(e) => {
            ctx.events.push(
                NewEvent::new(
                    EventKind::Error,
                    format!(
                        "cannot write the ledger ({e}); fault `{}` not injected",
                        pf.name
                    ),
                )
                .phase(&pf.phase)
                .fault(label),
            );
            note_fault(ctx, &pf.name, |r| r.errors.push(e.to_string()));
            // Without a ledger nothing can be injected safely: end the run (reverting what
            // is active) rather than let the next faults fail one by one.
            ctx.abort.trigger(
                EventKind::Error,
                format!("the ledger cannot be written ({e}); free space under its folder"),
            );
            return None;
        }
    };
    let active = ActiveFault {
        id,
        name: pf.name.clone(),
        kind: pf.kind.clone(),
        target: pf.target.clone(),
        prepared: prepared.clone(),
    };
    ctx.active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(active);
    sync_status(ctx);
    let now_s = ctx.events.now_s();
    note_fault(ctx, &pf.name, |r| {
        r.start_s.get_or_insert(now_s);
        r.end_s = Some(now_s);
        r.injections += 1;
        r.irreversible |= prepared.irreversible;
        r.targets.extend(prepared.targets.iter().cloned());
        r.reverted = false;
    });
    // An inject may take long (a spot notice lasts minutes). An abort must not wait for it:
    // the inject is dropped at its next await, and its ledger record is reverted like any
    // other (a notice given is undone, an interruption not yet made never happens).
    let injected = tokio::select! {
        r = fault.inject(&prepared, deadline) => r,
        _ = ctx.abort.triggered() => Err(TargetError::Invalid(
            "the run was aborted while the fault was being injected".into(),
        )),
    };
    match injected {
        Ok(()) => {
            // An instant fault ends when its action completes, which for a spot interruption
            // is minutes after it began (the notice): recovery is measured from here.
            let done_s = ctx.events.now_s();
            note_fault(ctx, &pf.name, |r| r.end_s = Some(done_s));
            ctx.metrics
                .injected(&pf.kind, &pf.target, !prepared.irreversible);
            ctx.events.push(
                NewEvent::new(
                    EventKind::Inject,
                    format!("injected `{}` ({})", pf.name, pf.kind),
                )
                .phase(&pf.phase)
                .fault(label)
                .targets(prepared.targets.clone())
                .irreversible(prepared.irreversible),
            );
            if prepared.irreversible {
                // Nothing to undo: close the ledger entry now so `recover` skips it.
                let _ = ctx.ledger.record_revert(id, Ok(()));
                ctx.active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|a| a.id != id);
                sync_status(ctx);
                note_fault(ctx, &pf.name, |r| r.reverted = true);
                return None;
            }
            Some(id)
        }
        Err(e) => {
            let _ = ctx.ledger.append(&Record::InjectFailed {
                id,
                error: e.to_string(),
                at: now_rfc3339(),
            });
            ctx.events.push(
                NewEvent::new(
                    EventKind::Error,
                    format!(
                        "injecting `{}` failed: {e}; reverting what may have been applied",
                        pf.name
                    ),
                )
                .phase(&pf.phase)
                .fault(label)
                .targets(prepared.targets.clone()),
            );
            note_fault(ctx, &pf.name, |r| r.errors.push(e.to_string()));
            revert_one(ctx, id).await;
            None
        }
    }
}

/// Reverts one active injection (retried, see [`super::revert`]) and records the outcome.
async fn revert_one(ctx: &Ctx, id: u64) {
    let Some(a) = ctx
        .active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|a| a.id == id)
        .cloned()
    else {
        return;
    };
    let label = (a.name.as_str(), a.kind.as_str());
    let (result, attempts) = match ctx.targets.get(&a.target) {
        Some(t) => {
            let o =
                super::revert::with_retries(t, &a.kind, &a.prepared.undo, super::revert::DEFAULT)
                    .await;
            (o.result, o.attempts)
        }
        None => (Err(format!("target `{}` is not configured", a.target)), 1),
    };
    let _ = ctx.ledger.record_revert(id, result.clone());
    ctx.metrics.reverted(&a.kind, &a.target, result.is_ok());
    let now_s = ctx.events.now_s();
    match result {
        Ok(()) => {
            ctx.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|x| x.id != id);
            sync_status(ctx);
            ctx.events.push(
                NewEvent::new(
                    EventKind::Revert,
                    match attempts {
                        1 => format!("reverted `{}`", a.name),
                        n => format!("reverted `{}` at attempt {n}", a.name),
                    },
                )
                .fault(label)
                .targets(a.prepared.targets.clone()),
            );
            let still = ctx
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|x| x.name == a.name);
            note_fault(ctx, &a.name, |r| {
                r.end_s = Some(now_s);
                r.reverted = !still;
            });
        }
        Err(e) => {
            ctx.events.push(
                NewEvent::new(
                    EventKind::RevertFailed,
                    format!(
                        "could not revert `{}`: {e}; run `gameday recover --ledger {}`",
                        a.name,
                        ctx.ledger.path().display()
                    ),
                )
                .fault(label)
                .targets(a.prepared.targets.clone()),
            );
            note_fault(ctx, &a.name, |r| r.errors.push(e));
        }
    }
}

/// Reverts every active fault: newest first on each target, since later faults may build
/// on earlier ones (a latency on a link that a drain then moved); different targets at the
/// same time, since nothing on one target builds on another's, and a slow API (retrying
/// under its budget) must not keep the sandbox's faults on.
async fn revert_all(ctx: &Arc<Ctx>) {
    let mut by_target: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for a in ctx
        .active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
    {
        by_target.entry(a.target.clone()).or_default().push(a.id);
    }
    let mut tasks = JoinSet::new();
    for ids in by_target.into_values() {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            for id in ids {
                revert_one(&ctx, id).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn judge(s: &crate::scenario::model::Scenario, r: &mut RunResult) {
    use hypothesis::Objective;
    let fault_ends: Vec<(String, f64)> = r
        .faults
        .iter()
        .filter_map(|f| f.end_s.map(|e| (f.name.clone(), e)))
        .collect();
    let starts: Vec<f64> = r.faults.iter().filter_map(|f| f.start_s).collect();
    let steady = hypothesis::steady_objectives(&s.hypothesis.slos);
    for slo in &s.hypothesis.slos {
        if !slo.is_load_measured() {
            r.slos.push(super::probes::judge(slo, &r.probes, &r.phases));
            continue;
        }
        let applies = |phase: &str| slo.phases.is_empty() || slo.phases.iter().any(|p| p == phase);
        if let Some(o) = Objective::of(&slo.latency, &slo.error_rate, &slo.availability) {
            let per_phase: Vec<PhaseVerdict> = r
                .phases
                .iter()
                .filter(|p| applies(&p.name))
                .map(|p| {
                    let measured = p.measure.requests + p.measure.dropped > 0;
                    let observed = measured
                        .then(|| o.observe(&p.measure, p.histograms.as_ref().map(|h| &h.latency)));
                    PhaseVerdict {
                        phase: p.name.clone(),
                        observed,
                        passed: observed.is_some_and(|v| o.met(v)),
                    }
                })
                .collect();
            r.slos.push(SloVerdict {
                name: slo.name.clone(),
                metric: o.metric(),
                objective: o.describe(),
                threshold: o.threshold(),
                passed: per_phase.iter().all(|p| p.passed),
                per_phase,
            });
        }
        if let Some(rt) = &slo.recovery_time {
            let max = rt.max.secs_f64();
            // The slowest recovery measured; `None` once one fault never recovered. With no
            // fault whose recovery could be measured there is nothing to judge: "not
            // measured", never a pass at 0 s.
            let mut worst: Option<f64> = Some(0.0);
            let mut measured = 0usize;
            for (name, end) in &fault_ends {
                let (after, verdict) = hypothesis::judge_recovery(
                    &r.windows,
                    *end,
                    &starts,
                    &steady,
                    rt.consecutive,
                    max,
                );
                if !r.recovery.iter().any(|x| &x.fault == name) {
                    r.recovery.push(Recovery {
                        fault: name.clone(),
                        fault_end_s: *end,
                        recovered_after_s: after,
                    });
                }
                if verdict != RecoveryVerdict::Unmeasured {
                    measured += 1;
                }
                worst = match (worst, verdict) {
                    (Some(w), RecoveryVerdict::Within(a)) => Some(w.max(a)),
                    (w, RecoveryVerdict::Unmeasured) => w,
                    _ => None,
                };
            }
            if measured == 0 {
                worst = None;
            }
            let unmeasured = if measured > 0 {
                String::new()
            } else if fault_ends.is_empty() {
                "; not measured: no fault ended in the run".to_owned()
            } else {
                "; not measured: each fault's recovery was cut short by the next fault or the end of the run".to_owned()
            };
            r.slos.push(SloVerdict {
                name: slo.name.clone(),
                metric: "recovery_time_s".into(),
                objective: format!(
                    "recovery <= {max} s ({} good seconds in a row){unmeasured}",
                    rt.consecutive
                ),
                threshold: max,
                per_phase: vec![PhaseVerdict {
                    phase: "all".into(),
                    observed: worst,
                    passed: worst.is_some_and(|w| w <= max),
                }],
                passed: worst.is_some_and(|w| w <= max),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::local::LocalSandbox;
    use crate::targets::Resolution;

    /// A fault whose injection panics after the engine has recorded and activated it: the
    /// shape of a bug in a fault kind, which must not leave its injection behind.
    struct PanickingFault;

    #[async_trait::async_trait]
    impl Fault for PanickingFault {
        fn kind(&self) -> &'static str {
            "process_kill"
        }
        async fn resolve(&self) -> Result<Resolution, TargetError> {
            Ok(Resolution::default())
        }
        async fn prepare(&self) -> Result<Prepared, TargetError> {
            Ok(Prepared {
                targets: vec!["pid 0".into()],
                undo: serde_json::json!({}),
                irreversible: false,
            })
        }
        async fn inject(&self, _: &Prepared, _: SystemTime) -> Result<(), TargetError> {
            panic!("a bug in a fault kind");
        }
    }

    /// Regression (issue #13): a panic in a fault task vanished without an event, and its
    /// injection stayed active until the run's tail. Now it is an event and a revert.
    #[tokio::test]
    async fn a_panic_in_a_fault_task_is_an_event_and_a_revert() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::create(&dir.path().join("ledger.jsonl")).unwrap());
        let t0 = Instant::now();
        let ctx = Arc::new(Ctx {
            metrics: Metrics::new(),
            status: Default::default(),
            t0,
            ledger: ledger.clone(),
            targets: Targets {
                local: Some(LocalSandbox::for_recovery()),
                ..Targets::default()
            },
            events: EventLog::new(t0),
            active: Arc::default(),
            faults: Arc::default(),
            abort: Abort::new(),
        });
        let entry: crate::scenario::model::FaultEntry = serde_json::from_value(
            serde_json::json!({"name": "boom", "process_kill": {"service": "web"}}),
        )
        .unwrap();
        let pf = PlannedFault {
            name: "boom".into(),
            kind: "process_kill".into(),
            target: "local".into(),
            phase: "chaos".into(),
            start: Duration::ZERO,
            end: Duration::from_millis(200),
            every: None,
            durable: true,
            entry,
        };
        let s: crate::scenario::model::Scenario = crate::scenario::load_str(
            "t.yaml",
            "apiVersion: gameday/v1\nkind: Gameday\nmetadata: { name: t }\ntarget:\n  local:\n    services:\n      - { name: web, command: [true] }\nphases:\n  - name: chaos\n    duration: 200ms\n",
        )
        .unwrap()
        .scenario;
        let plan = Plan::new(&s);
        let fault: Arc<dyn Fault> = Arc::new(PanickingFault);
        timeline(
            ctx.clone(),
            plan,
            vec![(pf, fault)],
            None,
            CancellationToken::new(),
        )
        .await;
        let events = ctx.events.snapshot();
        assert!(
            events.iter().any(|e| e.kind == EventKind::Error
                && e.message.contains("the task of fault `boom` panicked")),
            "{events:#?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::Revert && e.fault.as_deref() == Some("boom")),
            "{events:#?}"
        );
        assert!(ctx.active.lock().unwrap().is_empty());
        assert!(ledger::pending(&ledger::read(ledger.path()).unwrap()).is_empty());
    }
}
