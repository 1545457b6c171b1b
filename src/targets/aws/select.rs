//! Instance selection as pure functions: which instances match a selector, and how many of
//! them a mode picks. No IO here, so the rules are tested without EC2.
//!
//! DescribeInstances narrows the list server-side (tags, zone, state, ids); the spot /
//! on-demand split is made here from each result's `InstanceLifecycle` field, because moto does
//! not implement the `instance-lifecycle` filter (HTTP 500) and real EC2 returns the field too:
//! one code path for both. [`matches`] re-checks every criterion so that a server that ignores a
//! filter cannot widen the blast radius.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::Rng;

use super::spec::{InstanceSelector, Lifecycle, SelectMode};

/// What gameday needs to know of one instance, taken out of the SDK's `Instance` so that
/// selection stays pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `i-0abc...`.
    pub id: String,
    /// EC2 state name: `pending`, `running`, `stopping`, `stopped`, `shutting-down`,
    /// `terminated`.
    pub state: String,
    /// `InstanceLifecycle` is `spot`.
    pub spot: bool,
    /// The zone the instance runs in.
    pub availability_zone: Option<String>,
    /// The account that owns the instance (the reservation's `OwnerId`).
    pub owner_id: Option<String>,
    /// All tags of the instance.
    pub tags: BTreeMap<String, String>,
    /// The instance was launched with hibernation enabled.
    pub hibernation_configured: bool,
    /// The spot request that launched it, where EC2 says.
    pub spot_request_id: Option<String>,
}

/// States in which an instance no longer exists for our purposes.
pub fn is_gone(state: &str) -> bool {
    matches!(state, "shutting-down" | "terminated")
}

/// States in which an instance exists but does not serve: stopped, or on its way between
/// states (a previous round of `every:`, a concurrent stop or reboot). Such instances count
/// against `max_targets`.
pub fn is_out(state: &str) -> bool {
    matches!(state, "pending" | "stopping" | "stopped")
}

/// Whether `instance` is a candidate: running, and matching the selector. `spot_only`
/// forces the lifecycle to spot (`spot_interruption`).
pub fn matches(instance: &InstanceInfo, sel: &InstanceSelector, spot_only: bool) -> bool {
    instance.state == "running" && matches_selector(instance, sel, spot_only)
}

/// Whether `instance` matches the selector, whatever its state.
pub fn matches_selector(instance: &InstanceInfo, sel: &InstanceSelector, spot_only: bool) -> bool {
    let lifecycle = if spot_only {
        Lifecycle::Spot
    } else {
        sel.lifecycle
    };
    let lifecycle_ok = match lifecycle {
        Lifecycle::Spot => instance.spot,
        Lifecycle::OnDemand => !instance.spot,
        Lifecycle::Any => true,
    };
    let zone_ok = sel.availability_zones.is_empty()
        || instance
            .availability_zone
            .as_ref()
            .is_some_and(|z| sel.availability_zones.contains(z));
    let ids_ok = sel.instance_ids.is_empty() || sel.instance_ids.contains(&instance.id);
    let tags_ok = sel
        .tags
        .iter()
        .all(|(k, v)| instance.tags.get(k) == Some(v));
    lifecycle_ok && zone_ok && ids_ok && tags_ok
}

/// How many instances the mode asks for out of `eligible`, before the cap.
pub fn wanted(sel: &InstanceSelector, eligible: usize) -> usize {
    match sel.mode {
        SelectMode::One => 1,
        SelectMode::Count => sel.count.unwrap_or(1),
        SelectMode::Percent => {
            let percent = usize::from(sel.percent.unwrap_or(100).min(100));
            (eligible * percent).div_ceil(100)
        }
    }
}

/// Pick the instances to hit among `eligible` (already matched): the mode's number, capped by
/// what there is and by `max_targets`, at random. The cap bounds how many matching instances
/// are out at once, so the `down` ones (see [`is_out`]) use part of it: counting only the
/// new hits let `every:` stop every instance "within cap". Returned sorted, for stable
/// ledgers and reports.
pub fn pick<R: Rng + ?Sized>(
    eligible: &[InstanceInfo],
    sel: &InstanceSelector,
    down: usize,
    rng: &mut R,
) -> Vec<String> {
    let mut n = wanted(sel, eligible.len()).min(eligible.len());
    if let Some(cap) = sel.max_targets {
        n = n.min(cap.saturating_sub(down));
    }
    let mut ids: Vec<String> = eligible
        .choose_multiple(rng, n)
        .map(|i| i.id.clone())
        .collect();
    ids.sort();
    ids
}

/// Instances owned by an account outside `allowed` (empty `allowed` allows all).
pub fn foreign_accounts<'a>(
    instances: &'a [InstanceInfo],
    allowed: &[String],
) -> Vec<&'a InstanceInfo> {
    if allowed.is_empty() {
        return Vec::new();
    }
    instances
        .iter()
        .filter(|i| i.owner_id.as_ref().is_none_or(|o| !allowed.contains(o)))
        .collect()
}

/// The instance id a Kubernetes Node runs on, from its `spec.providerID`
/// (`aws:///us-east-1b/i-0abc123`). For [`super::notice::SpotNoticeHandler`] implementations,
/// which map an interrupted instance to its Node the way aws-node-termination-handler does.
pub fn instance_id_from_provider_id(provider_id: &str) -> Option<&str> {
    let rest = provider_id.strip_prefix("aws://")?;
    let id = rest.rsplit('/').next()?;
    id.starts_with("i-").then_some(id)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn inst(id: &str, spot: bool, zone: &str, team: &str) -> InstanceInfo {
        InstanceInfo {
            id: id.to_owned(),
            state: "running".to_owned(),
            spot,
            availability_zone: Some(zone.to_owned()),
            owner_id: Some("123456789012".to_owned()),
            tags: BTreeMap::from([("team".to_owned(), team.to_owned())]),
            hibernation_configured: false,
            spot_request_id: None,
        }
    }

    fn sel() -> InstanceSelector {
        InstanceSelector {
            tags: BTreeMap::from([("team".to_owned(), "shop".to_owned())]),
            ..Default::default()
        }
    }

    #[test]
    fn lifecycle_zone_tags_and_state_all_count() {
        let spot = inst("i-1", true, "us-east-1a", "shop");
        let on_demand = inst("i-2", false, "us-east-1a", "shop");
        let other_team = inst("i-3", true, "us-east-1a", "pay");
        let mut stopped = inst("i-4", true, "us-east-1a", "shop");
        stopped.state = "stopped".to_owned();
        let mut s = sel();
        assert!(matches(&spot, &s, true));
        assert!(!matches(&on_demand, &s, true));
        assert!(matches(&on_demand, &s, false));
        assert!(!matches(&other_team, &s, false));
        assert!(!matches(&stopped, &s, false));
        s.lifecycle = Lifecycle::OnDemand;
        assert!(!matches(&spot, &s, false));
        assert!(matches(&on_demand, &s, false));
        s.availability_zones = vec!["us-east-1b".to_owned()];
        assert!(!matches(&on_demand, &s, false));
    }

    #[test]
    fn modes_pick_the_right_number_under_the_cap() {
        let pool: Vec<_> = (0..10)
            .map(|i| inst(&format!("i-{i}"), true, "z", "shop"))
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut s = sel();
        assert_eq!(pick(&pool, &s, 0, &mut rng).len(), 1);
        s.mode = SelectMode::Count;
        s.count = Some(4);
        assert_eq!(pick(&pool, &s, 0, &mut rng).len(), 4);
        s.count = Some(40);
        assert_eq!(pick(&pool, &s, 0, &mut rng).len(), 10);
        s.mode = SelectMode::Percent;
        s.count = None;
        s.percent = Some(25); // 2.5 rounds up to 3
        assert_eq!(pick(&pool, &s, 0, &mut rng).len(), 3);
        s.max_targets = Some(2);
        let picked = pick(&pool, &s, 0, &mut rng);
        assert_eq!(picked.len(), 2);
        assert!(picked.windows(2).all(|w| w[0] < w[1]), "sorted: {picked:?}");
        assert!(pick(&[], &s, 0, &mut rng).is_empty());
        // One of the cap's two already stopped: one more at most; two stopped: none.
        assert_eq!(pick(&pool, &s, 1, &mut rng).len(), 1);
        assert!(pick(&pool, &s, 2, &mut rng).is_empty());
        let mut stopped = inst("i-x", true, "z", "shop");
        stopped.state = "stopped".to_owned();
        assert!(!matches(&stopped, &s, false) && matches_selector(&stopped, &s, false));
        assert!(is_out(&stopped.state));
    }

    #[test]
    fn accounts_outside_the_allow_list_are_reported() {
        let mut foreign = inst("i-9", true, "z", "shop");
        foreign.owner_id = Some("999999999999".to_owned());
        let pool = vec![inst("i-1", true, "z", "shop"), foreign];
        assert!(foreign_accounts(&pool, &[]).is_empty());
        let bad = foreign_accounts(&pool, &["123456789012".to_owned()]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].id, "i-9");
    }

    #[test]
    fn provider_ids_map_to_instance_ids() {
        assert_eq!(
            instance_id_from_provider_id("aws:///us-east-1b/i-0abc123"),
            Some("i-0abc123")
        );
        assert_eq!(instance_id_from_provider_id("gce://p/z/n"), None);
        assert_eq!(instance_id_from_provider_id("aws:///us-east-1b/"), None);
    }
}
