//! Fault injection. The four faults are one value, replaced as a whole by
//! `PUT /admin/faults` and read once at the start of each request, so a
//! request never sees half of an update. The dice are a seeded RNG behind a
//! mutex: a run with `PAYMENT_FAULT_SEED` makes the same choices in order.

use std::sync::{Mutex, RwLock};
use std::time::Duration;

use common::domain::FieldError;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize};

/// The longest delay an operator may inject (five minutes).
pub const MAX_DELAY_MS: u64 = 300_000;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args, utoipa::ToSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Extra latency added to every charge request, in milliseconds.
    #[arg(
        long = "payment-delay-ms",
        env = "PAYMENT_DELAY_MS",
        default_value_t = 0
    )]
    #[schema(maximum = 300_000)]
    #[serde(deserialize_with = "whole_number")]
    pub delay_ms: u64,

    /// Percentage of charge requests answered 500 before anything is charged.
    #[arg(long = "payment-error-pct", env = "PAYMENT_ERROR_PCT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    #[schema(maximum = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub error_pct: u8,

    /// Percentage of charge requests answered 429 (with Retry-After).
    #[arg(long = "rate-limit-pct", env = "RATE_LIMIT_PCT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    #[schema(maximum = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub rate_limit_pct: u8,

    /// Percentage of charges recorded and then answered 500: the case that
    /// makes naive retries double-charge.
    #[arg(long = "payment-fail-after-charge-pct", env = "PAYMENT_FAIL_AFTER_CHARGE_PCT",
          default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    #[schema(maximum = 100)]
    #[serde(deserialize_with = "whole_number")]
    pub fail_after_charge_pct: u8,
}

/// A JSON integer, or a number without a fraction (`28.0`), which JSON
/// Schema (and so the OpenAPI description) counts as an integer too.
fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    number
        .as_u64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f))
                .map(|f| f as u64)
        })
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not a whole number in range")))
}

impl Faults {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.delay_ms > MAX_DELAY_MS {
            errors.push(FieldError::new(
                "delay_ms",
                format!("must be at most {MAX_DELAY_MS}"),
            ));
        }
        for (field, pct) in [
            ("error_pct", self.error_pct),
            ("rate_limit_pct", self.rate_limit_pct),
            ("fail_after_charge_pct", self.fail_after_charge_pct),
        ] {
            if pct > 100 {
                errors.push(FieldError::new(field, "must be a percentage from 0 to 100"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// What the dice decided for one request, rolled once at its start.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub delay: Duration,
    pub rate_limited: bool,
    pub error_before_charge: bool,
    pub fail_after_charge: bool,
}

pub struct FaultInjector {
    faults: RwLock<Faults>,
    rng: Mutex<StdRng>,
}

impl FaultInjector {
    pub fn new(initial: Faults, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Self {
            faults: RwLock::new(initial),
            rng: Mutex::new(rng),
        }
    }

    pub fn current(&self) -> Faults {
        *self.faults.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn replace(&self, faults: Faults) -> Result<(), Vec<FieldError>> {
        faults.validate()?;
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
        Ok(())
    }

    pub fn plan(&self) -> FaultPlan {
        let faults = self.current();
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut roll = |pct: u8| pct >= 100 || (pct > 0 && rng.random_range(0..100u8) < pct);
        FaultPlan {
            delay: Duration::from_millis(faults.delay_ms),
            rate_limited: roll(faults.rate_limit_pct),
            error_before_charge: roll(faults.error_pct),
            fail_after_charge: roll(faults.fail_after_charge_pct),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_never_fires_and_hundred_always_does() {
        let injector = FaultInjector::new(Faults::default(), Some(1));
        assert!((0..1000).all(|_| {
            let p = injector.plan();
            !p.rate_limited && !p.error_before_charge && !p.fail_after_charge
        }));
        injector
            .replace(Faults {
                error_pct: 100,
                ..Faults::default()
            })
            .unwrap();
        assert!((0..1000).all(|_| injector.plan().error_before_charge));
    }

    #[test]
    fn a_percentage_fires_about_that_often_and_reproducibly() {
        let faults = Faults {
            error_pct: 30,
            ..Faults::default()
        };
        let count = |seed| {
            let injector = FaultInjector::new(faults, Some(seed));
            (0..10_000)
                .filter(|_| injector.plan().error_before_charge)
                .count()
        };
        let n = count(7);
        assert!((2_700..3_300).contains(&n), "{n}");
        assert_eq!(n, count(7));
    }

    #[test]
    fn refuses_out_of_range_values() {
        let injector = FaultInjector::new(Faults::default(), None);
        let bad = Faults {
            delay_ms: MAX_DELAY_MS + 1,
            rate_limit_pct: 101,
            ..Faults::default()
        };
        let errors = injector.replace(bad).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(injector.current(), Faults::default());
    }
}
