//! The window edges of a run: where one measurement window ends and the next begins. Its
//! own module because both sides of the load read it: the workers (which window a request's
//! intended time falls in) and the collector (when a window ends).

use std::time::Duration;

/// The window edges of a run, after the load's start: whole seconds of the caller's clock
/// (`first_window + k` s) and the caller's cuts (phase starts) in between. A cut within a
/// millisecond of a whole second is that second, so no sliver windows.
#[derive(Debug, Clone)]
pub(crate) struct Edges {
    first_window: Duration,
    /// Cuts that are no whole second, in order, each more than a millisecond from any other
    /// edge.
    cuts: Vec<Duration>,
}

/// Cuts within this of another edge are that edge.
pub(crate) const EPS: Duration = Duration::from_millis(1);

impl Edges {
    pub fn new(first_window: Duration, mut cuts: Vec<Duration>) -> Edges {
        cuts.sort();
        let mut kept: Vec<Duration> = Vec::new();
        for c in cuts {
            if c <= EPS {
                continue;
            }
            // The nearest whole edges around `c`.
            let near_whole = if c < first_window {
                first_window - c <= EPS
            } else {
                let since = (c - first_window).as_nanos() % 1_000_000_000;
                let since = Duration::from_nanos(since as u64);
                since <= EPS || Duration::from_secs(1) - since <= EPS
            };
            if near_whole || kept.last().is_some_and(|k| c - *k <= EPS) {
                continue;
            }
            kept.push(c);
        }
        Edges {
            first_window,
            cuts: kept,
        }
    }

    /// Whole-second edges at or before `t`.
    fn wholes_upto(&self, t: Duration) -> u64 {
        if t < self.first_window {
            0
        } else {
            (t - self.first_window).as_secs() + 1
        }
    }

    /// The index of the window holding `t` (ns since the load's start).
    pub fn window_of(&self, ns: u64) -> u64 {
        let t = Duration::from_nanos(ns);
        self.wholes_upto(t) + self.cuts.partition_point(|c| *c <= t) as u64
    }

    /// The first edge strictly after `t`.
    pub fn next_after(&self, t: Duration) -> Duration {
        let whole = self.first_window + Duration::from_secs(self.wholes_upto(t));
        match self.cuts.get(self.cuts.partition_point(|c| *c <= t)) {
            Some(&c) if c < whole => c,
            _ => whole,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_put_cuts_between_whole_seconds_and_skip_slivers() {
        let ms = Duration::from_millis;
        // First window 0.4 s (the caller's clock is 0.6 s ahead), cuts at 1.9 s (a phase start
        // 2.5 s into the run), 2.4005 s (within 1 ms of a whole second) and 0.0005 s.
        let e = Edges::new(
            ms(400),
            vec![ms(1900), Duration::from_micros(2_400_500), ms(0)],
        );
        assert_eq!(e.window_of(0), 0);
        assert_eq!(e.window_of(399_999_999), 0);
        assert_eq!(e.window_of(400_000_000), 1);
        assert_eq!(e.window_of(1_400_000_000), 2);
        assert_eq!(e.window_of(1_899_999_999), 2);
        assert_eq!(e.window_of(1_900_000_000), 3);
        assert_eq!(e.window_of(2_400_000_000), 4);
        assert_eq!(e.window_of(2_400_600_000), 4);
        assert_eq!(e.next_after(Duration::ZERO), ms(400));
        assert_eq!(e.next_after(ms(1400)), ms(1900));
        assert_eq!(e.next_after(ms(1900)), ms(2400));
        assert_eq!(e.next_after(ms(2400)), ms(3400));
    }
}
