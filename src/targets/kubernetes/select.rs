//! Target selection without IO: turn a [`PodSelector`] / [`NodeSelector`] into the API
//! server's label and field selectors, filter what the API server cannot (annotations,
//! names, protected namespaces, pods already terminating), then let the [`Mode`] pick and
//! the blast-radius cap check. Pure functions, so every mode is tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rand::seq::SliceRandom;
use rand::Rng;

use super::spec::{Mode, NodeSelector, PodSelector};

/// Join an exact-match map and an optional expression into one Kubernetes label selector.
pub fn label_selector(exact: &BTreeMap<String, String>, expr: Option<&str>) -> Option<String> {
    let mut parts: Vec<String> = exact.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(e) = expr.map(str::trim).filter(|e| !e.is_empty()) {
        parts.push(e.to_string());
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Join a field-selector map into the API server's syntax.
pub fn field_selector(fields: &BTreeMap<String, String>) -> Option<String> {
    (!fields.is_empty()).then(|| {
        fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Whether an object carries every wanted annotation with the wanted value.
pub fn has_annotations(meta: &ObjectMeta, wanted: &BTreeMap<String, String>) -> bool {
    let have = meta.annotations.as_ref();
    wanted
        .iter()
        .all(|(k, v)| have.and_then(|a| a.get(k)) == Some(v))
}

/// The namespaces a run must not touch: the built-in list plus the scenario's extras.
pub fn protected_set(extra: &[String]) -> BTreeSet<String> {
    super::spec::DEFAULT_PROTECTED_NAMESPACES
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

/// `namespace/name` of a namespaced object, as used in ledger targets and messages.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The outcome of filtering: the eligible objects and what was left out, for `plan`.
#[derive(Debug, Clone)]
pub struct Filtered<T> {
    /// Objects that may be hit.
    pub eligible: Vec<T>,
    /// Matching objects already out of service (terminating, not ready): not eligible, but
    /// they count against `max_targets`, which bounds how many are out at once.
    pub down: usize,
    /// Why some matching objects were left out (protected namespace, terminating).
    pub notes: Vec<String>,
}

/// Filter the pods the API server returned for `sel` down to the eligible ones.
///
/// The API server already applied labels and fields; here we apply what it cannot:
/// annotations, names, protected namespaces (unless `allow_protected`), and pods that are
/// already out of service: terminating, or not Ready (pending, failing their readiness
/// probe). Hitting those proves nothing and skews the count; they are counted in
/// [`Filtered::down`] so that the cap sees them.
pub fn filter_pods(
    pods: Vec<Pod>,
    sel: &PodSelector,
    protected: &BTreeSet<String>,
    allow_protected: bool,
) -> Filtered<Pod> {
    let mut notes = Vec::new();
    let mut skipped_protected = BTreeMap::<String, usize>::new();
    let mut terminating = 0usize;
    let mut unready = 0usize;
    let mut eligible = Vec::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !sel.namespaces.is_empty() && !sel.namespaces.contains(&ns) {
            continue;
        }
        if !sel.names.is_empty() && !sel.names.contains(&name) {
            continue;
        }
        if !has_annotations(&pod.metadata, &sel.annotation_selectors) {
            continue;
        }
        if protected.contains(&ns) && !allow_protected {
            *skipped_protected.entry(ns).or_default() += 1;
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            terminating += 1;
            continue;
        }
        if matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        if !pod_ready(&pod) {
            unready += 1;
            continue;
        }
        eligible.push(pod);
    }
    for (ns, n) in skipped_protected {
        notes.push(format!(
            "{n} matching pod(s) in protected namespace {ns} left out (set allow_protected_namespaces to include them)"
        ));
    }
    if terminating > 0 {
        notes.push(format!(
            "{terminating} matching pod(s) already terminating left out; they count against max_targets"
        ));
    }
    if unready > 0 {
        notes.push(format!(
            "{unready} matching pod(s) not ready left out; they count against max_targets"
        ));
    }
    eligible.sort_by_key(pod_key);
    Filtered {
        eligible,
        down: terminating + unready,
        notes,
    }
}

/// Whether a pod's `Ready` condition is true: it serves traffic now.
pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a node's `Ready` condition is true.
pub fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Filter nodes on what the API server cannot select: names and annotations.
pub fn filter_nodes(nodes: Vec<Node>, sel: &NodeSelector) -> Vec<Node> {
    let mut out: Vec<Node> = nodes
        .into_iter()
        .filter(|n| {
            let name = n.metadata.name.as_deref().unwrap_or_default();
            (sel.names.is_empty() || sel.names.iter().any(|w| w == name))
                && has_annotations(&n.metadata, &sel.annotation_selectors)
        })
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// How many of `n` eligible objects the mode hits (before the cap). `value` has been
/// checked by [`Mode::check_value`]. Percent modes hit at least one object when any is
/// eligible: a fault that silently hits nothing would make the gameday prove nothing.
pub fn count_for_mode(mode: Mode, value: Option<u32>, n: usize, rng: &mut impl Rng) -> usize {
    if n == 0 {
        return 0;
    }
    let v = value.unwrap_or(0) as usize;
    match mode {
        Mode::One => 1,
        Mode::All => n,
        Mode::Fixed => v.min(n),
        Mode::FixedPercent => (n * v / 100).clamp(1, n),
        Mode::RandomMaxPercent => {
            let max = (n * v / 100).clamp(1, n);
            rng.gen_range(1..=max)
        }
    }
}

/// Pick the objects the mode hits, at random, and enforce the blast-radius cap.
///
/// The cap bounds how many matching objects are out of service at once: the `down` ones
/// (terminating, not ready: a previous round of `every:`, a concurrent fault, a crash loop)
/// plus the ones about to be hit. Counting only the new hits let repeated rounds take
/// everything down "within cap". The cap refuses rather than truncates: a scenario whose
/// mode would hit more than its author allowed is wrong, and trimming it quietly would
/// hide that.
pub fn pick<T>(
    mut eligible: Vec<T>,
    mode: Mode,
    value: Option<u32>,
    cap: Option<usize>,
    down: usize,
    rng: &mut impl Rng,
) -> Result<Vec<T>, CapExceeded> {
    let count = count_for_mode(mode, value, eligible.len(), rng);
    if let Some(cap) = cap {
        if crate::targets::within_cap(down, count, cap).is_err() {
            return Err(CapExceeded {
                would_hit: count,
                down,
                cap,
            });
        }
    }
    eligible.shuffle(rng);
    eligible.truncate(count);
    Ok(eligible)
}

fn already_down(down: usize, hit: usize) -> String {
    if down == 0 {
        String::new()
    } else {
        format!(
            " while {down} already are down or not ready ({} out at once)",
            down + hit
        )
    }
}

/// The mode would hit more objects than `max_targets` allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode would hit {would_hit} objects{}, more than max_targets {cap}; lower the mode's value, space the faults out or raise max_targets", already_down(*down, *would_hit))]
pub struct CapExceeded {
    /// How many the mode picked.
    pub would_hit: usize,
    /// How many matching objects were already out of service.
    pub down: usize,
    /// The scenario's cap.
    pub cap: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn pod(ns: &str, name: &str) -> Pod {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p
    }

    fn pods(n: usize) -> Vec<Pod> {
        (0..n).map(|i| pod("shop", &format!("web-{i}"))).collect()
    }

    #[test]
    fn label_and_field_selectors_join_in_kubernetes_syntax() {
        let mut m = BTreeMap::new();
        m.insert("app".to_string(), "web".to_string());
        m.insert("tier".to_string(), "front".to_string());
        assert_eq!(
            label_selector(&m, Some("env in (a,b)")).as_deref(),
            Some("app=web,tier=front,env in (a,b)")
        );
        assert_eq!(label_selector(&BTreeMap::new(), Some("  ")), None);
        assert_eq!(field_selector(&m).as_deref(), Some("app=web,tier=front"));
        assert_eq!(field_selector(&BTreeMap::new()), None);
    }

    #[test]
    fn every_mode_picks_the_documented_count() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(count_for_mode(Mode::One, None, 10, &mut rng), 1);
        assert_eq!(count_for_mode(Mode::All, None, 10, &mut rng), 10);
        assert_eq!(count_for_mode(Mode::Fixed, Some(3), 10, &mut rng), 3);
        assert_eq!(count_for_mode(Mode::Fixed, Some(30), 10, &mut rng), 10);
        assert_eq!(
            count_for_mode(Mode::FixedPercent, Some(50), 10, &mut rng),
            5
        );
        assert_eq!(count_for_mode(Mode::FixedPercent, Some(5), 10, &mut rng), 1);
        assert_eq!(
            count_for_mode(Mode::FixedPercent, Some(100), 3, &mut rng),
            3
        );
        for _ in 0..200 {
            let c = count_for_mode(Mode::RandomMaxPercent, Some(50), 10, &mut rng);
            assert!((1..=5).contains(&c), "random_max_percent picked {c}");
        }
        for m in [Mode::One, Mode::All, Mode::Fixed, Mode::FixedPercent] {
            assert_eq!(count_for_mode(m, Some(50), 0, &mut rng), 0);
        }
    }

    #[test]
    fn random_max_percent_reaches_its_maximum() {
        let mut rng = StdRng::seed_from_u64(1);
        let seen: BTreeSet<usize> = (0..500)
            .map(|_| count_for_mode(Mode::RandomMaxPercent, Some(40), 10, &mut rng))
            .collect();
        assert_eq!(seen, (1..=4).collect());
    }

    #[test]
    fn pick_returns_distinct_eligible_objects() {
        let mut rng = StdRng::seed_from_u64(3);
        let picked = pick(pods(10), Mode::Fixed, Some(4), None, 0, &mut rng).unwrap();
        let keys: BTreeSet<String> = picked.iter().map(pod_key).collect();
        assert_eq!(keys.len(), 4);
        assert!(keys.iter().all(|k| k.starts_with("shop/web-")));
    }

    #[test]
    fn cap_refuses_instead_of_trimming() {
        let mut rng = StdRng::seed_from_u64(3);
        let err = pick(pods(10), Mode::All, None, Some(3), 0, &mut rng).unwrap_err();
        assert_eq!(
            err,
            CapExceeded {
                would_hit: 10,
                down: 0,
                cap: 3
            }
        );
        assert_eq!(
            pick(pods(10), Mode::Fixed, Some(3), Some(3), 0, &mut rng)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn the_cap_counts_what_is_already_down() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut all = pods(3);
        let mut unready: Pod = pod("shop", "web-3");
        unready.status.as_mut().unwrap().conditions = None;
        all.push(unready);
        let mut gone = pod("shop", "web-4");
        gone.metadata.deletion_timestamp = Some(Time(Default::default()));
        all.push(gone);
        let f = filter_pods(all, &PodSelector::default(), &BTreeSet::new(), false);
        assert_eq!(f.eligible.len(), 3, "only ready, live pods are victims");
        assert_eq!(f.down, 2);
        assert_eq!(f.notes.len(), 2, "{:?}", f.notes);
        // Two out already: one more is within a cap of 3, two more are not.
        assert_eq!(
            pick(
                f.eligible.clone(),
                Mode::One,
                None,
                Some(3),
                f.down,
                &mut rng
            )
            .unwrap()
            .len(),
            1
        );
        let err = pick(f.eligible, Mode::Fixed, Some(2), Some(3), f.down, &mut rng).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mode would hit 2 objects while 2 already are down or not ready (4 out at once), \
             more than max_targets 3; lower the mode's value, space the faults out or raise max_targets"
        );
    }

    #[test]
    fn protected_namespaces_are_left_out_unless_allowed() {
        let protected = protected_set(&["payments".to_string()]);
        let all = vec![
            pod("kube-system", "coredns-1"),
            pod("payments", "api-1"),
            pod("shop", "web-1"),
        ];
        let f = filter_pods(all.clone(), &PodSelector::default(), &protected, false);
        assert_eq!(
            f.eligible.iter().map(pod_key).collect::<Vec<_>>(),
            ["shop/web-1"]
        );
        assert_eq!(f.notes.len(), 2, "{:?}", f.notes);
        assert!(f.notes[0].contains("kube-system"));
        let f = filter_pods(all, &PodSelector::default(), &protected, true);
        assert_eq!(f.eligible.len(), 3);
    }

    #[test]
    fn names_annotations_and_terminating_pods_filter() {
        let mut a = pod("shop", "web-1");
        a.metadata.annotations = Some([("chaos".to_string(), "yes".to_string())].into());
        let b = pod("shop", "web-2");
        let mut c = pod("shop", "web-3");
        c.metadata.annotations = a.metadata.annotations.clone();
        c.metadata.deletion_timestamp = Some(Time(Default::default()));
        let mut sel = PodSelector::default();
        sel.annotation_selectors
            .insert("chaos".into(), "yes".into());
        let f = filter_pods(vec![a.clone(), b.clone(), c], &sel, &BTreeSet::new(), false);
        assert_eq!(
            f.eligible.iter().map(pod_key).collect::<Vec<_>>(),
            ["shop/web-1"]
        );
        assert!(f.notes[0].contains("terminating"));

        let sel = PodSelector {
            names: vec!["web-2".into()],
            namespaces: vec!["shop".into()],
            ..Default::default()
        };
        let f = filter_pods(vec![a, b], &sel, &BTreeSet::new(), false);
        assert_eq!(
            f.eligible.iter().map(pod_key).collect::<Vec<_>>(),
            ["shop/web-2"]
        );
    }

    #[test]
    fn mode_values_are_checked_without_a_cluster() {
        assert!(Mode::One.check_value(None).is_ok());
        assert!(Mode::One.check_value(Some(2)).is_err());
        assert!(Mode::Fixed.check_value(None).is_err());
        assert!(Mode::Fixed.check_value(Some(0)).is_err());
        assert!(Mode::FixedPercent.check_value(Some(101)).is_err());
        assert!(Mode::RandomMaxPercent.check_value(Some(100)).is_ok());
    }
}
