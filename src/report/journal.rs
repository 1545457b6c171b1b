//! The journal: the complete, versioned, machine-readable record of one gameday run.
//!
//! Everything a report shows is rendered from a [`Journal`] and nothing else, so that
//! `gameday report journal.json` re-renders a run months later, and two runs of the same
//! scenario can be compared. The types here are pure data (serde + JSON Schema, no behaviour
//! beyond small accessors): the engine fills them, the load generator's per-second windows
//! and per-phase histograms are copied in, and the renderers only read them. They depend on
//! no other module's types on purpose, so that the journal format changes only when
//! [`JOURNAL_VERSION`] does.
//!
//! Conventions: times inside a run are offsets in seconds from `run.started_at` (`*_s`,
//! `f64`); wall-clock instants are RFC 3339 strings; latencies are milliseconds; rates are
//! requests per second; percentages are 0–100. `schemas/journal.schema.json` is generated
//! from these types by [`journal_schema`] and checked in; a test keeps it up to date.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The journal format version. Bump it on any change a reader of an older journal could
/// trip on (a renamed or removed field, a changed unit); adding an optional field is not
/// such a change.
pub const JOURNAL_VERSION: u32 = 1;

/// Conventional phase role of the steady state measured before any fault.
pub const ROLE_BASELINE: &str = "baseline";
/// Conventional phase role of the part of the run where faults are active.
pub const ROLE_CHAOS: &str = "chaos";
/// Conventional phase role of the part of the run after the faults are reverted.
pub const ROLE_RECOVERY: &str = "recovery";

/// The complete record of one gameday run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Journal {
    /// Format version of this journal ([`JOURNAL_VERSION`] when written by this build).
    pub journal_version: u32,
    /// Who ran what, when, and how it ended.
    pub run: RunInfo,
    /// The scenario exactly as it was run (after defaults and overrides), so the journal
    /// stands alone even if the scenario file changes later.
    #[serde(default)]
    pub scenario: serde_json::Value,
    /// The targets the scenario used, as resolved at run time, without secrets.
    #[serde(default)]
    pub targets: Vec<TargetRecord>,
    /// Everything that happened, in time order: phases, injections, reverts, stops, signals.
    #[serde(default)]
    pub events: Vec<Event>,
    /// The phases of the timeline with the load measured in each.
    #[serde(default)]
    pub phases: Vec<PhaseRecord>,
    /// The load measured second by second, in time order.
    #[serde(default)]
    pub windows: Vec<WindowRecord>,
    /// The hypothesis' SLOs and how each fared in each phase.
    #[serde(default)]
    pub slos: Vec<SloRecord>,
    /// The faults injected, when, into what, and whether they were reverted.
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
    /// How long each SLO took to come back after each fault ended.
    #[serde(default)]
    pub recovery: Vec<RecoveryRecord>,
    /// What to do after the gameday: the scenario's own items plus ones derived from what
    /// broke (see `report::analysis::derive_action_items`).
    #[serde(default)]
    pub action_items: Vec<ActionItem>,
    /// The disaster-recovery playbook exercised by this run, for DR drills.
    #[serde(default)]
    pub playbook: Option<Playbook>,
    /// How much a fault may hurt users before it is a finding, as resolved from the
    /// scenario's `impact_tolerance` (defaults for journals written before it existed).
    #[serde(default)]
    pub impact_tolerance: ImpactTolerance,
    /// Who owns what, from the scenario's `owners`: service, target or fault name to owner.
    /// Action items drafted from a fault's impact take their suggested owner from here.
    #[serde(default)]
    pub owners: std::collections::BTreeMap<String, String>,
    /// What users felt, per fault, against the baseline (see `report::impact`). Empty in
    /// journals written before it existed; `gameday report` works it out again for them.
    #[serde(default)]
    pub impacts: Vec<FaultImpact>,
}

/// Who ran what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RunInfo {
    /// Unique id of this run; it names the report directory and the ledger.
    pub id: String,
    /// The scenario's `name`: runs with the same name can be compared.
    pub scenario_name: String,
    /// Path of the scenario file as given on the command line.
    #[serde(default)]
    pub scenario_file: Option<String>,
    /// Team or person who owns the scenario.
    #[serde(default)]
    pub owner: Option<String>,
    /// What the scenario exercises, in a sentence.
    #[serde(default)]
    pub description: Option<String>,
    /// The hypothesis under test, in the scenario's words ("checkout stays under 250 ms p99
    /// while one replica is killed").
    #[serde(default)]
    pub hypothesis: Option<String>,
    /// Free tags from the scenario (`monthly`, `dr-drill`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// People who took part (R-3: the whole team should be involved).
    #[serde(default)]
    pub participants: Vec<String>,
    /// When the run started (RFC 3339); every `*_s` offset counts from here.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "rfc3339_schema")]
    pub started_at: OffsetDateTime,
    /// When the run ended (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "rfc3339_schema")]
    pub ended_at: OffsetDateTime,
    /// Version of gameday that ran it.
    pub gameday_version: String,
    /// Process exit code of the run (0 held, 1 violated, ...: see the README).
    pub exit_code: i32,
    /// How the run ended.
    pub outcome: Outcome,
    /// Why the run was aborted or cut short, when it was.
    #[serde(default)]
    pub abort_reason: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every SLO was met in every phase: the hypothesis held.
    Held,
    /// At least one SLO was broken: the hypothesis was refuted.
    Violated,
    /// The run stopped early (stop condition, signal, error); everything was reverted.
    Aborted,
    /// At least one fault could not be reverted: a person must act (`gameday recover`).
    RevertIncomplete,
    /// A target could not be reached, so nothing was injected.
    Unreachable,
}

impl Outcome {
    /// The word shown as the verdict.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Held => "HELD",
            Outcome::Violated => "VIOLATED",
            Outcome::Aborted => "ABORTED",
            Outcome::RevertIncomplete => "REVERT INCOMPLETE",
            Outcome::Unreachable => "UNREACHABLE",
        }
    }
}

/// One target the scenario used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TargetRecord {
    /// The target's name in the scenario.
    pub name: String,
    /// Target kind (`local`, `kubernetes`, `aws`).
    #[serde(default)]
    pub kind: Option<String>,
    /// The target's configuration as resolved, with secrets removed.
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Something that happened during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Event {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Wall-clock time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "rfc3339_schema")]
    pub at: OffsetDateTime,
    /// What kind of thing happened.
    pub kind: EventKind,
    /// The phase it happened in.
    #[serde(default)]
    pub phase: Option<String>,
    /// The fault it is about, by name.
    #[serde(default)]
    pub fault: Option<String>,
    /// The fault's kind (`process_kill`, `latency`, ...).
    #[serde(default)]
    pub fault_kind: Option<String>,
    /// The objects it touched (`pid 4242`, `pod shop/web-1`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// The fault cannot be undone; revert events for it are no-ops.
    #[serde(default)]
    pub irreversible: bool,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
}

/// Kinds of [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A phase began.
    PhaseStart,
    /// A phase ended.
    PhaseEnd,
    /// A fault was injected.
    Inject,
    /// A fault was reverted.
    Revert,
    /// A revert failed: the fault may still be active.
    RevertFailed,
    /// A stop condition fired and the run was cut short.
    StopCondition,
    /// The runner received a signal (SIGINT, SIGTERM).
    Signal,
    /// Something went wrong that the runner could carry on from.
    Error,
    /// Anything else worth a line in the timeline (a playbook step confirmed, ...).
    Note,
}

impl EventKind {
    /// Short label for timelines.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::PhaseStart => "phase start",
            EventKind::PhaseEnd => "phase end",
            EventKind::Inject => "inject",
            EventKind::Revert => "revert",
            EventKind::RevertFailed => "REVERT FAILED",
            EventKind::StopCondition => "stop condition",
            EventKind::Signal => "signal",
            EventKind::Error => "error",
            EventKind::Note => "note",
        }
    }
}

/// One phase of the timeline and the load measured in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PhaseRecord {
    /// The phase's name in the scenario.
    pub name: String,
    /// `baseline`, `chaos` or `recovery` by convention (any other text is allowed); the
    /// report computes "change from baseline" against the first `baseline` phase.
    pub role: String,
    /// Start, seconds since the run started.
    pub start_s: f64,
    /// End, seconds since the run started.
    pub end_s: f64,
    /// The load measured over the whole phase.
    pub stats: PhaseStats,
}

/// Load measured over a span of time (a phase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PhaseStats {
    /// Requests completed (successes and errors).
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests the generator should have sent but could not (it fell behind the rate).
    #[serde(default)]
    pub dropped: u64,
    /// Requests sent late because every connection was busy.
    #[serde(default)]
    pub late: u64,
    /// Completed requests per second.
    pub rate: f64,
    /// Failed requests by class.
    #[serde(default)]
    pub errors: ErrorCounts,
    /// Failed and dropped requests as a percentage of attempted ones (completed + dropped).
    pub error_pct: f64,
    /// Latency of successful requests; absent when none succeeded.
    #[serde(default)]
    pub latency_ms: Option<Latency>,
    /// The phase's latency HdrHistogram (microsecond values), V2-deflate serialized and
    /// base64-encoded, so any percentile can be recomputed later.
    #[serde(default)]
    pub histogram_b64: Option<String>,
}

/// Latency summary, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest request.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// Failed requests by class, as the load generator classifies them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ErrorCounts {
    /// The name did not resolve.
    #[serde(default)]
    pub dns: u64,
    /// The connection was refused (nothing listening).
    #[serde(default)]
    pub connect_refused: u64,
    /// The connection was not established in time.
    #[serde(default)]
    pub connect_timeout: u64,
    /// The connection was reset mid-request.
    #[serde(default)]
    pub reset: u64,
    /// No full response arrived in time.
    #[serde(default)]
    pub request_timeout: u64,
    /// The TLS handshake failed.
    #[serde(default)]
    pub tls: u64,
    /// The server answered 4xx.
    #[serde(default)]
    pub http_4xx: u64,
    /// The server answered 5xx.
    #[serde(default)]
    pub http_5xx: u64,
    /// Any other failure.
    #[serde(default)]
    pub other: u64,
}

impl ErrorCounts {
    /// All failed requests.
    pub fn total(&self) -> u64 {
        self.classes().iter().map(|(_, n)| n).sum()
    }

    /// Each class with its count, in a fixed order (for tables and tooltips).
    pub fn classes(&self) -> [(&'static str, u64); 9] {
        [
            ("dns", self.dns),
            ("connect_refused", self.connect_refused),
            ("connect_timeout", self.connect_timeout),
            ("reset", self.reset),
            ("request_timeout", self.request_timeout),
            ("tls", self.tls),
            ("http_4xx", self.http_4xx),
            ("http_5xx", self.http_5xx),
            ("other", self.other),
        ]
    }
}

/// The load measured over one second: every request *intended* in it, whenever it completed
/// (a request meant for this second that timed out ten seconds later is a failure of this
/// second). Journals keep final windows only: every outcome known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct WindowRecord {
    /// Start of the window, seconds since the run started.
    pub t_s: f64,
    /// Length of the window, seconds: one, or less for the run's first window and where a
    /// phase starts off a whole second (no window straddles two phases). Journals written
    /// before this field existed had one-second windows only.
    #[serde(default = "one_second")]
    pub duration_s: f64,
    /// Requests intended in the window that got an outcome (successes and errors).
    pub requests: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests due in this window that the generator could not send.
    #[serde(default)]
    pub dropped: u64,
    /// Requests sent late because every connection was busy (their wait is in the
    /// latency, which is measured from the intended send time).
    #[serde(default)]
    pub late: u64,
    /// Times a request was sent again after a reused keep-alive connection failed under it
    /// (idempotent methods only; each request is still counted once).
    #[serde(default)]
    pub retries: u64,
    /// Closed model: requests were outstanding for the whole window and none completed (a
    /// hang); such a second counts as unavailable.
    #[serde(default)]
    pub stalled: bool,
    /// Requests per second the schedule asked for (open model); absent for a closed model.
    #[serde(default)]
    pub rate_requested: Option<f64>,
    /// Failed requests by class.
    #[serde(default)]
    pub errors: ErrorCounts,
    /// Latency of the window's successful requests; absent when none succeeded.
    #[serde(default)]
    pub latency_ms: Option<Latency>,
    /// False when the generator itself lagged too much for the window's numbers to be
    /// believed; such windows never count as proof of recovery.
    #[serde(default = "default_true")]
    pub trusted: bool,
}

/// Schema of an RFC 3339 timestamp (`time`'s serde adapter is invisible to schemars).
fn rfc3339_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let mut schema = gen.subschema_for::<String>().into_object();
    schema.format = Some("date-time".to_owned());
    schema.into()
}

/// Schema of an optional RFC 3339 timestamp.
fn rfc3339_option_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
    let mut schema = gen.subschema_for::<Option<String>>().into_object();
    schema.format = Some("date-time".to_owned());
    schema.into()
}

fn default_true() -> bool {
    true
}

fn one_second() -> f64 {
    1.0
}

impl WindowRecord {
    /// End of the window, seconds since the run started.
    pub fn end_s(&self) -> f64 {
        self.t_s + self.duration_s
    }

    /// `count` (of this window) per second: windows are not all one second long.
    pub fn per_second(&self, count: u64) -> Option<f64> {
        (self.duration_s > 0.0).then(|| count as f64 / self.duration_s)
    }

    /// Completed requests per second over the window.
    pub fn throughput_rps(&self) -> Option<f64> {
        self.per_second(self.requests)
    }

    /// Requests users asked for in the window: completed plus dropped.
    pub fn attempted(&self) -> u64 {
        self.requests + self.dropped
    }

    /// Failed requests, dropped ones included (users did not get an answer either), as a
    /// percentage of attempted ones; `None` for a window without any, since silence is not
    /// health.
    pub fn error_pct(&self) -> Option<f64> {
        if self.stalled {
            return Some(100.0);
        }
        let attempted = self.attempted();
        (attempted > 0)
            .then(|| (attempted - self.ok.min(attempted)) as f64 * 100.0 / attempted as f64)
    }

    /// Successful requests as a percentage of attempted ones; `None` for an empty window.
    pub fn availability_pct(&self) -> Option<f64> {
        if self.stalled {
            return Some(0.0);
        }
        let attempted = self.attempted();
        (attempted > 0).then(|| self.ok as f64 * 100.0 / attempted as f64)
    }
}

/// An SLO of the hypothesis and how it fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SloRecord {
    /// The SLO's name in the scenario.
    pub name: String,
    /// What is measured.
    pub metric: SloMetric,
    /// The objective as written in the scenario (`< 250 ms`), for people.
    pub objective: String,
    /// How an observed value is compared with the threshold.
    pub comparison: Comparison,
    /// The threshold, in the metric's unit.
    pub threshold: f64,
    /// The result in each phase where the SLO was evaluated.
    #[serde(default)]
    pub per_phase: Vec<SloPhaseResult>,
    /// Whether it was met in every phase where it was evaluated.
    pub passed: bool,
}

/// The result of one SLO in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SloPhaseResult {
    /// The phase's name.
    pub phase: String,
    /// The observed value in the metric's unit; absent when there was nothing to measure
    /// (no successful request), which counts as not met.
    #[serde(default)]
    pub observed: Option<f64>,
    /// Whether the objective was met in that phase.
    pub passed: bool,
}

/// What an SLO measures. Window-level metrics can also be evaluated second by second,
/// which is what recovery time uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Median latency, ms.
    LatencyP50Ms,
    /// 90th percentile latency, ms.
    LatencyP90Ms,
    /// 99th percentile latency, ms.
    LatencyP99Ms,
    /// 99.9th percentile latency, ms.
    LatencyP999Ms,
    /// Slowest request, ms.
    LatencyMaxMs,
    /// Mean latency, ms.
    LatencyMeanMs,
    /// Failed and dropped requests, percent of attempted ones.
    ErrorRatePct,
    /// Successful requests, percent of attempted ones (completed + dropped).
    AvailabilityPct,
    /// Completed requests per second.
    ThroughputRps,
    /// Seconds from a fault's end until the other SLOs held again.
    RecoveryTimeS,
    /// Readings of a Kubernetes probe (`workload_ready`, `pod_restarts`) that passed, percent.
    ProbeOkPct,
}

impl SloMetric {
    /// The unit shown after values.
    pub fn unit(self) -> &'static str {
        match self {
            SloMetric::LatencyP50Ms
            | SloMetric::LatencyP90Ms
            | SloMetric::LatencyP99Ms
            | SloMetric::LatencyP999Ms
            | SloMetric::LatencyMaxMs
            | SloMetric::LatencyMeanMs => "ms",
            SloMetric::ErrorRatePct | SloMetric::AvailabilityPct | SloMetric::ProbeOkPct => "%",
            SloMetric::ThroughputRps => "req/s",
            SloMetric::RecoveryTimeS => "s",
        }
    }

    /// A short label for people (`p99 latency`).
    pub fn label(self) -> &'static str {
        match self {
            SloMetric::LatencyP50Ms => "p50 latency",
            SloMetric::LatencyP90Ms => "p90 latency",
            SloMetric::LatencyP99Ms => "p99 latency",
            SloMetric::LatencyP999Ms => "p99.9 latency",
            SloMetric::LatencyMaxMs => "max latency",
            SloMetric::LatencyMeanMs => "mean latency",
            SloMetric::ErrorRatePct => "error rate",
            SloMetric::AvailabilityPct => "availability",
            SloMetric::ThroughputRps => "throughput",
            SloMetric::RecoveryTimeS => "recovery time",
            SloMetric::ProbeOkPct => "probe readings passing",
        }
    }
}

/// How an observed value must compare with the threshold to meet the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// observed < threshold
    Lt,
    /// observed <= threshold
    Le,
    /// observed > threshold
    Gt,
    /// observed >= threshold
    Ge,
}

impl Comparison {
    /// Whether `observed` meets the objective.
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Comparison::Lt => observed < threshold,
            Comparison::Le => observed <= threshold,
            Comparison::Gt => observed > threshold,
            Comparison::Ge => observed >= threshold,
        }
    }

    /// True when smaller observed values are better (latency, errors); false for
    /// availability and throughput.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Comparison::Lt | Comparison::Le)
    }

    /// The operator as written in objectives.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }
}

/// One fault of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FaultRecord {
    /// The fault's name in the scenario.
    pub name: String,
    /// The fault kind (`process_kill`, `latency`, `pod_delete`, ...).
    pub kind: String,
    /// The scenario target it was injected into.
    pub target: String,
    /// The phase it was injected in.
    #[serde(default)]
    pub phase: Option<String>,
    /// When it was injected, seconds since the run started.
    pub start_s: f64,
    /// When it was reverted (or ended on its own); absent if it never ended.
    #[serde(default)]
    pub end_s: Option<f64>,
    /// The objects it hit.
    #[serde(default)]
    pub targets: Vec<String>,
    /// It could not be undone (a killed process): "reverted" then means nothing to undo.
    #[serde(default)]
    pub irreversible: bool,
    /// The revert succeeded (or was not needed for an irreversible fault).
    pub reverted: bool,
    /// How it was delivered, when the kind alone does not say (`method: fis, ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The service it was aimed at (its spec's `service:`), when it names one: the first key
    /// looked up in `owners` after the fault's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl FaultRecord {
    /// The kind, with how it was delivered where that matters.
    pub fn kind_label(&self) -> String {
        match &self.detail {
            Some(d) => format!("{} ({d})", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// How long one SLO took to hold again after one fault ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RecoveryRecord {
    /// The fault, by name.
    pub fault: String,
    /// The SLO, by name.
    pub slo: String,
    /// Seconds from the fault's end to the start of the first run of `good_seconds`
    /// consecutive seconds within the SLO; absent when it never recovered in the run.
    #[serde(default)]
    pub recovered_after_s: Option<f64>,
    /// How many consecutive good seconds counted as recovered.
    pub good_seconds: u32,
    /// The next fault started before the SLO held again, so this recovery could not be
    /// measured (its time would be the next fault's). Names that fault.
    #[serde(default)]
    pub interrupted_by: Option<String>,
}

/// Something to do after the gameday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ActionItem {
    /// What to do, in a line.
    pub title: String,
    /// Who will do it; to fill in the review when empty.
    #[serde(default)]
    pub owner: Option<String>,
    /// `P1` (do now) to `P3` (when convenient); derived items carry a suggestion.
    #[serde(default)]
    pub priority: Option<String>,
    /// When it is due (a date); to fill in the review when empty.
    #[serde(default)]
    pub due: Option<String>,
    /// Where the item comes from.
    pub source: ActionSource,
    /// The evidence: which SLO, by how much, during which fault.
    #[serde(default)]
    pub detail: Option<String>,
}

/// The owner text of an action item drafted without anyone to suggest: shown as is, and
/// never counted as an owner.
pub const UNASSIGNED: &str = "unassigned";

impl ActionItem {
    /// Whether a person or team owns the item: set, not blank and not [`UNASSIGNED`].
    pub fn has_owner(&self) -> bool {
        self.owner
            .as_deref()
            .is_some_and(|o| !o.trim().is_empty() && o.trim() != UNASSIGNED)
    }
}

/// Where an [`ActionItem`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    /// Written in the scenario before the run.
    Scenario,
    /// Derived by gameday from what broke (an SLO, a revert) or from what users felt (a
    /// fault's impact beyond `impact_tolerance`).
    Derived,
}

/// A disaster-recovery playbook exercised by a DR drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Playbook {
    /// The playbook's name.
    pub name: String,
    /// Where the playbook lives (a URL or a path), when known.
    #[serde(default)]
    pub link: Option<String>,
    /// The recovery time objective, seconds.
    #[serde(default)]
    pub rto_s: Option<f64>,
    /// The steps, in order, and who confirmed each.
    #[serde(default)]
    pub steps: Vec<PlaybookStep>,
    /// Measured time to recover, seconds from the disaster's start to service back within
    /// every SLO; absent when it did not recover in the run.
    #[serde(default)]
    pub time_to_recover_s: Option<f64>,
}

/// One step of a [`Playbook`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PlaybookStep {
    /// What the step says to do.
    pub step: String,
    /// Who is responsible for the step.
    #[serde(default)]
    pub owner: Option<String>,
    /// Who confirmed the step was done during the drill; absent if nobody did.
    #[serde(default)]
    pub confirmed_by: Option<String>,
    /// When it was confirmed (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(schema_with = "rfc3339_option_schema")]
    pub confirmed_at: Option<OffsetDateTime>,
}

/// How much worse than the baseline a fault may make things for users before it is a
/// finding (and drafts an action item), whatever the SLOs say.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ImpactTolerance {
    /// Error rate over the fault's window may exceed the baseline's by this many percentage
    /// points (default 1).
    #[serde(default = "default_error_points")]
    pub error_rate_points: f64,
    /// p99 over the fault's window may reach this multiple of the baseline's (default 2).
    #[serde(default = "default_p99_ratio")]
    pub p99_ratio: f64,
}

/// Default [`ImpactTolerance::error_rate_points`].
pub const DEFAULT_ERROR_RATE_POINTS: f64 = 1.0;
/// Default [`ImpactTolerance::p99_ratio`].
pub const DEFAULT_P99_RATIO: f64 = 2.0;

fn default_error_points() -> f64 {
    DEFAULT_ERROR_RATE_POINTS
}

fn default_p99_ratio() -> f64 {
    DEFAULT_P99_RATIO
}

impl Default for ImpactTolerance {
    fn default() -> Self {
        ImpactTolerance {
            error_rate_points: DEFAULT_ERROR_RATE_POINTS,
            p99_ratio: DEFAULT_P99_RATIO,
        }
    }
}

/// The steady state a fault's impact is measured against: the baseline phase's seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ImpactBaseline {
    /// The phase measured.
    pub phase: String,
    /// Seconds of it that counted (trusted, with requests).
    pub seconds: f64,
    /// Failed and dropped requests, percent of attempted ones, over the phase.
    pub error_pct: f64,
    /// Standard deviation of the per-second error rate, percentage points.
    pub error_pct_sd: f64,
    /// Mean of the per-second p50s, ms (weighted by successful requests).
    #[serde(default)]
    pub p50_ms: Option<f64>,
    /// Mean of the per-second p99s, ms (weighted by successful requests): compared with the
    /// same mean during the fault, so like is compared with like.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// Standard deviation of the per-second p99s, ms.
    #[serde(default)]
    pub p99_ms_sd: Option<f64>,
}

/// What users felt during and after one fault, against the baseline.
///
/// The fault's window runs from its injection to its revert or to the end of its impact,
/// whichever is later, and never past the next fault's start (those seconds are the next
/// fault's). A second is *impacted* when its error rate or p99 is beyond the baseline's own
/// spread (three standard deviations, with a floor); impact ends where, from the revert on
/// (or from the first impacted second, if later), the seconds are back within it for the
/// recovery rule's good seconds in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FaultImpact {
    /// The fault, by name.
    pub fault: String,
    /// Its kind.
    pub kind: String,
    /// Its scenario target.
    pub target: String,
    /// The service it was aimed at, when its spec names one.
    #[serde(default)]
    pub service: Option<String>,
    /// The reference; absent when the run has no fault-free phase to compare with.
    #[serde(default)]
    pub baseline: Option<ImpactBaseline>,
    /// Start of the fault's window (its injection), seconds since the run started.
    pub window_start_s: f64,
    /// End of the fault's window, seconds since the run started.
    pub window_end_s: f64,
    /// Other faults active at some point of the window: their effects are mixed in.
    #[serde(default)]
    pub concurrent_with: Vec<String>,
    /// Seconds from injection to the first impacted second; absent when none was.
    #[serde(default)]
    pub time_to_impact_s: Option<f64>,
    /// Seconds from the first impacted second to the end of the impact.
    #[serde(default)]
    pub impact_duration_s: Option<f64>,
    /// Seconds from the revert (or from the first impacted second, if later) to the start of
    /// the first stretch of good seconds; absent when the window ran out first.
    #[serde(default)]
    pub recovered_after_s: Option<f64>,
    /// The next fault started before the seconds were back within the baseline's spread.
    #[serde(default)]
    pub interrupted_by: Option<String>,
    /// Requests attempted in the window (completed and dropped).
    pub requests: u64,
    /// Of those, requests that failed or were dropped.
    pub failed: u64,
    /// Successful requests slower than the baseline's p99, estimated from each second's
    /// percentiles (in steady state about 1% are, by definition).
    pub slower_than_baseline_p99: u64,
    /// Error rate over the window, percent.
    pub error_pct: f64,
    /// The worst second's error rate, percent.
    pub peak_error_pct: f64,
    /// Mean of the window's per-second p50s, ms.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    /// The worst second's p50, ms.
    #[serde(default)]
    pub peak_p50_ms: Option<f64>,
    /// Mean of the window's per-second p99s, ms.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// The worst second's p99, ms.
    #[serde(default)]
    pub peak_p99_ms: Option<f64>,
    /// The worst second: the highest error rate, else the highest p99; its start.
    #[serde(default)]
    pub worst_second_s: Option<f64>,
    /// Failed requests in the window by class.
    #[serde(default)]
    pub errors: ErrorCounts,
    /// The impact is beyond `impact_tolerance`: a finding, with an action item.
    pub exceeds_tolerance: bool,
    /// Why it exceeds the tolerance, one sentence per measure (empty when it does not).
    #[serde(default)]
    pub reasons: Vec<String>,
}

impl FaultImpact {
    /// Error rate over the window minus the baseline's, percentage points.
    pub fn error_points_over_baseline(&self) -> Option<f64> {
        self.baseline.as_ref().map(|b| self.error_pct - b.error_pct)
    }

    /// p99 over the window as a multiple of the baseline's.
    pub fn p99_ratio(&self) -> Option<f64> {
        let b = self.baseline.as_ref()?.p99_ms?;
        (b > 0.0).then_some(self.p99_ms? / b)
    }
}

impl Journal {
    /// The impacts beyond tolerance: the run's findings.
    pub fn findings(&self) -> impl Iterator<Item = &FaultImpact> {
        self.impacts.iter().filter(|i| i.exceeds_tolerance)
    }

    /// The first phase with the `baseline` role: "change from baseline" compares with it.
    pub fn baseline(&self) -> Option<&PhaseRecord> {
        self.phases.iter().find(|p| p.role == ROLE_BASELINE)
    }

    /// A phase by name.
    pub fn phase(&self, name: &str) -> Option<&PhaseRecord> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Run length in seconds, from the timestamps.
    pub fn duration_s(&self) -> f64 {
        (self.run.ended_at - self.run.started_at).as_seconds_f64()
    }
}

/// The JSON Schema of [`Journal`], as checked in at `schemas/journal.schema.json`.
pub fn journal_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Journal)).expect("a schema always serializes")
}

/// The start of the first stretch of `good` windows that lasts `good_seconds`: the engine's
/// rule ([`crate::engine::hypothesis::first_good_stretch`]), so the report never contradicts the verdict.
pub fn first_good_stretch<'a>(
    windows: impl IntoIterator<Item = &'a WindowRecord>,
    good_seconds: u32,
    good: impl Fn(&WindowRecord) -> bool,
) -> Option<f64> {
    crate::engine::hypothesis::first_good_stretch(
        windows.into_iter().map(|w| (w.t_s, w.duration_s, good(w))),
        good_seconds,
    )
}
