//! The arrival schedule of the open model: when the i-th request is meant to leave.
//!
//! The schedule is a function of time, not a chain of sleeps: the intended send time of request
//! `i` is the time at which the cumulative arrivals reach `i`, computed on the run's monotonic
//! clock. A late timer or a busy dispatcher therefore never shifts later requests (no drift, so
//! the achieved rate stays on the requested one), and latency is counted from this time, so any
//! lateness shows in the numbers instead of hiding (wrk2's coordinated-omission correction).
//!
//! A rate change ([`Schedule::with_change`]) appends a segment that starts where the schedule
//! is at that moment and goes linearly from the current rate to the new one over the ramp.
//! Pure arithmetic, tested without IO.

/// One piece of the schedule: a linear ramp from `r0` to `r1` over `ramp_s`, then `r1` on.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Start, in seconds since the run began.
    start_s: f64,
    /// Arrivals already scheduled before this segment.
    start_count: f64,
    r0: f64,
    r1: f64,
    ramp_s: f64,
}

impl Segment {
    /// Arrivals during the ramp part.
    fn ramp_count(&self) -> f64 {
        (self.r0 + self.r1) / 2.0 * self.ramp_s
    }

    fn rate_at(&self, t: f64) -> f64 {
        let dt = (t - self.start_s).max(0.0);
        if dt < self.ramp_s {
            self.r0 + (self.r1 - self.r0) * dt / self.ramp_s
        } else {
            self.r1
        }
    }

    fn count_at(&self, t: f64) -> f64 {
        let dt = (t - self.start_s).max(0.0);
        if dt < self.ramp_s {
            let a = (self.r1 - self.r0) / (2.0 * self.ramp_s);
            self.start_count + self.r0 * dt + a * dt * dt
        } else {
            self.start_count + self.ramp_count() + self.r1 * (dt - self.ramp_s)
        }
    }

    /// Seconds since the run began at which cumulative arrivals reach `count`, or `None` if
    /// this segment never gets there (its final rate is zero).
    fn time_of(&self, count: f64) -> Option<f64> {
        let c = (count - self.start_count).max(0.0);
        if c == 0.0 {
            return Some(self.start_s);
        }
        let rc = self.ramp_count();
        if self.ramp_s > 0.0 && c < rc {
            // Solve r0 t + a t^2 = c in the cancellation-free form 2c / (r0 + sqrt(r0^2 + 4ac)),
            // which also holds for a = 0 and for r0 = 0.
            let a = (self.r1 - self.r0) / (2.0 * self.ramp_s);
            let disc = (self.r0 * self.r0 + 4.0 * a * c).max(0.0);
            let denom = self.r0 + disc.sqrt();
            if denom <= 0.0 {
                return None;
            }
            return Some(self.start_s + (2.0 * c / denom).min(self.ramp_s));
        }
        if self.r1 <= 0.0 {
            return None;
        }
        Some(self.start_s + self.ramp_s + (c - rc) / self.r1)
    }
}

/// A piecewise-linear arrival rate over the run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    segments: Vec<Segment>,
}

impl Schedule {
    /// A constant rate from the start of the run.
    pub fn constant(rate: f64) -> Schedule {
        Schedule {
            segments: vec![Segment {
                start_s: 0.0,
                start_count: 0.0,
                r0: rate,
                r1: rate,
                ramp_s: 0.0,
            }],
        }
    }

    fn segment_at_time(&self, t: f64) -> &Segment {
        let i = self.segments.partition_point(|s| s.start_s <= t);
        &self.segments[i.saturating_sub(1)]
    }

    /// The requested rate at `t` seconds.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.segment_at_time(t).rate_at(t)
    }

    /// Arrivals scheduled before `t` seconds.
    pub fn count_at(&self, t: f64) -> f64 {
        self.segment_at_time(t).count_at(t)
    }

    /// Intended send time of request `i` (0-based), in seconds since the run began; `None`
    /// while the rate is zero with no change to come.
    pub fn time_of(&self, i: u64) -> Option<f64> {
        let c = i as f64;
        let k = self.segments.partition_point(|s| s.start_count <= c);
        self.segments[k.saturating_sub(1)].time_of(c)
    }

    /// The schedule with the rate going linearly from its value at `at` to `rate` over `ramp`
    /// seconds (at once when `ramp` is 0). `at` is "now", so never before the last change.
    pub fn with_change(&self, at: f64, rate: f64, ramp: f64) -> Schedule {
        let last = self.segments.last().expect("a schedule has a segment");
        let at = at.max(last.start_s);
        let seg = Segment {
            start_s: at,
            start_count: self.count_at(at),
            r0: self.rate_at(at),
            r1: rate.max(0.0),
            ramp_s: ramp.max(0.0),
        };
        let mut segments = self.segments.clone();
        segments.push(seg);
        Schedule { segments }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn constant_rate_has_no_drift() {
        let s = Schedule::constant(2000.0);
        assert_eq!(s.time_of(0), Some(0.0));
        assert!(close(s.time_of(1).unwrap(), 0.0005));
        // The millionth request is exactly 500 s in, whatever happened before.
        assert!(close(s.time_of(1_000_000).unwrap(), 500.0));
        assert!(close(s.count_at(30.0), 60_000.0));
    }

    #[test]
    fn ramp_is_linear_and_inverse_of_count() {
        // 100/s for 10 s, then ramp to 300/s over 10 s: 1000 + 2000 arrivals, then 300/s.
        let s = Schedule::constant(100.0).with_change(10.0, 300.0, 10.0);
        assert!(close(s.rate_at(15.0), 200.0));
        assert!(close(s.count_at(20.0), 3000.0));
        assert!(close(s.count_at(21.0), 3300.0));
        for i in [0u64, 999, 1000, 1500, 2999, 3000, 3300, 10_000] {
            let t = s.time_of(i).unwrap();
            assert!((s.count_at(t) - i as f64).abs() < 1e-6, "i={i} t={t}");
        }
    }

    #[test]
    fn ramp_down_to_zero_stops_arrivals() {
        let s = Schedule::constant(100.0).with_change(1.0, 0.0, 2.0);
        // 100 before the ramp, 100 during it, none after.
        assert!(close(s.count_at(10.0), 200.0));
        assert!(s.time_of(199).is_some());
        assert_eq!(s.time_of(200), None);
        // A later change resumes from where arrivals stopped.
        let s = s.with_change(5.0, 10.0, 0.0);
        assert!(close(s.time_of(200).unwrap(), 5.0));
        assert!(close(s.time_of(201).unwrap(), 5.1));
    }

    #[test]
    fn step_change_keeps_earlier_arrivals() {
        let s = Schedule::constant(10.0);
        let t5 = s.time_of(5).unwrap();
        let s2 = s.with_change(1.0, 1000.0, 0.0);
        assert_eq!(s2.time_of(5).unwrap(), t5);
        assert!(close(s2.time_of(11).unwrap(), 1.001));
    }
}
