//! A token bucket as the generic cell rate algorithm: one number per
//! client, the moment its bucket will be full again ("theoretical arrival
//! time"), updated by compare-and-swap, so a request takes no lock and a
//! bucket costs eight bytes. `quota` requests may come at once; after
//! that, one per `interval`. Time is the caller's (`now`, in nanoseconds
//! since an epoch of its choosing), so the tests step it by hand.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many requests, per how long: `50/s`, `600/min`, `10/h`; an
/// optional burst after it (`50/s:100`), else a second's worth (at least
/// one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests the bucket holds when full.
    pub quota: u64,
    /// Time for one request to come back.
    pub interval: Duration,
}

impl Rate {
    /// Time for an empty bucket to fill: the `w` of `RateLimit-Policy`.
    pub fn window(&self) -> Duration {
        self.interval.saturating_mul(self.quota as u32)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a rate such as 50/s, 600/min or 50/s:100");
        let (rate, burst) = match text.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let (count, per) = rate.trim().split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        let per = match per.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 || count > 1_000_000 {
            return Err(format!("{text:?}: between 1 and 1000000 requests"));
        }
        let interval = per / count as u32;
        let second = (Duration::from_secs(1).as_nanos() / interval.as_nanos()).max(1) as u64;
        let quota = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| bad())?,
            None => second,
        };
        if quota == 0 || quota > 1_000_000 {
            return Err(format!("{text:?}: a burst between 1 and 1000000"));
        }
        Ok(Self { quota, interval })
    }
}

/// What one request learned of its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let in; `remaining` more may come now; the bucket is full again
    /// after `reset`.
    Admitted { remaining: u64, reset: Duration },
    /// Over the limit: the next request is let in after `retry_after`.
    Limited { retry_after: Duration },
}

/// One client's bucket.
#[derive(Debug, Default)]
pub struct Bucket {
    /// Nanoseconds since the epoch at which the bucket is full again.
    full_at: AtomicU64,
}

impl Bucket {
    pub fn take(&self, rate: &Rate, now: u64) -> Decision {
        let interval = rate.interval.as_nanos() as u64;
        let tolerance = rate.window().as_nanos() as u64;
        let mut full_at = self.full_at.load(Ordering::Relaxed);
        loop {
            let start = full_at.max(now);
            let next = start + interval;
            // Full after `next`; more than a whole bucket ahead: refused.
            if next - now > tolerance {
                let retry_after = next - tolerance - now;
                return Decision::Limited {
                    retry_after: Duration::from_nanos(retry_after),
                };
            }
            match self.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let remaining = (tolerance - (next - now)) / interval;
                    return Decision::Admitted {
                        remaining,
                        reset: Duration::from_nanos(next - now),
                    };
                }
                Err(seen) => full_at = seen,
            }
        }
    }

    /// Whether the bucket is full at `now` (it can be forgotten).
    pub fn is_full(&self, now: u64) -> bool {
        self.full_at.load(Ordering::Relaxed) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn rates_parse_with_a_second_of_burst_by_default() {
        assert_eq!(
            rate("50/s"),
            Rate {
                quota: 50,
                interval: Duration::from_millis(20)
            }
        );
        assert_eq!(rate("600/min").quota, 10);
        assert_eq!(rate("10/h").quota, 1);
        assert_eq!(rate("10/s:3").quota, 3);
        assert_eq!(rate("10/s:3").window(), Duration::from_millis(300));
        for bad in ["", "50", "0/s", "5/day", "x/s", "5/s:0", "5/s:y"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_burst_is_let_in_then_one_per_interval() {
        let (rate, bucket) = (rate("10/s:3"), Bucket::default());
        let now = 1_000 * MS;
        let remaining: Vec<_> = (0..3)
            .map(|_| match bucket.take(&rate, now) {
                Decision::Admitted { remaining, .. } => remaining,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        assert_eq!(
            bucket.take(&rate, now),
            Decision::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        // A refused request costs nothing: 100 ms later one is let in.
        assert!(matches!(
            bucket.take(&rate, now + 100 * MS),
            Decision::Admitted { remaining: 0, .. }
        ));
        assert!(matches!(
            bucket.take(&rate, now + 150 * MS),
            Decision::Limited { retry_after } if retry_after == Duration::from_millis(50)
        ));
    }

    #[test]
    fn an_idle_bucket_fills_up_to_its_quota_and_no_further() {
        let (rate, bucket) = (rate("10/s:3"), Bucket::default());
        let now = 1_000 * MS;
        assert!(matches!(
            bucket.take(&rate, now),
            Decision::Admitted { remaining: 2, reset } if reset == Duration::from_millis(100)
        ));
        assert!(!bucket.is_full(now));
        assert!(bucket.is_full(now + 100 * MS));
        // An hour idle fills it to 3, not to 36,000.
        let later = now + 3_600_000 * MS;
        for _ in 0..3 {
            assert!(matches!(
                bucket.take(&rate, later),
                Decision::Admitted { .. }
            ));
        }
        assert!(matches!(
            bucket.take(&rate, later),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn racing_takers_never_get_more_than_the_quota() {
        let rate = rate("1/h:100");
        let bucket = std::sync::Arc::new(Bucket::default());
        let admitted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let bucket = bucket.clone();
                    s.spawn(move || {
                        (0..100)
                            .filter(|_| matches!(bucket.take(&rate, MS), Decision::Admitted { .. }))
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100);
    }
}
