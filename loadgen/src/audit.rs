//! After a run: does payment-service's ledger agree with what clients saw?
//! Every 201 should have exactly one charge, and no order two.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::get_json;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub ledger_charges: u64,
    pub created_seen: u64,
    pub created_with_one_charge: u64,
    /// 201s whose order has no charge: money promised, not taken.
    pub created_without_charge: u64,
    /// Charges for orders no client saw a 201 for (pending, or answered
    /// 5xx/504 while charged): for the reconciler, not necessarily wrong.
    pub charges_without_created: u64,
    /// Orders charged more than once: must be 0.
    pub duplicate_charges: u64,
}

pub async fn audit(payment_url: &str, created: &[String]) -> Result<AuditReport, String> {
    let url = format!("{}/ledger?detail=true", payment_url.trim_end_matches('/'));
    let ledger = get_json(&url, Duration::from_secs(30)).await?;
    let entries = ledger["entries"]
        .as_array()
        .ok_or_else(|| format!("{url}: no entries in the ledger"))?;
    let mut charges_per_order: HashMap<&str, u64> = HashMap::new();
    for entry in entries {
        if let Some(id) = entry["order_id"].as_str() {
            *charges_per_order.entry(id).or_default() += 1;
        }
    }
    let created: HashSet<&str> = created.iter().map(String::as_str).collect();
    let charges = |id: &str| charges_per_order.get(id).copied().unwrap_or(0);
    Ok(AuditReport {
        ledger_charges: entries.len() as u64,
        created_seen: created.len() as u64,
        created_with_one_charge: created.iter().filter(|id| charges(id) == 1).count() as u64,
        created_without_charge: created.iter().filter(|id| charges(id) == 0).count() as u64,
        charges_without_created: charges_per_order
            .iter()
            .filter(|(id, _)| !created.contains(*id))
            .map(|(_, n)| *n)
            .sum(),
        duplicate_charges: charges_per_order.values().filter(|&&n| n > 1).count() as u64,
    })
}

impl AuditReport {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\nLedger audit:");
        let _ = writeln!(out, "  charges in the ledger: {}", self.ledger_charges);
        let _ = writeln!(
            out,
            "  201s seen: {} (with exactly one charge: {})",
            self.created_seen, self.created_with_one_charge
        );
        let _ = writeln!(
            out,
            "  201s without a charge: {}",
            self.created_without_charge
        );
        let _ = writeln!(
            out,
            "  charges without a 201 seen: {}",
            self.charges_without_created
        );
        let _ = writeln!(out, "  DUPLICATE CHARGES: {}", self.duplicate_charges);
        out
    }
}
