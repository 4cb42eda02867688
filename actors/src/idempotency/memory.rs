//! The records in this process: a concurrent map. The default of a single
//! order-service; a restart forgets them.
//!
//! Records expire `ttl` after their last reservation (never while held),
//! and at most `max_keys` exist: when full, new keys are refused (`Full`,
//! 503) while existing ones still replay, so memory never grows without
//! bound.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{
    Answer, Complete, Holder, IdempotencyConfig, KeyBackend, Release, Reservation, Reserve, Stats,
    StoredResponse,
};
use crate::clock::SharedClock;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    InFlight { holder: Holder, until: Instant },
    Released,
    Completed(Arc<StoredResponse>),
}

#[derive(Debug, Clone)]
struct Record<I> {
    fingerprint: String,
    order_id: I,
    phase: Phase,
    /// Last reserved: the TTL counts from here.
    touched: Instant,
}

/// Cheap to clone: every clone sees the same records, so whoever
/// supervises the actor can keep them across its restarts.
#[derive(Clone)]
pub struct MemoryKeys<I = String> {
    config: IdempotencyConfig,
    records: Arc<DashMap<String, Record<I>>>,
    clock: SharedClock,
}

impl<I: Clone> MemoryKeys<I> {
    pub fn new(config: IdempotencyConfig, clock: SharedClock) -> Self {
        Self {
            config,
            records: Arc::default(),
            clock,
        }
    }

    pub fn reserve(
        &self,
        key: &str,
        fingerprint: &str,
        order_id: &I,
        holder: Holder,
    ) -> Reservation<I> {
        let now = self.clock.now();
        let full = self.records.len() >= self.config.max_keys;
        let held = Phase::InFlight {
            holder,
            until: now + self.config.lease,
        };
        match self.records.entry(key.to_owned()) {
            Entry::Vacant(_) if full => Reservation::Full,
            Entry::Vacant(slot) => {
                slot.insert(Record {
                    fingerprint: fingerprint.to_owned(),
                    order_id: order_id.clone(),
                    phase: held,
                    touched: now,
                });
                Reservation::New
            }
            Entry::Occupied(mut slot) => {
                let record = slot.get_mut();
                if record.fingerprint != fingerprint {
                    return Reservation::Mismatch;
                }
                match &record.phase {
                    Phase::InFlight { until, .. } if *until > now => Reservation::InFlight {
                        order_id: Some(record.order_id.clone()),
                    },
                    Phase::Completed(response) => Reservation::Replay(response.clone()),
                    // Released, or held by a holder gone silent past its lease.
                    Phase::InFlight { .. } | Phase::Released => {
                        record.phase = held;
                        record.touched = now;
                        Reservation::Resume {
                            order_id: record.order_id.clone(),
                        }
                    }
                }
            }
        }
    }

    pub fn complete(&self, key: &str, holder: Holder, response: StoredResponse) {
        self.end_flight(key, holder, Phase::Completed(Arc::new(response)));
    }

    /// Answers whether `holder` still held the key (and so released it).
    pub fn release(&self, key: &str, holder: Holder) -> bool {
        self.end_flight(key, holder, Phase::Released)
    }

    /// Moves `key` out of flight, if `holder` still holds it: a completed
    /// key stays completed, and a key taken over is its new holder's.
    fn end_flight(&self, key: &str, holder: Holder, phase: Phase) -> bool {
        if let Some(mut record) = self.records.get_mut(key)
            && matches!(record.phase, Phase::InFlight { holder: h, .. } if h == holder)
        {
            record.phase = phase;
            return true;
        }
        false
    }

    fn expired(&self, record: &Record<I>, now: Instant) -> bool {
        let held = matches!(record.phase, Phase::InFlight { until, .. } if until > now);
        !held && now.saturating_duration_since(record.touched) >= self.config.ttl
    }

    /// Removes every expired record; answers how many.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now();
        let before = self.records.len();
        self.records.retain(|_, r| !self.expired(r, now));
        before - self.records.len()
    }

    /// The expired records' keys and order ids, for a backend that must
    /// look at the orders before it forgets a key ([`Self::forget`]).
    pub fn expired_keys(&self) -> Vec<(String, I)> {
        let now = self.clock.now();
        self.records
            .iter()
            .filter(|r| self.expired(r.value(), now))
            .map(|r| (r.key().clone(), r.order_id.clone()))
            .collect()
    }

    /// Removes `key` if it is (still) expired; answers whether it did.
    pub fn forget(&self, key: &str) -> bool {
        let now = self.clock.now();
        self.records
            .remove_if(key, |_, r| self.expired(r, now))
            .is_some()
    }

    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            entries: self.records.len(),
            ..Stats::default()
        };
        for record in self.records.iter() {
            match record.phase {
                Phase::InFlight { .. } => stats.in_flight += 1,
                Phase::Released => stats.released += 1,
                Phase::Completed(_) => stats.completed += 1,
            }
        }
        stats
    }
}

fn ready<T: 'static>(value: T) -> Answer<T> {
    Box::pin(std::future::ready(Ok(value)))
}

/// Keys alone, nothing written beside them.
impl KeyBackend for MemoryKeys {
    type Id = String;
    type Record = ();
    type Effect = ();

    fn reserve(&self, msg: Reserve<()>) -> Answer<Reservation> {
        ready(MemoryKeys::reserve(
            self,
            &msg.key,
            &msg.fingerprint,
            &msg.order_id,
            msg.holder,
        ))
    }

    fn complete(&self, msg: Complete<()>) -> Answer<Result<(), std::convert::Infallible>> {
        MemoryKeys::complete(self, &msg.key, msg.holder, msg.response);
        ready(Ok(()))
    }

    fn release(&self, msg: Release) -> Answer<()> {
        MemoryKeys::release(self, &msg.key, msg.holder);
        ready(())
    }

    fn sweep(&self) -> Answer<usize> {
        ready(MemoryKeys::sweep(self))
    }

    fn stats(&self) -> Answer<Stats> {
        ready(MemoryKeys::stats(self))
    }
}
