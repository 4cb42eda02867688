//! payment-service's metrics (names in `observability::metric_names`).

use observability::metric_names as names;
use observability::metrics::{HttpMetrics, counter_vec, gauge};
use prometheus::{IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct PaymentMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    pub charges: IntCounterVec,
    /// Voids asked for, by how the key ended (voided, charged, error).
    pub voids: IntCounterVec,
    pub faults: IntCounterVec,
    pub ledger_charges: IntGauge,
    /// The writer's syncs and the charges they covered, since start (their
    /// ratio is the mean batch of the group commit).
    pub ledger_syncs: IntGauge,
    pub ledger_synced_charges: IntGauge,
}

impl Default for PaymentMetrics {
    fn default() -> Self {
        let r = Registry::new();
        observability::metrics::register_span_counters(&r);
        let metrics = Self {
            http: HttpMetrics::new(&r),
            charges: counter_vec(
                &r,
                names::CHARGES,
                "Charge requests, by result (created, replayed, declined, rejected, voided, deadline_exceeded, rate_limited, error, failed_after_charge).",
                &["result"],
            ),
            voids: counter_vec(
                &r,
                names::VOIDS,
                "Voids asked for, by how the key ended (voided, charged, error).",
                &["end"],
            ),
            faults: counter_vec(
                &r,
                names::FAULTS_INJECTED,
                "Faults injected, by kind (delay, error, rate_limit, fail_after_charge).",
                &["fault"],
            ),
            ledger_charges: gauge(&r, names::LEDGER_CHARGES, "Charges in the ledger."),
            ledger_syncs: gauge(
                &r,
                names::LEDGER_SYNCS,
                "Syncs of the ledger's log since start (one per batch of charges).",
            ),
            ledger_synced_charges: gauge(
                &r,
                names::LEDGER_SYNCED_CHARGES,
                "Charges covered by those syncs since start.",
            ),
            registry: r,
        };
        // Known label values start at zero, so `rate()` sees their first event.
        for result in [
            "created",
            "replayed",
            "declined",
            "rejected",
            "voided",
            "deadline_exceeded",
            "rate_limited",
            "error",
            "failed_after_charge",
        ] {
            metrics.charges.with_label_values(&[result]);
        }
        for end in ["voided", "charged", "error"] {
            metrics.voids.with_label_values(&[end]);
        }
        for fault in ["delay", "error", "rate_limit", "fail_after_charge"] {
            metrics.faults.with_label_values(&[fault]);
        }
        metrics
    }
}
